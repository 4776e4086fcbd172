"""`run_evaluate(cfg)`: a checkpoint scored on benchmark splits, a per-class CSV and server submissions.

Everything that can fail on the user's input (outputs that exist, unknown datasets, a checkpoint without
the head or with a head of the other task, missing dataset folders) is checked before any image is read.
"""

from __future__ import annotations

import csv
import io
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from s5cli.console import info, warn
from s5cli.errors import InputError
from s5cli.evaluation.config import EvaluateConfig
from s5cli.geo.files import atomic_output, check_distinct_outputs, check_output
from s5cli.scoring.plan import Choices, Job, check_head, plan_job
from s5cli.scoring.score import DatasetResult, evaluate_dataset, format_score

CSV_COLUMNS = ("dataset", "split", "class", "IoU", "F1", "AP", "num_gt", "num_det", "excluded")


def _dataset_yamls(value: Any) -> list[str]:
    """The dataset YAMLs named anywhere in a checkpoint's training config (suggested, never opened)."""
    from s5cli.datasets.registry import is_dataset_yaml

    if isinstance(value, dict):
        return [y for v in value.values() for y in _dataset_yamls(v)]
    if isinstance(value, list | tuple):
        return [y for v in value for y in _dataset_yamls(v)]
    return [value] if isinstance(value, str) and is_dataset_yaml(value) else []


def _own_data_heads(cfg: EvaluateConfig, spec: Any, trained: Any) -> None:
    """Without --datasets every head is scored on its dataset: a head of your own data needs its YAML."""
    from s5cli.datasets.registry import FOLDER_DATASETS, same_dataset

    own = [h.name for h in spec.heads if not any(same_dataset(h.name, name) for name in FOLDER_DATASETS)]
    if cfg.datasets is None and own:
        yamls = list(dict.fromkeys(_dataset_yamls(trained)))
        hint = f"; it was trained with {' and '.join(yamls)}" if yamls else ""
        raise InputError(
            f"the {', '.join(own)} head{'s were' if len(own) > 1 else ' was'} trained on your own data: pass "
            f"the dataset YAML with --datasets{hint}",
            cfg.checkpoint,
        )


def plan_jobs(cfg: EvaluateConfig, spec: Any, trained: Any = None) -> list[Job]:
    """Resolve every dataset's head, folder, split, mode and sizes (all user errors surface here).

    `trained` is the checkpoint's training config, named in the hint when a head needs a dataset YAML.
    """
    from s5cli.datasets.registry import check_settings_keys, is_dataset_yaml, resolve_dataset

    _own_data_heads(cfg, spec, trained)
    names = cfg.datasets or [h.name for h in spec.heads]
    jobs = []
    for raw in names:
        own = cfg.settings_for(raw) if not is_dataset_yaml(raw) else None
        name, info, root = resolve_dataset(raw, cfg.data_root, own.root if own else None)
        own = own or cfg.settings_for(name)
        heads = [h.name for h in spec.heads]
        if name not in heads:
            raise InputError(f"no head for {name} in this checkpoint; it has: {', '.join(heads)}", cfg.checkpoint)
        head = spec.head(name)
        check_head(head, info, str(cfg.checkpoint))
        choices = Choices(
            split=own.split or cfg.split,
            mode=own.mode or cfg.mode,
            flip=own.flip if own.flip is not None else cfg.flip,
            overlap=own.overlap,
            tile_size=cfg.tile_size,
            det_size=cfg.det_size,
            patch_gap=cfg.patch_gap,
            batch_size=cfg.batch_size,
            max_images=cfg.max_images,
            options=own.options,
            protocol=cfg.protocol,
        )
        jobs.append(plan_job(info, head, root, choices, spec.preset, spec.input.for_head(head.name).bands))
    check_settings_keys(cfg.dataset_settings, [job.name for job in jobs])
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
    from s5cli.evaluation.submissions import SubmissionWriter
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli.training.device import inference_precision, resolve_device

    for out in (cfg.output, cfg.save_predictions):
        if out is not None:
            check_output(out, cfg.overwrite)
    device = resolve_device(cfg.device)
    model, spec, rest = load_checkpoint(cfg.checkpoint, device)
    jobs = plan_jobs(cfg, spec, rest.get("config"))
    outputs = [("-o/--output", cfg.output), ("--save-predictions", cfg.save_predictions)]
    check_distinct_outputs(outputs, [cfg.checkpoint, *(job.root for job in jobs)])
    datasets = [job.load() for job in jobs]  # folders checked up front
    precision = inference_precision(cfg.amp, device)
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
                job.head,
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
    """Table rows (scores as fractions, scoring.score.format_score): dataset, split, mode, images, metric, score..."""
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
                "score": format_score(res["score"]),
                "mIoU": format_score(values.get("mIoU")),
                "mF1": format_score(values.get("mF1")),
                "OA": format_score(values.get("OA")),
                "mAP": format_score(values.get("mAP")),
            }
        )
    return rows
