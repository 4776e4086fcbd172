"""Untrusted files: pickled code in checkpoints is refused unrun; manifest paths stay inside their corpus.

What counts as the user's own instruction (docs/reliability.md): command-line paths, stage configs and
dataset YAMLs are honoured as typed (`..` and absolute paths included). A curate manifest is data: its
paths must resolve inside the corpus folder (`..`, a symlink or an absolute path out of it is refused),
and its chips, like dataset files, must be plain local GeoTIFF, PNG or JPEG files (no VRT, no /vsi path).
Configs are read within limits (aliases, size, nesting); outputs never land on inputs or on each other.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import (
    DATA,
    REPO,
    invoke,
    last_line_error,
    one_line_error,
    pretrain_on_manifest,
    succeeded,
)

PRETRAIN_TINY = REPO / "configs" / "pretrain" / "tiny.yaml"
FINETUNE_TINY = REPO / "configs" / "finetune" / "tiny.yaml"


class Payload:
    """Unpickling this creates `marker` (any code could run in its place)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_file(path: Path, marker: Path, legacy: bool = False, **content) -> Path:
    """A file shaped like one of our checkpoints whose pickle would create `marker` when loaded."""
    payload = {"format": "s5cli", "version": 1, "spec": {}, "state_dict": {}, "extra": Payload(marker), **content}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_the_payload_is_real(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = evil_file(tmp_path / "evil.pt", marker)
    torch.load(evil, weights_only=False)  # what a careless loader would do
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickled_code_is_refused_without_running_it(runner, tmp_path: Path, ckpts, legacy: bool) -> None:
    marker = tmp_path / "ran"
    evil = evil_file(tmp_path / "evil.pt", marker, legacy)
    out = tmp_path / "out"
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    tune = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "--iterations", 1]
    pre = ["--config", PRETRAIN_TINY, "--data-root", DATA, "--unlabeled-folder", DATA / "million-aid"]
    for command, args in [
        ("predict", [scene, "-o", out / "o.gpkg", "--checkpoint", evil]),
        ("evaluate", [evil, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "m.csv"]),
        ("export", [evil, "--dataset", "potsdam", "-o", out / "e.pt"]),
        ("finetune", [*tune, "--init", evil, "-o", out / "run"]),
        ("pretrain", [*pre, "--init", evil, "-o", out / "run"]),
        ("curate", [scene, "-o", out / "corpus", "--teacher", evil]),
        ("weights", ["import", evil, "-o", out / "w.pt"]),
    ]:
        result = invoke(runner, "-q", command, *args)
        # finetune reads its datasets before the init checkpoint (the fake Potsdam's partial-split warning first)
        check = last_line_error if command == "finetune" else one_line_error
        line = check(result, f"error: {evil}: refused: the file holds Python objects")
        if not legacy:
            assert "(io.open)" in line or "(builtins.open)" in line, line  # the global it would have called
        assert not marker.exists(), command
    assert not out.exists() or sorted(out.iterdir()) == []


def test_pickled_code_in_a_training_state_is_refused_on_resume(runner, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "--eval-every", 0]
    succeeded(invoke(runner, "-q", "finetune", *args, "--iterations", 3, "--stop-after", 1, "-o", run))
    state = run / "states" / "state_00000001.pt"
    marker = tmp_path / "ran"
    evil_file(state, marker, format="s5cli-train-state")
    line = last_line_error(invoke(runner, "-q", "finetune", "-o", run, "--resume"))
    assert line == (
        f"error: {state}: refused: the file holds Python objects that could run code when loaded; "
        "only plain training states are accepted"
    )
    assert not marker.exists()


# ---- manifests --------------------------------------------------------------------------------------


def _corpus(runner, tmp_path: Path, ckpts) -> Path:
    scene = scenes.make_scene(tmp_path / "s.tif", width=64, height=64, nodata_border=0)
    succeeded(invoke(runner, "curate", scene, "-o", tmp_path / "corpus", "--chip-size", 32, "--teacher", ckpts["seg"]))
    return tmp_path / "corpus"


def _set_column(corpus: Path, column: str, values: list[str]) -> None:
    """Rewrite one column of the kept rows of the manifest (same schema, same metadata)."""
    path = corpus / "manifest.parquet"
    table = pq.read_table(path)
    kept = table.column("kept").to_pylist()
    it = iter(values)
    new = [next(it) if k else v for k, v in zip(kept, table.column(column).to_pylist())]
    index = table.schema.get_field_index(column)
    table = table.set_column(index, table.schema.field(index), pa.array(new, table.schema.field(index).type))
    pq.write_table(table, path)


def test_manifest_paths_cannot_escape_the_corpus(runner, tmp_path: Path, ckpts) -> None:
    from s5cli.datasets.corpus import CorpusDataset

    corpus = _corpus(runner, tmp_path, ckpts)
    rows = len(CorpusDataset(corpus))
    assert rows == 4
    assert CorpusDataset(corpus, masks=True)[0]["mask"].shape == (32, 32)
    # `..` out of the root: refused when read, naming the path
    _set_column(corpus, "path", ["../../etc/passwd"] * rows)
    with pytest.raises(Exception, match=r"\.\./\.\./etc/passwd: path escapes its root") as info:
        CorpusDataset(corpus)[0]
    assert type(info.value).__name__ == "InputError"
    result = pretrain_on_manifest(runner, corpus / "manifest.parquet", tmp_path / "run")
    assert result.exit_code == 2 and result.stderr.splitlines()[-1] == (
        f"error: ../../etc/passwd: path escapes its root {corpus.resolve()}"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    # pseudo-label paths follow the same rule
    _set_column(corpus, "mask_path", ["../outside.png"] * rows)
    with pytest.raises(Exception, match="path escapes its root"):
        CorpusDataset(corpus, masks=True)[0]


def test_manifest_symlink_out_of_the_corpus_is_refused(runner, tmp_path: Path, ckpts) -> None:
    from s5cli.datasets.corpus import CorpusDataset
    from s5cli.errors import InputError

    corpus = _corpus(runner, tmp_path, ckpts)
    first = pq.read_table(corpus / "manifest.parquet", filters=[("kept", "==", True)]).column("path")[0].as_py()
    outside = tmp_path / "outside.tif"
    shutil.copy(corpus / first, outside)
    (corpus / first).unlink()
    (corpus / first).symlink_to(outside)  # a chip that is a link out of the corpus
    with pytest.raises(InputError, match="path escapes its root"):
        CorpusDataset(corpus)[0]


def test_absolute_manifest_paths_inside_the_corpus_are_read(runner, tmp_path: Path, ckpts) -> None:
    from s5cli.datasets.corpus import CorpusDataset

    corpus = _corpus(runner, tmp_path, ckpts)
    paths = sorted(str(p.resolve()) for p in (corpus / "images").rglob("*.tif"))
    _set_column(corpus, "path", paths)
    dataset = CorpusDataset(corpus)
    assert [dataset[i]["path"] for i in range(len(dataset))] == paths
    assert dataset[0]["image"].shape == (3, 32, 32)


# ---- configs -----------------------------------------------------------------------------------------


def test_paths_the_user_typed_may_go_up_with_dotdot(runner, tmp_path: Path, ckpts, monkeypatch) -> None:
    for folder in ("work", "configs", "data"):
        (tmp_path / folder).mkdir()
    scenes.make_scene(tmp_path / "data" / "s.tif", width=40, height=40)
    config = tmp_path / "configs" / "predict.yaml"
    config.write_text(f"checkpoint: {ckpts['seg']}\nraster: ../out/s.tif\n")  # relative to the working folder
    monkeypatch.chdir(tmp_path / "work")
    succeeded(invoke(runner, "predict", "../data/s.tif", "--config", "../configs/predict.yaml"))
    assert (tmp_path / "out" / "s.tif").is_file()


# ---- rasters inside data: plain local files only ---------------------------------------------------------


def _vrt(path: Path, source: str) -> Path:
    """A VRT (XML) named like a chip, reading its pixels from `source` (a file outside, or a URL)."""
    path.write_text(
        '<VRTDataset rasterXSize="32" rasterYSize="32"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand></VRTDataset>"
    )
    return path


@pytest.mark.parametrize("source", ["outside", "url"])
def test_a_vrt_chip_cannot_read_outside_the_corpus(runner, tmp_path: Path, ckpts, source: str) -> None:
    from s5cli.datasets.corpus import CorpusDataset
    from s5cli.errors import InputError

    corpus = _corpus(runner, tmp_path, ckpts)
    outside = scenes.make_scene(tmp_path / "secret.tif", width=32, height=32)
    target = str(outside) if source == "outside" else "/vsicurl/http://127.0.0.1:9/x.tif"
    first = pq.read_table(corpus / "manifest.parquet", filters=[("kept", "==", True)]).column("path")[0].as_py()
    _vrt(corpus / first, target)
    refusal = "not a plain GeoTIFF, PNG or JPEG file (a data file may not be a VRT or other format)"
    with pytest.raises(InputError, match=r"not a plain GeoTIFF, PNG or JPEG file"):
        CorpusDataset(corpus)[0]
    result = pretrain_on_manifest(runner, corpus / "manifest.parquet", tmp_path / "run")
    assert last_line_error(result) == f"error: {(corpus / first).resolve()}: {refusal}"
    assert not (tmp_path / "run").exists()


def test_a_vrt_in_a_dataset_folder_is_refused(runner, tmp_path: Path, dataset_copy) -> None:
    potsdam = dataset_copy("potsdam")
    outside = scenes.make_scene(tmp_path / "secret.tif", width=40, height=40)
    for image in (potsdam / "2_Ortho_RGB").glob("*.tif"):
        _vrt(image, str(outside))
    args = ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", potsdam.parent, "--iterations", 1]
    result = invoke(runner, "-q", "finetune", *args, "--eval-every", 0, "-o", tmp_path / "out" / "run")
    last_line_error(result, "not a plain GeoTIFF, PNG or JPEG file (a data file may not be a VRT or other format)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("row", ["absolute_outside", "vsicurl"])
def test_manifest_rows_outside_the_corpus_or_remote_are_refused(runner, tmp_path: Path, ckpts, row: str) -> None:
    from s5cli.datasets.corpus import CorpusDataset
    from s5cli.errors import InputError

    corpus = _corpus(runner, tmp_path, ckpts)
    outside = scenes.make_scene(tmp_path / "secret.tif", width=32, height=32)
    path = str(outside) if row == "absolute_outside" else "/vsicurl/http://127.0.0.1:9/chip.tif"
    _set_column(corpus, "path", [path] * 4)
    with pytest.raises(InputError, match=f"path escapes its root {re.escape(str(corpus.resolve()))}"):
        CorpusDataset(corpus)[0]
    result = pretrain_on_manifest(runner, corpus / "manifest.parquet", tmp_path / "run")
    assert last_line_error(result) == f"error: {path}: path escapes its root {corpus.resolve()}"
    assert not (tmp_path / "run").exists()


# ---- configs that grow: aliases, size, nesting ----------------------------------------------------------------


def _laughs(levels: int = 9) -> str:
    """The 'billion laughs': each level an alias list of ten of the one before, 10**levels strings in all."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


BOMBS = {
    "alias_bomb": (lambda: "x:\n" + "".join("  " + ln + "\n" for ln in _laughs().splitlines()), "its aliases expand"),
    "recursive_alias": (lambda: "x: &loop [*loop]\n", "an alias refers to a node that contains it"),
    "nested_too_deep": (lambda: "x: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
    "too_large": (lambda: "x: " + "a" * (8 * 1024 * 1024) + "\n", "a config file may hold at most 8388608"),
}


@pytest.mark.parametrize("command", ["finetune", "predict", "evaluate", "curate"])
@pytest.mark.parametrize("case", list(BOMBS))
def test_configs_that_would_grow_are_refused(runner, tmp_path: Path, ckpts, case: str, command: str) -> None:
    import time

    text, fragment = BOMBS[case]
    config = tmp_path / "bomb.yaml"
    config.write_text(text())
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    args = {
        "finetune": ["--datasets", "potsdam", "--data-root", DATA, "-o", out / "run"],
        "predict": [scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]],
        "evaluate": [ckpts["potsdam"], "--datasets", "potsdam", "--data-root", DATA, "-o", out / "m.csv"],
        "curate": [scene, "-o", out / "corpus"],
    }[command]
    start = time.perf_counter()
    line = one_line_error(invoke(runner, command, *args, "--config", config), fragment)
    assert line.startswith(f"error: {config}: ") and time.perf_counter() - start < 10
    assert not out.exists()


def test_a_dataset_yaml_alias_bomb_is_refused(runner, tmp_path: Path) -> None:
    dataset = tmp_path / "mine.yaml"
    dataset.write_text("name: mine\nclasses: [a, b]\nscenes: [s.tif]\nlabels: l.gpkg\n" + _laughs())
    args = ["--config", FINETUNE_TINY, "--datasets", dataset, "-o", tmp_path / "out" / "run"]
    line = one_line_error(invoke(runner, "-q", "finetune", *args), "refused: its aliases expand to")
    assert line.startswith(f"error: {dataset}: ")
    assert not (tmp_path / "out").exists()


# ---- outputs onto inputs, outputs onto each other, links ----------------------------------------------------


def test_an_output_that_is_an_input_is_refused(runner, tmp_path: Path, ckpts) -> None:
    from s5cli_tests.reliability.helpers import snapshot

    (tmp_path / "in").mkdir()
    scene = scenes.make_scene(tmp_path / "in" / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    cases = [
        ("predict", [scene, "-o", out / "o.gpkg", "--raster", scene, "--checkpoint", ckpts["seg"]], "--raster"),
        ("predict", [scene, "--raster", ckpts["seg"], "--checkpoint", ckpts["seg"]], "--raster"),
        ("export", [ckpts["seg"], "--dataset", "demo", "-o", ckpts["seg"]], "-o/--output"),
        ("weights", ["import", ckpts["seg"], "-o", ckpts["seg"]], "-o/--output"),
        ("evaluate", [ckpts["potsdam"], "--datasets", "potsdam", "--data-root", DATA, "-o", ckpts["potsdam"]],
         "-o/--output"),
        ("curate", [tmp_path / "in", "-o", tmp_path / "in"], "-o/--output"),
    ]  # fmt: skip
    before = snapshot(tmp_path)
    ckpt_bytes = {p: p.read_bytes() for p in ckpts.values()}
    for command, args, option in cases:
        line = last_line_error(invoke(runner, "-q", command, *args, "--overwrite"))
        assert f"{option} is an input of this command; choose another output" in line, line
    # A folder output that holds an input (curate -o on the scenes' parent) would delete them with --overwrite.
    line = one_line_error(invoke(runner, "curate", scene, "-o", tmp_path / "in", "--overwrite"))
    assert line == f"error: {tmp_path / 'in'}: -o/--output is a folder holding the input {scene}; choose another output"
    assert snapshot(tmp_path) == before and {p: p.read_bytes() for p in ckpts.values()} == ckpt_bytes


def test_outputs_that_collide_are_refused_before_any_is_written(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    seg = ["--checkpoint", ckpts["seg"]]
    cases = [
        ([scene, "-o", out / "a.gpkg", "--raster", out / "a.gpkg", *seg], "--raster and -o/--output"),
        ([scene, "--raster", out / "r.tif", "--probs", "--preview", out / "r_confidence.tif", *seg],
         "--preview and --probs"),
    ]  # fmt: skip
    for args, fragment in cases:
        for flags in ([], ["--overwrite"]):
            one_line_error(invoke(runner, "predict", *args, *flags), f"{fragment} name the same file")
    assert not out.exists()


def test_a_dangling_link_as_output_is_an_existing_output(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    link = tmp_path / "o.gpkg"
    link.symlink_to(tmp_path / "elsewhere" / "target.gpkg")  # points nowhere (yet)
    one_line_error(invoke(runner, "predict", scene, "-o", link, "--checkpoint", ckpts["seg"]), "exists and won't")
    assert link.is_symlink() and not (tmp_path / "elsewhere").exists()
    succeeded(invoke(runner, "predict", scene, "-o", link, "--checkpoint", ckpts["seg"], "--overwrite"))
    assert not link.is_symlink() and link.is_file()  # the link is replaced, nothing is written through it
    assert not (tmp_path / "elsewhere").exists()


# ---- temp paths: whose they are ----------------------------------------------------------------------------


def test_temps_of_another_pid_namespace_are_never_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from s5cli.geo.files import clean_stale_temps, temp_prefix

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    owner = temp_prefix("x").split("@", 1)[1][:-1]  # <host>.<our PID namespace>
    host, namespace = owner.rsplit(".", 1)
    ours = tmp_path / f".a.tmp-{pid}@{owner}-abc.tif"
    container = tmp_path / f".b.tmp-{pid}@{host}.{int(namespace) + 1}-def.tif"  # same host name, another namespace
    legacy = tmp_path / f".c.tmp-{pid}@{host}-ghi.tif"  # a name without a namespace: its owner is unknown
    for path in (ours, container, legacy):
        path.write_text("x")
    assert clean_stale_temps(tmp_path) == [ours]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([container.name, legacy.name])


def test_a_process_in_another_pid_namespace_tags_its_temps_apart(tmp_path: Path) -> None:
    import shutil as sh
    import subprocess
    import sys

    from s5cli.geo.files import temp_prefix

    if sh.which("unshare") is None:
        pytest.skip("no unshare")
    code = "from s5cli.geo.files import temp_prefix; print(temp_prefix('x'))"
    child = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    if child.returncode != 0:
        pytest.skip(f"new PID namespaces are refused here ({child.stderr.strip()[:80]})")
    theirs, ours = child.stdout.strip().split("@", 1)[1], temp_prefix("x").split("@", 1)[1]
    assert theirs.split(".")[0] == ours.split(".")[0] and theirs != ours  # same host, another owner
