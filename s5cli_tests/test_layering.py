"""The package's data flow shows in its imports: each layer imports only from layers above it."""

import ast
from pathlib import Path

import s5cli

ROOT = Path(s5cli.__file__).parent
# geo, geometry -> datasets, metrics -> models, detection -> training -> scoring -> stages -> demo -> cli
# (docs/architecture.md)
LAYER = {
    "errors": 0, "config": 0, "console": 0, "__init__": 0,
    "geo": 1, "geometry": 1,
    "datasets": 2, "metrics": 2,
    "models": 3, "detection": 3,
    "training": 4,
    "scoring": 5,
    "pretrain": 6, "finetune": 6, "evaluation": 6, "inference": 6, "curation": 6,
    "demo": 7,
    "cli": 8, "__main__": 9,
}  # fmt: skip
STAGES = {name for name, layer in LAYER.items() if layer == 6}


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
            if not module.startswith("s5cli."):
                continue
            theirs = module.split(".")[1]
            if theirs not in LAYER:
                bad.append(f"{path.relative_to(ROOT)} imports {module}, which has no layer")
            elif LAYER[theirs] > LAYER[mine] or (mine in STAGES and theirs in STAGES and theirs != mine):
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
