"""The head of a dataset named in a weights file: the dataset record's, or generic class names when unknown."""

from __future__ import annotations

from s5cli.console import warn
from s5cli.datasets.benchmarks import S5_SEGMENTATION_DATASETS
from s5cli.errors import InputError, S5Error
from s5cli.models.spec import HeadSpec

__all__ = ["S5_SEGMENTATION_DATASETS", "known_head"]


def known_head(name: str, num_classes: int | None = None, task: str = "segmentation") -> HeadSpec:
    """The HeadSpec of a dataset record, if its task and class count fit; else generic class names.

    ISPRS records give S5's 5-class heads (clutter ignored), so official Potsdam / Vaihingen heads fit.
    """
    from s5cli.datasets.registry import dataset_info

    try:
        spec = HeadSpec.from_dataset(dataset_info(name))
    except S5Error:
        spec = None
    if spec is not None and spec.task == task and (num_classes is None or spec.num_classes == num_classes):
        return spec
    if num_classes is None:
        raise InputError(f"unknown dataset '{name}': its class names are not known, give a known dataset name")
    if spec is not None:
        warn(f"{name}: the weights have {num_classes} classes, not the dataset's; using generic class names")
    return HeadSpec(name=name, task=task, classes=[f"class_{i}" for i in range(num_classes)])  # type: ignore[arg-type]
