"""`s5 export`: one dataset's dense model out of a multi-dataset (MoE-MDF) checkpoint, for fast predict.

The shared fc2 and the dataset's expert are concatenated back into one dense fc2 in every block
(models.moe.export_dense), and only that dataset's head is kept: the exported model computes exactly what
the MoE model computes for that dataset, at the cost of a plain ViT.
"""

from __future__ import annotations

import os
from pathlib import Path

from s5cli.errors import InputError
from s5cli.geo.files import check_distinct_outputs, check_output


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    dataset: str | None,
    output: str | os.PathLike[str],
    overwrite: bool = False,
) -> Path:
    """Write the dense single-dataset model of `checkpoint`'s head `dataset` to `output`; returns output.

    `dataset` may be None for a checkpoint with one head. The exported model keeps that head's trained
    input and the input contract its data were read under (InputSpec.for_head).
    """
    from s5cli.models.checkpoint import load_checkpoint, save_checkpoint
    from s5cli.models.moe import export_dense

    check_output(output, overwrite)
    check_distinct_outputs([("-o/--output", output)], [checkpoint])
    model, spec, rest = load_checkpoint(checkpoint)
    names = [h.name for h in spec.heads]
    if dataset is None:
        if len(names) > 1:
            raise InputError(
                f"this checkpoint has several heads ({', '.join(names)}); choose one with --dataset", checkpoint
            )
        dataset = names[0]
    name = dataset if dataset in names else _canonical_or_none(dataset)
    if name not in names:
        raise InputError(f"no head for {dataset} in this checkpoint; it has: {', '.join(names)}", checkpoint)
    dense = export_dense(model, name)  # the head keeps its trained input (HeadSpec.input)
    dense.spec = dense.spec.model_copy(update={"input": spec.input.for_head(name)})  # builds no parameters
    extra = dict(rest.get("extra") or {})
    metrics = extra.get("metrics") or {}
    kept = {k: v for k, v in metrics.items() if not k.startswith("val_") or name in k}
    info = {
        "stage": "export",
        "source": str(checkpoint),
        "source_stage": extra.get("stage"),
        "dataset": name,
        "metrics": kept,
    }
    return save_checkpoint(output, dense, config=rest.get("config"), extra=info, overwrite=overwrite)


def _canonical_or_none(name: str) -> str | None:
    from s5cli.datasets.registry import canonical_name
    from s5cli.errors import S5Error

    try:
        return canonical_name(name)
    except S5Error:
        return None
