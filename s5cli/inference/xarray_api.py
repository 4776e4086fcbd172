"""`predict_dataarray`: the predict engine for notebook users, on rioxarray DataArrays (lazy or not).

    >>> da = rioxarray.open_rasterio("scene.tif", chunks={"x": 2048, "y": 2048})
    >>> classes = predict_dataarray(da, "model.pt", tile_size=256)
    >>> classes.rio.to_raster("classes.tif")

The DataArray is read tile by tile through the same engine as `s5 predict` (a dask-backed array only
computes the windows being read). It is predicted at its own resolution: resample it first with
`.rio.reproject(...)` when its GSD differs from the checkpoint's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from s5cli.errors import InputError
from s5cli.geo.cog import CLASS_NODATA
from s5cli.inference.engine import ArraySink, predict_source
from s5cli.inference.inputs import resolve_bands, tile_and_overlap
from s5cli.inference.normalize import make_normaliser
from s5cli.inference.sources import DataArraySource

_OPTIONS = ("tile_size", "overlap", "batch_size", "bands", "scale", "stretch", "nodata", "device", "confidence")


def predict_dataarray(da: Any, checkpoint: Any, dataset: str | None = None, **options: Any) -> Any:
    """Class ids (uint8, 255 = no prediction) of a (band, y, x) DataArray, with its coordinates and CRS.

    Args:
        da: a rioxarray DataArray, e.g. from `rioxarray.open_rasterio(path, chunks=...)`.
        checkpoint: a checkpoint path, or a loaded model with a `.spec` (or a Predictor).
        dataset: the head of a multi-dataset checkpoint.
        **options: tile_size and overlap (a fraction; default: the head's trained input), batch_size (4),
            bands (1-based list; default: the bands the head was trained on), scale (the raw value of
            1.0; default: the training data's) or stretch ((low, high) percentiles), nodata (a value, or
            "none"; default: the array's own), device ('auto'), and confidence=True to return a Dataset
            with `classes` and `confidence` (0..1) variables.
    """
    import xarray as xr

    from s5cli.inference.predictor import Predictor, load_predictor, predictor_for

    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(_OPTIONS)}")
    device = options.get("device", "auto")
    if isinstance(checkpoint, Predictor):
        predictor = checkpoint
    elif isinstance(checkpoint, str | os.PathLike):
        predictor = load_predictor(checkpoint, dataset, device)
    else:
        predictor = predictor_for(checkpoint, dataset=dataset, device=None if device == "auto" else device)
    source = DataArraySource(da, options.get("nodata"))
    bands = resolve_bands(source.count, options.get("bands"), predictor.contract, path=source.name)
    normalise = make_normaliser(source, predictor.contract, bands, options.get("stretch"), options.get("scale"))
    tile, overlap = tile_and_overlap(predictor.spec, predictor.head, options.get("tile_size"), options.get("overlap"))
    sink = ArraySink(source.width, source.height)
    predict_source(
        source,
        predictor,
        predictor.head.num_classes,
        sink,
        tile,
        overlap,
        int(options.get("batch_size", 4)),
        bands,
        normalise,
        description="predict_dataarray",
    )
    spatial = da if da.ndim == 2 else da.isel({da.dims[0]: 0}, drop=True)
    classes = xr.DataArray(sink.classes, coords=spatial.coords, dims=spatial.dims, name="classes")
    classes.attrs.update(
        _FillValue=CLASS_NODATA,
        class_names=list(predictor.head.classes),
        long_name=f"class id ({predictor.head.name})",
    )
    classes = _with_crs(classes, source)
    if not options.get("confidence"):
        return classes
    conf = np.where(sink.conf == 0, np.nan, sink.conf / 255.0).astype(np.float32)
    confidence = _with_crs(xr.DataArray(conf, coords=spatial.coords, dims=spatial.dims, name="confidence"), source)
    return xr.Dataset({"classes": classes, "confidence": confidence})


def _with_crs(arr: Any, source: DataArraySource) -> Any:
    """Attach the source CRS (rioxarray's spatial_ref) when there is one."""
    if source.crs is None or not hasattr(arr, "rio"):
        return arr
    return arr.rio.write_crs(source.crs)
