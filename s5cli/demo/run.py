"""`s5 demo`: the whole S5 chain on a generated world, through the same functions as the commands.

world -> curate (unlabeled scenes -> corpus) -> pretrain (S4P, tiny) -> finetune (MoE-MDF over two
datasets: land cover and buildings, both your-own-GIS-data YAMLs) -> evaluate -> export -> predict
(GeoPackage + class COG + quick-look PNG). Sized to finish in a few minutes on 2 CPU cores: the
models are tiny and barely trained, so the maps show the plumbing, not S5's accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from s5cli.config import build_config
from s5cli.console import info
from s5cli.demo.world import CLASSES, PALETTE, World, build_world
from s5cli.geo.files import atomic_output

PRESET = "vit-nano"  # 2 blocks, width 64: minutes on a CPU
TILE = 64


def _dataset_yaml(path: Path, name: str, classes: list[str], layer: str, palette: list[tuple[int, int, int]]) -> Path:
    spec = {
        "name": name,
        "task": "segmentation",
        "classes": classes,
        "palette": [list(c) for c in palette],
        "scenes": [{"path": "scene_train.tif", "split": "train"}, {"path": "scene_val.tif", "split": "val"}],
        "labels": "labels.gpkg",
        "layer": layer,
        "class_column": "class_name",
        "background": "background",
        "tile_size": TILE,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _timed(name: str, steps: list[dict[str, Any]], fn: Callable[[], Any]) -> Any:
    info(f"[demo] {name} ...")
    start = time.perf_counter()
    result = fn()
    steps.append({"step": name, "seconds": round(time.perf_counter() - start, 1)})
    return result


def _curate(world: World, out: Path) -> dict[str, Any]:
    from s5cli.curation.config import CurateConfig
    from s5cli.curation.pipeline import run_curate

    cfg = build_config(CurateConfig, {"chip_size": TILE, "min_std": 2.0, "device": "cpu"})
    return run_curate([str(p) for p in world.unlabeled], out, cfg)


def _pretrain(landcover: Path, corpus: Path, out: Path, iterations: int) -> Path:
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.pretrain.run import run_pretrain

    cfg = build_config(
        PretrainConfig,
        {
            "output": str(out),
            "device": "cpu",
            "seed": 0,
            "labeled": {"dataset": str(landcover), "split": "train", "val_split": "val"},
            "unlabeled": {"manifest": str(corpus / "manifest.parquet")},
            "crop_size": TILE,
            "workers": 0,
            "model": {"preset": PRESET, "drop_path": 0.0, "decoder_channels": 32, "grad_checkpointing": False},
            "iterations": iterations,
            "global_batch_size": 4,
            "optim": {"lr": 1e-3, "weight_decay": 0.01},
            "amp": "off",
            "log_every": 5,
            "eval_every": 0,
            "eval_max_images": 8,
            "checkpoint_every": 0,
        },
    )
    return run_pretrain(cfg)


def _finetune(datasets: list[Path], init: Path, out: Path, iterations: int) -> Path:
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.finetune.run import run_finetune

    cfg = build_config(
        FinetuneConfig,
        {
            "output": str(out),
            "device": "cpu",
            "seed": 0,
            "datasets": [str(p) for p in datasets],
            "crop_size": TILE,
            "workers": 0,
            "model": {"init": str(init), "expert_width": 16, "drop_path": 0.0, "grad_checkpointing": False},
            "epochs": 1,
            "iterations": iterations,
            "batch_size_per_dataset": 4,
            "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
            "schedule": {"name": "cosine"},
            "amp": "off",
            "log_every": 10,
            "eval_every": 0,
            "eval_max_images": 16,
            "checkpoint_every": 0,
        },
    )
    return run_finetune(cfg)


def _evaluate(checkpoint: Path, datasets: list[Path], csv: Path) -> dict[str, Any]:
    from s5cli.evaluation.config import EvaluateConfig
    from s5cli.evaluation.run import run_evaluate

    cfg = build_config(
        EvaluateConfig,
        {
            "checkpoint": str(checkpoint),
            "datasets": [str(p) for p in datasets],
            "output": str(csv),
            "device": "cpu",
        },
    )
    return run_evaluate(cfg)


def _export(checkpoint: Path, out: Path) -> Path:
    from s5cli.finetune.export import export_checkpoint

    return export_checkpoint(checkpoint, "landcover", out, overwrite=False)


def _predict(scene: Path, checkpoint: Path, gpkg: Path, raster: Path, preview: Path) -> dict[str, Any]:
    from s5cli.inference.config import PredictConfig
    from s5cli.inference.predict import run_predict

    cfg = build_config(
        PredictConfig,
        {
            "scenes": [str(scene)],
            "output": str(gpkg),
            "checkpoint": str(checkpoint),
            "raster": str(raster),
            "preview": str(preview),
            "tile_size": TILE,
            "device": "cpu",
            "probs": True,
        },
    )
    return run_predict(cfg)


def run_demo(
    workdir: Path,
    overwrite: bool = False,
    pretrain_iterations: int = 40,
    finetune_iterations: int = 100,
    scene_size: int = 512,
) -> dict[str, Any]:
    """Build the world and run curate -> pretrain -> finetune -> evaluate -> export -> predict in `workdir`."""
    steps: list[dict[str, Any]] = []
    with atomic_output(workdir, overwrite=overwrite, directory=True) as tmp:
        world = _timed("world", steps, lambda: build_world(tmp / "world", size=scene_size))
        landcover = _dataset_yaml(tmp / "world" / "landcover.yaml", "landcover", CLASSES, "landcover", PALETTE)
        buildings = _dataset_yaml(
            tmp / "world" / "buildings.yaml",
            "buildings",
            ["background", "building"],
            "buildings",
            [PALETTE[0], PALETTE[1]],
        )
        datasets = [landcover, buildings]
        corpus = tmp / "corpus"
        curated = _timed("curate", steps, lambda: _curate(world, corpus))
        s4p = _timed(
            "pretrain", steps, lambda: _pretrain(landcover, corpus, tmp / "runs" / "pretrain", pretrain_iterations)
        )
        mdf = _timed(
            "finetune", steps, lambda: _finetune(datasets, s4p, tmp / "runs" / "finetune", finetune_iterations)
        )
        scores = _timed("evaluate", steps, lambda: _evaluate(mdf, datasets, tmp / "evaluate.csv"))
        dense = _timed("export", steps, lambda: _export(mdf, tmp / "landcover.pt"))
        outputs = tmp / "outputs"
        outputs.mkdir()
        predicted = _timed(
            "predict",
            steps,
            lambda: _predict(
                world.val_scene, dense, outputs / "landcover.gpkg", outputs / "landcover.tif", outputs / "landcover.png"
            ),
        )
    final = {
        k: str(workdir / Path(v).relative_to(tmp))
        for k, v in {
            "scene": world.val_scene,
            "reference labels": world.labels_raster,
            "corpus manifest": corpus / "manifest.parquet",
            "S4P checkpoint": s4p,
            "MoE-MDF checkpoint": mdf,
            "per-class metrics": tmp / "evaluate.csv",
            "dense landcover model": dense,
            "polygons (GeoPackage)": outputs / "landcover.gpkg",
            "class raster (COG)": outputs / "landcover.tif",
            "quick-look": outputs / "landcover.png",
        }.items()
    }
    return {
        "workdir": str(workdir),
        "steps": steps,
        "outputs": final,
        "corpus": {k: curated.get(k) for k in ("chips", "kept") if isinstance(curated, dict) and k in curated},
        "metrics": [{k: d.get(k) for k in ("dataset", "metric", "score")} for d in scores.get("datasets", [])],
        "polygons": [s.get("polygons") for s in predicted.get("scenes", [])] if isinstance(predicted, dict) else [],
    }
