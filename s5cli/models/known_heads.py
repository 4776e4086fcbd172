"""Class names and palettes of the datasets S5 released weights for, used when importing weights.

The datasets registry (s5cli/datasets/registry.py) is the source of truth when it is installed;
this table is the fallback, from s5_method.md §1 and §4 and the official util/test_utils.py palettes.
"""

from __future__ import annotations

from s5cli.console import warn
from s5cli.errors import InputError, S5Error
from s5cli.models.spec import HeadSpec

_ISPRS = [
    ("impervious_surface", (255, 255, 255)),
    ("building", (0, 0, 255)),
    ("low_vegetation", (0, 255, 255)),
    ("tree", (0, 255, 0)),
    ("car", (255, 255, 0)),
]

_FALLBACK: dict[str, list[tuple[str, tuple[int, int, int]]]] = {
    "vaihingen": _ISPRS,
    "potsdam": _ISPRS,
    "openearthmap": [
        ("unknown", (0, 0, 0)),
        ("bareland", (128, 0, 0)),
        ("rangeland", (0, 255, 36)),
        ("developed", (148, 148, 148)),
        ("road", (255, 255, 255)),
        ("tree", (34, 97, 38)),
        ("water", (0, 69, 255)),
        ("agriculture", (75, 181, 73)),
        ("building", (222, 31, 7)),
    ],
    "loveda": [
        ("background", (255, 255, 255)),
        ("building", (255, 0, 0)),
        ("road", (255, 255, 0)),
        ("water", (0, 0, 255)),
        ("barren", (159, 129, 183)),
        ("forest", (0, 255, 0)),
        ("agriculture", (255, 195, 128)),
    ],
    # S4P label space: background + the 15 iSAID classes in mmseg order (S4_Pretrain/util/classes.py)
    "isaid": [
        ("background", (0, 0, 0)),
        ("ship", (0, 0, 63)),
        ("storage_tank", (0, 63, 63)),
        ("baseball_diamond", (0, 63, 0)),
        ("tennis_court", (0, 63, 127)),
        ("basketball_court", (0, 63, 191)),
        ("ground_track_field", (0, 63, 255)),
        ("bridge", (0, 127, 63)),
        ("large_vehicle", (0, 127, 127)),
        ("small_vehicle", (0, 0, 127)),
        ("helicopter", (0, 0, 191)),
        ("swimming_pool", (0, 0, 255)),
        ("roundabout", (0, 191, 127)),
        ("soccer_ball_field", (0, 127, 191)),
        ("plane", (0, 127, 255)),
        ("harbor", (0, 100, 155)),
    ],
}

# The MoE-MDF segmentation datasets in the official task order (expert index = position).
S5_SEGMENTATION_DATASETS = ["vaihingen", "potsdam", "openearthmap", "loveda"]
# Their class counts in S5 (configs/rsseg.yaml): the ISPRS sets predict 5 classes, clutter (mask value 5) is ignored.
S5_NUM_CLASSES = {"vaihingen": 5, "potsdam": 5, "openearthmap": 9, "loveda": 7, "isaid": 16}
_IGNORE = {"vaihingen": 5, "potsdam": 5}


def _from_registry(name: str) -> HeadSpec | None:
    try:
        from s5cli.datasets.registry import dataset_info
    except ImportError:
        return None
    try:
        return dataset_info(name).head_spec()
    except (S5Error, KeyError, AttributeError):
        return None


def known_head(name: str, num_classes: int | None = None, task: str = "segmentation") -> HeadSpec:
    """The HeadSpec of a dataset: registry first, then the fallback table, else generic class names.

    With `num_classes`, a known spec with another class count is not used: e.g. the registry's
    6-class ISPRS sets (clutter included) give way to S5's 5-class heads (clutter ignored).
    """
    spec = _from_registry(name)
    if spec is not None and spec.task == task and (num_classes is None or spec.num_classes == num_classes):
        return spec
    table = _FALLBACK.get(name.lower()) if task == "segmentation" else None
    if table is not None and (num_classes is None or len(table) == num_classes):
        classes, palette = [c for c, _ in table], [p for _, p in table]
        return HeadSpec(name=name, task=task, classes=classes, palette=palette, ignore_index=_IGNORE.get(name, 255))
    if num_classes is None:
        raise InputError(f"unknown dataset '{name}': its class names are not known, give a known dataset name")
    if spec is not None or table is not None:
        warn(f"{name}: the weights have {num_classes} classes, not the dataset's; using generic class names")
    return HeadSpec(name=name, task=task, classes=[f"class_{i}" for i in range(num_classes)])
