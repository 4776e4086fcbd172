"""The package's data flow shows in its imports: each layer imports only from layers above it."""

import ast
from pathlib import Path

import s5cli

ROOT = Path(s5cli.__file__).parent
# geo -> datasets/metrics -> models/detection -> training -> stages -> demo -> cli
LAYER = {
    "errors": 0, "config": 0, "console": 0, "__init__": 0,
    "geo": 1,
    "datasets": 2, "metrics": 2,
    "models": 3, "detection": 3,
    "training": 4,
    "pretrain": 5, "finetune": 5, "evaluation": 5, "inference": 5, "curation": 5,
    "demo": 6,
    "cli": 7, "__main__": 8,
}  # fmt: skip
# Pure contracts that lower layers may use: the model spec (a config type, no torch) and box geometry
# (conversions, and the exact polygon clipping that dataset windows and mAP share).
ALLOWED = {"s5cli.models.spec", "s5cli.detection.boxes", "s5cli.detection.iou"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) of every s5cli / third-party import in a file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out += [(n, id(node) in top) for n in names]
    return out


def test_layers_import_only_upwards() -> None:
    bad = []
    for path in ROOT.rglob("*.py"):
        mine = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for module, _ in _imports(path):
            if not module.startswith("s5cli.") or module in ALLOWED:
                continue
            theirs = module.split(".")[1]
            if LAYER.get(theirs, 0) > LAYER[mine]:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert bad == []


def test_typer_only_in_cli_and_cli_imports_torch_lazily() -> None:
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        for module, top_level in _imports(path):
            if module.split(".")[0] == "typer":
                assert rel.parts[0] == "cli", f"{rel} imports typer"
            if rel.parts[0] == "cli" and top_level:
                assert module.split(".")[0] not in ("torch", "rasterio", "geopandas", "timm"), f"{rel}: {module}"
