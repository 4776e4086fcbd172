"""Detection checkpoints in `s5 predict`: oriented boxes over a whole scene, as polygons in the scene CRS.

The DOTA protocol of s5cli.detection.patches (overlapping patches, detections shifted to image pixels,
per-class rotated NMS at its MERGE_IOU), but streamed: patches are read window by window (a background
thread reads the next batch while the model runs), never the whole scene, and the NMS merge runs row of patches
by row of patches. After each row, boxes that lie wholly above the next row's first pixel can meet no
later box, so they are final; the others wait for the next row. Memory holds one row's detections.
Boxes scoring below `min_score` are dropped per patch (before NMS: a box is only ever suppressed by a
higher-scoring one, so the result is the same), and boxes reaching past the scene are cut at its
edge and flagged `clipped`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rasterio.windows import Window

from s5cli.console import progress_bar
from s5cli.detection.patches import MERGE_IOU, merge_detections, patch_origins
from s5cli.geometry.boxes import rboxes_to_corners, rboxes_to_hboxes
from s5cli.inference.sources import WindowSource

if TYPE_CHECKING:
    from s5cli.inference.predictor import Predictor


def detect_source(
    source: WindowSource,
    predictor: Predictor,
    patch: int,
    gap: int,
    batch_size: int = 2,
    bands: list[int] | None = None,
    normalise: Any = None,
    nms_iou: float = MERGE_IOU,
    description: str = "detect",
    min_score: float = 0.0,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Oriented boxes of a whole source in its pixel coordinates: ({"boxes" (M, 5), "scores", "labels"}, stats)."""
    origins = patch_origins(source.height, source.width, patch, gap)
    rows: dict[int, list[tuple[int, int]]] = {}
    for x, y in origins:
        rows.setdefault(y, []).append((x, y))
    row_starts = sorted(rows)
    stats = {"patches": 0.0, "skipped": 0.0, "forward_s": 0.0}
    final: list[dict[str, torch.Tensor]] = []
    pending: list[dict[str, torch.Tensor]] = []

    def read(chunk: list[tuple[int, int]]) -> list[tuple[int, int, np.ndarray | None]]:
        out = []
        for x, y in chunk:
            data, valid = source.read(Window(x, y, patch, patch), bands)
            out.append((x, y, (normalise(data) if normalise else data.astype(np.float32)) if valid.any() else None))
        return out

    chunks = [(k, row[i : i + batch_size]) for k, y in enumerate(row_starts) for row in [rows[y]]
              for i in range(0, len(row), batch_size)]  # fmt: skip
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s5-reader") as pool:
        with progress_bar(description, total=len(origins)) as bar:
            future = pool.submit(read, chunks[0][1]) if chunks else None
            for i, (k, _) in enumerate(chunks):
                batch = future.result() if future is not None else []
                future = pool.submit(read, chunks[i + 1][1]) if i + 1 < len(chunks) else None
                todo = [(x, y, a) for x, y, a in batch if a is not None]
                stats["skipped"] += len(batch) - len(todo)
                if todo:
                    t0 = time.perf_counter()
                    dets = predictor.detect(np.stack([a for _, _, a in todo]))
                    stats["forward_s"] += time.perf_counter() - t0
                    stats["patches"] += len(todo)
                    for (x, y, _), det in zip(todo, dets):
                        keep = det["scores"].cpu() >= min_score
                        boxes = det["boxes"].reshape(-1, 5).float().cpu()[keep]  # indexing copies
                        boxes[:, 0] += x
                        boxes[:, 1] += y
                        kept = {"scores": det["scores"].cpu()[keep], "labels": det["labels"].cpu()[keep]}
                        pending.append({"boxes": boxes, **kept})
                bar.advance(len(batch))
                last_of_row = i + 1 == len(chunks) or chunks[i + 1][0] != k
                if last_of_row:
                    next_y = row_starts[k + 1] if k + 1 < len(row_starts) else None
                    done, pending = _settle(pending, next_y, nms_iou)
                    final.append(done)
    return _concat(final), stats


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if not parts:
        return {"boxes": torch.zeros(0, 5), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    return {k: torch.cat([p[k] for p in parts]) for k in ("boxes", "scores", "labels")}


def _settle(
    parts: list[dict[str, torch.Tensor]], next_y: int | None, nms_iou: float
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """NMS over the waiting boxes; split them into final ones and ones that can still meet the next row."""
    merged = merge_detections(parts, nms_iou)
    if next_y is None:
        return merged, []
    reach = rboxes_to_hboxes(merged["boxes"])[:, 3] > next_y
    done = {k: v[~reach] for k, v in merged.items()}
    return done, [{k: v[reach] for k, v in merged.items()}]


def box_polygons(boxes: torch.Tensor) -> np.ndarray:
    """Shapely polygons (pixel coordinates) of (M, 5) rotated boxes."""
    import shapely

    corners = rboxes_to_corners(boxes.double()).numpy()  # (M, 4, 2)
    if len(corners) == 0:
        return np.empty(0, dtype=object)
    return shapely.polygons(np.concatenate([corners, corners[:, :1]], axis=1))


def detect_scene(plan: Any, predictor: Predictor, cfg: Any, gpkg: Any, scratch: Any) -> dict:
    """One scene with a detection checkpoint: boxes -> a GeoPackage layer (class_name, score) and a quick-look."""
    import warnings
    from contextlib import ExitStack
    from pathlib import Path

    from rasterio.errors import NodataShadowWarning, NotGeoreferencedWarning

    from s5cli.console import warn
    from s5cli.geo.files import atomic_output
    from s5cli.geo.vector import DETECTION_FIELDS, AreaCalculator, LayerWriter, detection_frame
    from s5cli.inference.inputs import tile_and_overlap
    from s5cli.inference.normalize import make_normaliser
    from s5cli.inference.preview import render_preview
    from s5cli.inference.scene import no_georef_warning, open_scene
    from s5cli.inference.sources import resampled

    t0 = time.perf_counter()
    tg, raster, head = plan.targets, plan.info, predictor.head
    if not raster.is_georeferenced:
        warn(no_georef_warning(tg.scene, raster))
    tile, gap = tile_and_overlap(predictor.spec, predictor.head, cfg.tile_size, cfg.overlap)
    with warnings.catch_warnings(), ExitStack() as outputs:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        warnings.simplefilter("ignore", NodataShadowWarning)
        src = open_scene(tg.scene, cfg.nodata)
        work = src
        try:
            normalise = make_normaliser(src, predictor.contract, plan.bands, cfg.stretch, cfg.scale)
            work = resampled(src, plan.factor) if plan.factor != 1.0 else src
            dets, stats = detect_source(
                work, predictor, tile, gap, cfg.batch_size, plan.bands, normalise,
                description=Path(tg.scene).name, min_score=cfg.min_score,
            )  # fmt: skip
            polygons = box_polygons(dets["boxes"])
            areas = AreaCalculator(work.transform, raster.crs, work.width, work.height)
            frame = detection_frame(
                polygons, dets["scores"].numpy(), dets["labels"].numpy(), head.classes, work.transform,
                raster.crs, areas, cfg.min_area, extent=(work.width, work.height),
            )  # fmt: skip
            if tg.preview is not None:
                out = outputs.enter_context(atomic_output(tg.preview, cfg.overwrite))
                scale = np.array([src.width / work.width, src.height / work.height])
                corners = rboxes_to_corners(dets["boxes"].double()).numpy() * scale
                boxes = list(zip(corners, dets["labels"].tolist()))
                render_preview(src, plan.bands, None, head.classes, head.palette, out, Path(tg.scene).name, boxes=boxes)
            if gpkg is not None and tg.layer is not None:
                writer = LayerWriter(gpkg, tg.layer, raster.crs, DETECTION_FIELDS)
                writer.write(frame)
                writer.close()
        finally:
            if work is not src:
                work.ds.close()
            src.close()
    seconds = time.perf_counter() - t0
    return {
        "scene": tg.scene, "width": raster.width, "height": raster.height, "layer": tg.layer, "raster": None,
        "confidence": None, "preview": str(tg.preview) if tg.preview else None, "working_factor": plan.factor,
        **plan.gsd_summary(), "raw_range": normalise.ranges(), "min_score": cfg.min_score,
        "tile_size": tile, "overlap_px": gap, "tiles": int(stats["patches"]), "skipped_tiles": int(stats["skipped"]),
        "detections": len(frame), "clipped": int(frame["clipped"].sum()), "polygons": len(frame),
        "forward_s": round(stats["forward_s"], 3),
        "seconds": round(seconds, 3), "megapixels_per_s": round(raster.width * raster.height / 1e6 / seconds, 3),
    }  # fmt: skip
