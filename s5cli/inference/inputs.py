"""What predict reads: scene lists (files, folders, globs, VRTs, GDAL remote paths), bands and the working GSD.

Bands and GSD default to the head's input contract (InputSpec.for_head): the source bands and the GSD
of the data the head was trained on.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from s5cli.console import info
from s5cli.errors import InputError
from s5cli.geo.files import is_remote
from s5cli.geo.raster import RASTER_SUFFIXES, RasterInfo, walk_rasters
from s5cli.models.presets import check_input_size
from s5cli.models.spec import HeadInput, HeadSpec, InputSpec, ModelSpec

GSD_TOLERANCE = 0.05  # run at the scene's own GSD when it is within 5% of the target
MAX_RESAMPLE = 16.0  # refuse to make the working grid more than 16x finer or coarser than the scene


def expand_scenes(inputs: Sequence[str]) -> list[str]:
    """Files, folders (their rasters at any depth, sorted), glob patterns and /vsi.../URL paths -> a list of scenes."""
    scenes: list[str] = []
    for item in inputs:
        text = str(item)
        if is_remote(text):
            scenes.append(text)  # GDAL reads it; nothing to check locally
        elif any(ch in text for ch in "*?["):
            found = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                raise InputError("no file matches this pattern", text)
            scenes.extend(found)
        elif Path(text).is_dir():
            found = list(walk_rasters(text))
            if not found:
                raise InputError(f"no raster ({', '.join(RASTER_SUFFIXES)}) in this folder", text)
            scenes.extend(found)
        elif Path(text).exists():
            scenes.append(text)
        else:
            raise InputError("no such file or folder", text)
    unique = list(dict.fromkeys(scenes))
    if not unique:
        raise InputError("no scene given")
    return unique


def resolve_bands(
    count: int, requested: list[int] | None, spec: InputSpec, alpha: Sequence[int] = (), path: str | None = None
) -> list[int]:
    """The 1-based bands to feed the model, in its band order; a mismatch is one InputError.

    By default the source bands the head was trained on (`spec` is its InputSpec.for_head), else every
    band that is not alpha when their number fits.
    """
    need = len(spec.bands)
    names = ", ".join(spec.bands)
    example = ",".join(str(i) for i in range(1, need + 1))
    if requested:
        missing = [b for b in requested if b > count]
        if missing:
            raise InputError(f"band {missing[0]} does not exist: the scene has {count} band(s)", path)
        if len(requested) != need:
            raise InputError(f"-b/--bands selects {len(requested)} band(s) but the checkpoint takes {need} ({names})")
        return list(requested)
    trained = spec.source_bands
    if trained and len(trained) == need:
        if max(trained) <= count:
            if count != need or trained != list(range(1, need + 1)):
                info(f"{path or 'scene'}: reading band(s) {', '.join(map(str, trained))} ({names}), as in training")
            return list(trained)
        raise InputError(
            f"the model was trained on band(s) {', '.join(map(str, trained))} ({names}) but the scene has {count}; "
            f"choose {need} with -b/--bands, e.g. -b {example}",
            path,
        )
    candidates = [b for b in range(1, count + 1) if b not in set(alpha)]
    if len(candidates) == need:
        if len(candidates) < count:
            info(f"{path or 'scene'}: band(s) {', '.join(map(str, alpha))} are alpha (a mask); reading {candidates}")
        return candidates
    raise InputError(
        f"the scene has {count} band(s) but the checkpoint takes {need} ({names}); "
        f"choose them with -b/--bands, e.g. -b {example}",
        path,
    )


def working_factor(raster: RasterInfo, gsd: str | float, spec: InputSpec, path: str | None = None) -> float:
    """How many times finer the model's grid is than the scene's (1.0: run on the scene grid).

    `gsd` is 'native' (never resample), 'auto' (the checkpoint's training GSD when both are known)
    or metres per pixel.
    """
    if gsd == "native":
        return 1.0
    target = spec.gsd if gsd == "auto" else float(gsd)
    if target is None:
        return 1.0
    scene_gsd = raster.gsd_m
    if scene_gsd is None:
        if gsd != "auto":
            raise InputError("the scene has no georeferencing, so its GSD is unknown; drop --gsd", path)
        return 1.0
    factor = scene_gsd / target
    if abs(factor - 1.0) <= GSD_TOLERANCE:
        return 1.0
    if not 1.0 / MAX_RESAMPLE <= factor <= MAX_RESAMPLE:
        raise InputError(
            f"the scene's GSD ({scene_gsd:.3g} m) is more than {MAX_RESAMPLE:g}x the model's ({target:.3g} m); "
            "use --gsd native to predict at the scene's own resolution",
            path,
        )
    if gsd == "auto":
        info(
            f"{path or 'scene'}: resampling from {scene_gsd:.3g} m to the model's {target:.3g} m per pixel (--gsd auto)"
        )
    return factor


def tile_and_overlap(
    spec: ModelSpec, head: HeadSpec, tile_size: int | None = None, overlap: float | None = None
) -> tuple[int, int]:
    """Tile side (one the model takes) and overlap in pixels (a multiple of 2); by default the head's trained input."""
    tile = check_input_size(spec.preset, int(tile_size or head.input.size))
    share = overlap if overlap is not None else head.input.overlap
    return tile, HeadInput(size=tile, overlap=share).overlap_px
