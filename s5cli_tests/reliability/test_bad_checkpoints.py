"""Checkpoints that would load into garbage, or allocate gigabytes, refused as one line before any work.

Each case edits a real tiny checkpoint (spec, tensors or bytes) and runs `s5 predict` with it (some also
`s5 export` and `s5 evaluate`): exit 2, one `error: <ckpt>: ...` line, an empty output folder.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import DATA, empty, invoke, one_line_error, succeeded


def edited(source: Path, dest: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of a checkpoint with its loaded dict edited in place (spec, state_dict, checksum)."""
    ckpt = torch.load(source, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dest)
    return dest


def _spec(**changes) -> Callable[[dict], None]:
    def edit(ckpt: dict) -> None:
        for dotted, value in changes.items():
            node = ckpt["spec"]
            *parents, last = dotted.split("__")
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            node[int(last) if isinstance(node, list) else last] = value

    return edit


def _all_nan(ckpt: dict) -> None:
    for tensor in ckpt["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))


def _one_nan(ckpt: dict) -> None:
    ckpt["state_dict"]["backbone.patch_embed.proj.weight"][0, 0, 0, 0] = float("nan")


def _complex(ckpt: dict) -> None:
    ckpt["state_dict"]["backbone.pos_embed"] = ckpt["state_dict"]["backbone.pos_embed"].to(torch.complex64)


PATCH = "backbone.patch_embed.proj.weight"
BROKEN = {
    "palette_past_255": (_spec(heads__0__palette__0__0=300), "checkpoint spec is invalid at 'heads.0.palette.0.0'"),
    "img_size_negative": (_spec(img_size=-64), "invalid at 'img_size': Input should be greater than or equal to 16"),
    "gsd_zero": (_spec(input__gsd=0.0), "invalid at 'input.gsd': Input should be greater than 0"),
    "std_zero": (_spec(input__std=[0.0, 0.0, 0.0]), "invalid at 'input.std': Value error, std values must be at least"),
    "scale_zero": (_spec(input__scale=0.0), "invalid at 'input.scale': Input should be greater than 0"),
    "mean_nan": (_spec(input__mean=[float("nan")] * 3), "invalid at 'input.mean.0': Input should be a finite number"),
    "all_weights_nan": (_all_nan, "holds"),
    "one_patch_embedding_nan": (_one_nan, f"weights entry '{PATCH}' holds 1 NaN or infinite value(s)"),
    "complex_tensor": (_complex, "weights entry 'backbone.pos_embed' holds complex numbers (torch.complex64)"),
    # 65536 px: a 4 GiB position embedding; refused from the meta-device shapes, nothing is allocated
    "img_size_65536": (
        _spec(img_size=65536),
        "'backbone.pos_embed' is (1, 16, 64), the spec makes it (1, 16777216, 64)",
    ),
    "decoder_channels_1e6": (_spec(decoder_channels=1_000_000), "weights do not fit the spec: 'heads.demo.decoder"),
    "preset_of_another_size": (_spec(preset="vit-tiny"), "weights do not fit the spec: missing ['backbone.blocks.2"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_checkpoints_are_refused(runner, tmp_path: Path, ckpts, case: str) -> None:
    edit, fragment = BROKEN[case]
    bad = edited(ckpts["seg"], tmp_path / "bad.pt", edit)
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    line = one_line_error(invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", bad), fragment)
    assert line.startswith(f"error: {bad}: "), line
    if case == "all_weights_nan":  # export would have written a NaN model; evaluate would score one
        one_line_error(invoke(runner, "export", bad, "--dataset", "demo", "-o", out / "e.pt"), "NaN")
        potsdam = edited(ckpts["potsdam"], tmp_path / "p.pt", edit)
        args = [potsdam, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "m.csv"]
        one_line_error(invoke(runner, "evaluate", *args), "NaN or infinite value(s)")
    empty(out)


def _data_offset(path: Path, member: zipfile.ZipInfo) -> int:
    """Where a stored zip member's bytes start: after its local header (30 bytes, the name, the extra field)."""
    with open(path, "rb") as f:
        f.seek(member.header_offset)
        header = f.read(30)
    return member.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")


def test_flipped_tensor_bytes_fail_the_checksum(runner, tmp_path: Path, ckpts) -> None:
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(ckpts["seg"].read_bytes())
    with zipfile.ZipFile(bad) as archive:
        largest = max((m for m in archive.infolist() if "/data/" in m.filename), key=lambda m: m.file_size)
    assert largest.file_size > 8192
    start = _data_offset(bad, largest) + largest.file_size // 2 - 2048
    data = bytearray(bad.read_bytes())
    data[start : start + 4096] = bytes(b ^ 0x5A for b in data[start : start + 4096])  # 4 KiB, still finite
    bad.write_bytes(bytes(data))
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    result = invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", bad)
    assert one_line_error(result) == f"error: {bad}: the weights do not match their checksum: the file is corrupted"
    empty(out)


def test_the_checksum_names_corruption_and_old_checkpoints_still_load(runner, tmp_path: Path, ckpts) -> None:
    def shifted(ckpt: dict) -> None:
        ckpt["state_dict"][PATCH][0, 0, 0, 0] += 0.5  # finite, but not what was saved

    bad = edited(ckpts["seg"], tmp_path / "bad.pt", shifted)
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    result = invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", bad)
    assert one_line_error(result) == f"error: {bad}: the weights do not match their checksum: the file is corrupted"
    empty(out)
    old = edited(ckpts["seg"], tmp_path / "old.pt", lambda ckpt: ckpt.pop("checksum"))  # written before checksums
    succeeded(invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", old))


def test_an_allocation_failure_is_one_line(runner, tmp_path: Path, ckpts, monkeypatch) -> None:
    from s5cli.models import checkpoint

    def allocator_fails(spec):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    monkeypatch.setattr(checkpoint, "build_model", allocator_fails)
    monkeypatch.setattr(checkpoint, "check_shapes", lambda *args: None)
    result = invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"])
    one_line_error(result, "out of memory; try a smaller --batch-size or --tile-size")
    empty(out)


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("patch_embed.projection.weight", torch.zeros(64), "'patch_embed.projection.weight' is a 1-D tensor (64,)"),
        ("pos_embed", torch.tensor(0.0), "'pos_embed' is a 0-D tensor (); S5 weights hold a 3-D one"),
        ("layers.0.ln1.weight", torch.full((64,), float("nan")), "holds 64 NaN or infinite value(s)"),
    ],
    ids=["1d_patch_embedding", "0d_pos_embed", "nan_weights"],
)
def test_weights_import_refuses_tensors_of_the_wrong_rank(runner, tmp_path: Path, key, value, fragment) -> None:
    from s5cli_tests.models.official_keys import official_encoder
    from s5cli_tests.models.tiny import tiny_model

    official = official_encoder(tiny_model("isaid"))
    assert key in official
    official[key] = value
    source = tmp_path / "s4p.pth"
    torch.save({"model": official}, source)
    out = tmp_path / "out"
    line = one_line_error(invoke(runner, "-q", "weights", "import", source, "-o", out / "w.pt"), fragment)
    assert line.startswith(f"error: {source}: ")
    empty(out)
