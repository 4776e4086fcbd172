"""Untrusted files: pickled code in checkpoints is refused unrun; manifest paths stay inside their corpus.

What counts as the user's own instruction (docs/reliability.md): command-line paths, stage configs and
dataset YAMLs are honoured as typed (`..` and absolute paths included). A curate manifest is data: its
relative paths must resolve inside the corpus folder (`..` or a symlink out of it is refused); an
absolute path in it is an explicit choice of whoever wrote it and is read as given.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import DATA, REPO, invoke, last_line_error, one_line_error, succeeded

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
    args = ["--config", PRETRAIN_TINY, "--data-root", DATA, "--unlabeled-manifest", corpus / "manifest.parquet"]
    result = invoke(runner, "-q", "pretrain", *args, "--iterations", 2, "--eval-every", 0, "-o", tmp_path / "run")
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


def test_absolute_manifest_paths_are_read_as_given(runner, tmp_path: Path, ckpts) -> None:
    from s5cli.datasets.corpus import CorpusDataset

    corpus = _corpus(runner, tmp_path, ckpts)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(corpus / "images", elsewhere)
    paths = sorted(str(p) for p in elsewhere.rglob("*.tif"))
    _set_column(corpus, "path", paths)
    shutil.rmtree(corpus / "images")
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
