"""Map the detection heads of official S5 / OBBDetection checkpoints onto our Oriented R-CNN heads.

Official names (mmdet 2.x modules, `OBBTwoStageDetectorMTD` with one neck/RPN/RoI head per task,
a single-dataset `OBBTwoStageDetector` has them unsuffixed):
- `neck_<task>.lateral_convs.{i}.conv.*`, `neck_<task>.fpn_convs.{i}.conv.*` (mmdet FPN ConvModules);
- `rpn_head_<task>.rpn_conv.*`, `.rpn_cls.*`, `.rpn_reg.*` (OrientedRPNHead);
- `roi_head_<task>.bbox_head.shared_fcs.{0,1}.*`, `.bbox_head.fc_cls.*`, `.bbox_head.fc_reg.*`
  (OBBShared2FCBBoxHead; background is the last `fc_cls` row, as in ours).
Ours (s5cli.detection.head under the network's `heads.<key>.`): `neck.lateral_convs.{i}.*`,
`neck.fpn_convs.{i}.*`, `rpn_head.rpn_{conv,cls,reg}.*`, `roi_head.shared_fcs.{0,1}.*`, `roi_head.fc_{cls,reg}.*`.
The official task names are `dior` and `dota`; our dataset names match them by their first word
(`dior-r` -> `dior`, `dota-v2.0` -> `dota`), exactly, or else by position in the official task order.
The MoE backbone indexes its experts in the config's `task_names` order (dior, dota): `task_experts`
gives each of our datasets the expert its matched heads were trained with.

Class order: OBBDetection numbers classes as BboxToolkit lists them (`datasets/misc.py::dataset_classes`,
picked by the split configs' `"classes": "dota2.0"`). For DOTA-v2.0 that order differs from the DOTA
devkit order our datasets use, so the `fc_cls` rows are permuted to our class order (background, the
last row, stays last) whenever our class names are a permutation of the official ones.
"""

from __future__ import annotations

import re

import torch

from s5cli.errors import InputError, S5Error
from s5cli.models.network import head_key

_MODULE = re.compile(r"(neck|rpn_head|roi_head)(?:_([^.]+))?\.(.+)")
# configs/obb/oriented_rcnn/mtd/vit_*_moe_dior_r_dota2.py: ViT_MOE(task_names=['dior', 'dota']), expert k = task k.
TASK_ORDER = ("dior", "dota")
# BboxToolkit/BboxToolkit/datasets/misc.py::dataset_classes, the order of the official fc_cls rows.
OFFICIAL_CLASSES: dict[str, tuple[str, ...]] = {
    "dota": ("large-vehicle", "swimming-pool", "helicopter", "bridge", "plane", "ship", "soccer-ball-field",
             "basketball-court", "ground-track-field", "small-vehicle", "baseball-diamond", "tennis-court",
             "roundabout", "storage-tank", "harbor", "container-crane", "airport", "helipad"),
    "dior": ("airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "expressway-service-area",
             "expressway-toll-station", "dam", "golffield", "groundtrackfield", "harbor", "overpass", "ship",
             "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill"),
}  # fmt: skip
_RULES = {
    "neck": [(r"(lateral_convs|fpn_convs)\.(\d+)\.conv\.(weight|bias)", r"neck.\1.\2.\3")],
    "rpn_head": [(r"(rpn_conv|rpn_cls|rpn_reg)\.(weight|bias)", r"rpn_head.\1.\2")],
    "roi_head": [
        (r"bbox_head\.shared_fcs\.(\d+)\.(weight|bias)", r"roi_head.shared_fcs.\1.\2"),
        (r"bbox_head\.(fc_cls|fc_reg)\.(weight|bias)", r"roi_head.\1.\2"),
    ],
}


def _first_word(name: str) -> str:
    return re.split(r"[-_.]", name.lower())[0]


def _match_tasks(tasks: list[str | None], names: list[str]) -> dict[str | None, str]:
    """{official task suffix (None: unsuffixed): our dataset name}."""
    if tasks == [None]:
        if len(names) != 1:
            raise InputError(f"a single-dataset detection checkpoint, but {len(names)} dataset names were given")
        return {None: names[0]}
    suffixed = [t for t in tasks if t is not None]
    if len(suffixed) != len(names):
        raise InputError(f"the checkpoint has detection heads for {suffixed}, but datasets {names} were given")
    found: dict[str | None, str] = {}
    left = list(names)
    for rule in (lambda t, n: t.lower() == n.lower() or t == head_key(n), lambda t, n: t.lower() == _first_word(n)):
        for task in suffixed:
            match = next((n for n in left if task not in found and rule(task, n)), None)
            if match is not None:
                found[task] = match
                left.remove(match)
    for task in suffixed:  # the rest by position, in the checkpoint's task order
        if task not in found:
            found[task] = left.pop(0)
    return found


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def _our_classes(name: str) -> list[str] | None:
    """The classes of a registered detection dataset (its record), None for a name the registry lacks."""
    from s5cli.datasets.registry import dataset_info

    try:
        info = dataset_info(name)
    except S5Error:
        return None
    return list(info.classes) if info.task == "detection" else None


def class_permutation(task: str | None, ours: list[str] | None) -> list[int] | None:
    """For each of our classes, its row in the official fc_cls of `task`; None when the orders cannot be matched."""
    official = [_norm(c) for c in OFFICIAL_CLASSES.get((task or "").lower(), ())]
    if not official or ours is None or sorted(_norm(c) for c in ours) != sorted(official):
        return None
    return [official.index(_norm(c)) for c in ours]


def _tasks(state_dict: dict[str, torch.Tensor]) -> list[str | None]:
    """The official task suffixes of the detection heads (None: unsuffixed), in the file's order."""
    tasks: list[str | None] = []
    for key in state_dict:
        m = _MODULE.fullmatch(key.removeprefix("module."))
        if m and m.group(2) not in tasks:
            tasks.append(m.group(2))
    if None in tasks and len(tasks) > 1:
        raise InputError("the checkpoint mixes unsuffixed and per-dataset detection heads")
    return tasks


def task_experts(state_dict: dict[str, torch.Tensor], dataset_names: list[str]) -> list[int]:
    """For each of our datasets, the index of the official MoE expert its matched detection heads used."""
    tasks = _tasks(state_dict)
    if not tasks or tasks == [None]:
        return list(range(len(dataset_names)))
    owner = _match_tasks(tasks, list(dataset_names))
    task_of = {name: task for task, name in owner.items()}
    order = [t for t in TASK_ORDER if t in tasks] + [t for t in tasks if t not in TASK_ORDER]
    return [order.index(task_of[n]) for n in dataset_names]


def map_detection_keys(
    state_dict: dict[str, torch.Tensor],
    dataset_names: list[str],
    prefix: str = "heads.",
    class_names: dict[str, list[str]] | None = None,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Official neck/RPN/RoI-head tensors renamed to `<prefix><head key>.<our name>`; returns (mapped, unmapped keys).

    Keys of other parts (e.g. `backbone.*`) and unknown head keys come back in the unmapped list.
    `class_names` gives our class order per dataset (default: the known dataset tables); the
    classification rows are reordered from the official order to it (see the module docstring).
    """
    tasks = _tasks(state_dict)
    if not tasks:
        return {}, list(state_dict)
    owner = _match_tasks(tasks, list(dataset_names))
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        m = _MODULE.fullmatch(key.removeprefix("module."))
        target = None
        if m:
            module, task, rest = m.groups()
            for pattern, replacement in _RULES[module]:
                if re.fullmatch(pattern, rest):
                    target = f"{prefix}{head_key(owner[task])}." + re.sub(pattern, replacement, rest)
                    break
        if target is None:
            unmapped.append(key)
            continue
        if target.endswith(("roi_head.fc_cls.weight", "roi_head.fc_cls.bias")):
            name = owner[m.group(2)]
            ours = (class_names or {}).get(name) or _our_classes(name)
            order = class_permutation(m.group(2) or _first_word(name), ours)
            if order is not None and value.ndim >= 1 and value.shape[0] == len(order) + 1:
                value = value[[*order, len(order)]]  # background stays last
        mapped[target] = value
    return mapped, unmapped
