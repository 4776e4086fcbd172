"""Shared checks of the reliability suite: one-line errors, untouched destinations, tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "s5cli_tests" / "data"


def invoke(runner, *args: object):
    """Run `s5 ARGS...` in-process (stdout and stderr captured separately)."""
    from s5cli.cli import app

    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, fragment: str = "") -> str:
    """Assert exit 2 with exactly one stderr line `error: ...` containing `fragment`, and no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def last_line_error(result, fragment: str = "") -> str:
    """Exit 2; the last stderr line is the only error line (warnings may precede it under -q); no traceback."""
    assert result.exit_code == 2, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    lines = result.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("error: ")] == lines[-1:], result.stderr
    assert all(ln.startswith("warning: ") for ln in lines[:-1]), result.stderr
    assert fragment in lines[-1] and "Traceback" not in result.stdout + result.stderr, lines[-1]
    return lines[-1]


def succeeded(result) -> None:
    """Assert exit 0 without a traceback."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr


def empty(folder: Path) -> None:
    """Nothing was left in an output folder: no output, no hidden temp file, scratch folder or run directory."""
    assert not folder.exists() or sorted(p.name for p in folder.iterdir()) == []


def pretrain_on_manifest(runner, manifest: Path, out: Path):
    """`s5 pretrain` (tiny config, fake iSAID) for 2 steps on a corpus manifest as the unlabeled source."""
    config = REPO / "configs" / "pretrain" / "tiny.yaml"
    args = ["--config", config, "--data-root", DATA, "--unlabeled-manifest", manifest, "--iterations", 2]
    return invoke(runner, "-q", "pretrain", *args, "--eval-every", 0, "-o", out)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under a folder (hidden ones included) with the bytes of files (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def build_checkpoint(path: Path, heads: list, tile: int = 64, bands: int = 3, names: list[str] | None = None) -> Path:
    """A vit-nano checkpoint with narrow decoders (seeded random weights) through build_model + save_checkpoint."""
    import torch

    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import InputSpec, ModelSpec
    from s5cli_tests.models.tiny import trained_at

    torch.manual_seed(0)
    names = names or ["red", "green", "blue", "nir"][:bands]
    spec = ModelSpec(
        preset="vit-nano",
        heads=trained_at(heads, tile),
        img_size=tile,
        decoder_channels=32,
        input=InputSpec(bands=names, mean=[0.5] * bands, std=[0.25] * bands, gsd=0.5),
    )
    model = build_model(spec)
    with torch.no_grad():  # a fresh head predicts one class everywhere; give it some contrast
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return save_checkpoint(path, model.eval())
