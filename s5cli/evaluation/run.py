"""`run_evaluate(cfg)`: a checkpoint scored on benchmark splits, a per-class CSV and server submissions.

Everything that can fail on the user's input (outputs that exist, unknown datasets, a checkpoint without
the head or with a head of the other task, missing dataset folders) is checked before any image is read.
"""

from __future__ import annotations

import csv
import io
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s5cli.console import info, warn
from s5cli.detection.patches import SUBMISSION_MERGE_IOU
from s5cli.errors import InputError
from s5cli.evaluation.config import EvaluateConfig
from s5cli.evaluation.modes import patch_gap, protocol_for
from s5cli.evaluation.scoring import DatasetResult, EvalSettings, evaluate_dataset
from s5cli.geo.files import atomic_output, check_output

CSV_COLUMNS = ("dataset", "split", "class", "IoU", "F1", "AP", "num_gt", "num_det", "excluded")


@dataclass(frozen=True)
class Job:
    """One dataset to score: where it is and how."""

    name: str
    info: Any  # DatasetInfo
    root: Path
    split: str
    options: dict[str, Any]
    settings: EvalSettings


def check_head(spec: Any, info: Any, checkpoint: str | os.PathLike[str]) -> Any:
    """The checkpoint's head for a dataset; InputError if absent, of the other task, or with other classes."""
    names = [h.name for h in spec.heads]
    head = next((h for h in spec.heads if h.name == info.name), None)
    if head is None:
        raise InputError(f"no head for {info.name} in this checkpoint; it has: {', '.join(names)}", checkpoint)
    if head.task != info.task:
        raise InputError(
            f"the {info.name} head is a {head.task} head but {info.name} is a {info.task} dataset", checkpoint
        )
    if list(info.classes[: head.num_classes]) != list(head.classes):
        raise InputError(f"the {info.name} head's classes do not match the dataset's ({head.classes})", checkpoint)
    return head


def trained_size(extra: dict[str, Any], name: str, default: int) -> int:
    """The input size a head was fine-tuned at (stored by s5 finetune), else `default`."""
    sizes = extra.get("input_sizes") or {}
    return int(sizes.get(name, default))


def plan_jobs(cfg: EvaluateConfig, spec: Any, extra: dict[str, Any]) -> list[Job]:
    """Resolve every dataset's head, folder, split, mode and sizes (all user errors surface here)."""
    from s5cli.datasets.registry import is_dataset_yaml, resolve_dataset

    names = cfg.datasets or [h.name for h in spec.heads]
    jobs = []
    for raw in names:
        own = cfg.settings_for(raw) if not is_dataset_yaml(raw) else None
        name, dinfo, root = resolve_dataset(raw, cfg.data_root, own.root if own else None)
        if own is None:
            own = cfg.settings_for(name)
        check_head(spec, dinfo, cfg.checkpoint)
        proto = protocol_for(name, dinfo.task)
        split = own.split or cfg.split or proto.split
        if dinfo.task == "segmentation":
            mode = own.mode or cfg.mode or proto.mode
            size = cfg.tile_size or trained_size(extra, name, spec.input.tile_size)
        else:
            mode = proto.mode
            size = cfg.det_size or trained_size(extra, name, 1024)
        flip = own.flip if own.flip is not None else (cfg.flip if cfg.flip is not None else proto.flip)
        options = dict(proto.options)
        if proto.windows and mode == "crop":
            options.update(crop_size=size, stride=size)  # the loader cuts the tiles the crop mode predicts
        options.update(own.options)
        settings = EvalSettings(
            mode=mode,  # type: ignore[arg-type]
            size=size,
            flip=bool(flip) and dinfo.task == "segmentation",
            overlap=own.overlap if own.overlap is not None else (proto.overlap or 0.5),
            gap=cfg.patch_gap if cfg.patch_gap is not None else patch_gap(size),
            merge_iou=SUBMISSION_MERGE_IOU if split == proto.submission_split else None,  # server files
            batch_size=cfg.batch_size,
            max_images=cfg.max_images,
        )
        jobs.append(Job(name, dinfo, Path(root), split, options, settings))
    return jobs


def write_csv(path: Path, results: list[DatasetResult], overwrite: bool) -> Path:
    """Per-class metrics, one row per (dataset, class), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for res in results:
        for row in res.per_class:
            out = {"dataset": res.dataset, "split": res.split}
            for key, value in row.items():
                out[key] = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)
            writer.writerow(out)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def run_evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Score a checkpoint; returns {"checkpoint", "datasets": [DatasetResult dicts], "csv", "predictions"}."""
    from s5cli.datasets.registry import get_dataset
    from s5cli.evaluation.submissions import SubmissionWriter
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli.training.amp import resolve_precision
    from s5cli.training.distributed import resolve_device

    for out in (cfg.output, cfg.save_predictions):
        if out is not None:
            check_output(out, cfg.overwrite)
    device = resolve_device(cfg.device)
    model, spec, rest = load_checkpoint(cfg.checkpoint, device)
    jobs = plan_jobs(cfg, spec, rest.get("extra") or {})
    datasets = [get_dataset(j.name, j.root, j.split, **j.options) for j in jobs]  # folders checked up front
    precision = resolve_precision(cfg.amp, device)
    results: list[DatasetResult] = []
    with ExitStack() as stack:
        folder = None
        if cfg.save_predictions is not None:
            folder = stack.enter_context(atomic_output(cfg.save_predictions, cfg.overwrite, directory=True))
        for job, dataset in zip(jobs, datasets):
            writer = None
            if folder is not None:
                writer = SubmissionWriter(folder, job.name, job.info.task, list(job.info.classes))
            result = evaluate_dataset(
                model,
                job.info,
                dataset,
                job.settings,
                split=job.split,
                device=device,
                autocast=precision.autocast,
                on_prediction=writer.add if writer is not None else None,
            )
            if writer is not None:
                writer.close()
            if not result.labeled:
                warn(f"{job.name} {job.split}: no labels, so no scores (predictions only)")
            results.append(result)
    if cfg.output is not None:
        write_csv(cfg.output, results, cfg.overwrite)
        info(f"wrote {cfg.output}")
    if cfg.save_predictions is not None:
        info(f"wrote {cfg.save_predictions}")
    return {
        "checkpoint": str(cfg.checkpoint),
        "datasets": [r.as_dict() for r in results],
        "csv": str(cfg.output) if cfg.output is not None else None,
        "predictions": str(cfg.save_predictions) if cfg.save_predictions is not None else None,
    }


def summary_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """Table rows (percent, 2 decimals; '-' where undefined): dataset, split, mode, images, metric, score, ..."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    rows = []
    for res in summary["datasets"]:
        values = res["values"]
        rows.append(
            {
                "dataset": res["dataset"],
                "split": res["split"],
                "mode": res["mode"],
                "images": str(res["images"]),
                "metric": res["metric"],
                "score": pct(res["score"]),
                "mIoU": pct(values.get("mIoU")),
                "mF1": pct(values.get("mF1")),
                "OA": pct(values.get("OA")),
                "mAP": pct(values.get("mAP")),
            }
        )
    return rows
