"""The sample contract every dataset returns, and the file reading all loaders share.

A dataset item is a dict:

- ``"image"``: float32 tensor (C, H, W) in [0, 1]. 8-bit pixels are divided by 255, 16-bit ones
  by 65535 unless a loader is given another ``scale`` (a custom dataset's YAML can say e.g. 10000
  for Sentinel-2 reflectance); float rasters are passed through unchanged. PNG/JPEG benchmarks are
  always 3 channels (grayscale DOTA images are repeated to RGB, alpha is dropped).
- ``"mask"``: int64 tensor (H, W) of label class ids (the record's ``classes``), ignore = 255 (absent
  on splits that ship no labels, such as LoveDA ``test``).
- ``"polygons"``: float32 tensor (N, 8), the corners x1, y1, ..., x4, y4 of each object in pixel
  coordinates of *this* sample's image (after cropping and augmentation; (0, 0) is the top-left
  corner of the top-left pixel); ``"labels"`` int64 (N,); ``"difficult"`` bool (N,);
  ``"truncated"`` bool (N,) (detection datasets; N may be 0; absent on unlabeled splits).
  Converting polygons to rotated boxes is done by ``s5cli.geometry.boxes``, not here.
- ``"dataset"``: the registry name; ``"path"``: the source image file; ``"window"``:
  (col_off, row_off, width, height) of the source pixels when the sample is cut from a larger tile.

Transforms are callables ``sample -> sample`` applied to the whole dict (TorchGeo habit).
"""

from __future__ import annotations

import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from s5cli.datasets.info import IGNORE, class_lut
from s5cli.errors import InputError
from s5cli.geo.files import check_input
from s5cli.geo.raster import open_raster, read_window, unit_scale
from s5cli.geo.tiles import grid_starts

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]
WindowTuple = tuple[int, int, int, int]  # (col_off, row_off, width, height)

GEOTIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# DOTA images reach ~20,000 x 20,000 px, past PIL's decompression-bomb guard (89 Mpx).
_MAX_PIXELS = 40_000 * 40_000
# The image formats PIL may decode for a dataset file, whatever its name (PIL otherwise tries every plugin
# it has, EPS through Ghostscript included).
_PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")


def to_unit_float(data: np.ndarray, scale: float | None = None) -> torch.Tensor:
    """Raw pixels (C, H, W) -> float32 tensor in [0, 1]: /255 for 8-bit, /65535 for 16-bit, or /scale."""
    if scale is None:
        scale = unit_scale(str(data.dtype))
    out = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if scale != 1.0:
        out = out / float(scale)
    return out.clamp_(0.0, 1.0)


def _open_pil(path: Path) -> Any:
    from PIL import Image

    check_input(path, "file")  # a FIFO would block PIL for ever
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(path, formats=_PIL_FORMATS)
            img.load()  # decode now so that a truncated file fails here, naming the file
        return img
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"not a readable image ({reason})", path) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


class _RecentImages:
    """The last two decoded PNG/JPEGs per process (an image and its label).

    Patches cut in order then decode each large file once instead of once per patch.
    """

    def __init__(self, size: int = 2) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._items: OrderedDict[tuple[str, int, float, str], np.ndarray] = OrderedDict()

    def get(self, path: Path, kind: str, load: Callable[[], np.ndarray]) -> np.ndarray:
        st = path.stat() if path.exists() else None
        key = (str(path), st.st_size if st else -1, st.st_mtime if st else 0.0, kind)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


_CACHE = _RecentImages()


def _pil_array(path: Path, kind: str) -> np.ndarray:
    img = _open_pil(path)
    if kind == "image":
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img).astype(np.uint16)[None]
            return np.repeat(arr, 3, axis=0)
        if img.mode != "RGB":
            img = img.convert("RGB")  # grayscale (DOTA GF-2/JL-1), palette, RGBA, CMYK
        return np.asarray(img).transpose(2, 0, 1)
    if kind == "colour" and img.mode != "RGB":
        img = img.convert("RGB")  # colour labels saved as palette PNGs
    # Labels: keep raw values (palette PNGs give their indexes, RGB gives colours).
    arr = np.asarray(img)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[:3]


def _crop(arr: np.ndarray, window: WindowTuple | None, pad_value: int) -> np.ndarray:
    if window is None:
        return arr
    col, row, w, h = window
    out = np.full((arr.shape[0], h, w), pad_value, dtype=arr.dtype)
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + h, arr.shape[1]), min(col + w, arr.shape[2])
    if r1 > r0 and c1 > c0:
        out[:, r0 - row : r1 - row, c0 - col : c1 - col] = arr[:, r0:r1, c0:c1]
    return out


def read_pixels(
    path: str | os.PathLike[str],
    window: WindowTuple | None = None,
    bands: Sequence[int] | None = None,
    kind: str = "image",
    pad_value: int = 0,
) -> np.ndarray:
    """Read (C, h, w) raw pixels of an image or label file, optionally a window padded past the edge.

    GeoTIFFs are read with rasterio windows (only the window is decoded); PNG/JPEG are decoded
    whole with PIL (a truncated file is an InputError naming it) and the last two are cached.
    Dataset files are data, not instructions: a GeoTIFF must be a plain one (no VRT, no sidecars).
    ``kind="image"`` makes PNG/JPEG 3-channel RGB; ``kind="label"`` keeps raw values (palette
    indexes); ``kind="colour"`` gives the colours of a colour label.
    """
    p = Path(path)
    if p.suffix.lower() in GEOTIFF_SUFFIXES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning: ISPRS labels carry no CRS
            with open_raster(p, untrusted=True) as src:
                win = Window(0, 0, src.width, src.height) if window is None else Window(*window)
                idx = list(bands) if bands else None
                if idx and max(idx) > src.count:
                    raise InputError(f"has {src.count} bands, band {max(idx)} was asked for", p)
                data, _ = read_window(src, win, idx, pad_value=pad_value)
                return data
    arr = _CACHE.get(p, kind, lambda: _pil_array(p, kind))
    if bands:
        if max(bands) > arr.shape[0]:
            raise InputError(f"has {arr.shape[0]} bands, band {max(bands)} was asked for", p)
        arr = arr[[b - 1 for b in bands]]
    return _crop(arr, window, pad_value)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) from the file header only: no pixels are decoded."""
    p = Path(path)
    if p.suffix.lower() in GEOTIFF_SUFFIXES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_raster(p, untrusted=True) as src:
                return src.width, src.height
    from PIL import Image

    check_input(p, "file")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p, formats=_PIL_FORMATS) as img:
                return img.size
    except FileNotFoundError:
        raise InputError("no such file", p) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"not a readable image ({exc})", p) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def check_label_size(
    image: str | os.PathLike[str],
    image_size: tuple[int, int],
    label: str | os.PathLike[str],
    label_size: tuple[int, int],
) -> None:
    """A label raster covers its image pixel for pixel: sizes are (width, height); a mismatch names both files."""
    if tuple(image_size) != tuple(label_size):
        (iw, ih), (lw, lh) = image_size, label_size
        raise InputError(f"the label is {lw}x{lh} px but its image {image} is {iw}x{ih} px", label)


def colours_to_index(rgb: np.ndarray, table: dict[tuple[int, int, int], int]) -> np.ndarray:
    """(3, H, W) colour label -> (H, W) int64 class indexes; any colour not in the table -> 255."""
    code = (rgb[0].astype(np.int64) << 16) | (rgb[1].astype(np.int64) << 8) | rgb[2].astype(np.int64)
    out = np.full(code.shape, IGNORE, dtype=np.int64)
    for (r, g, b), index in table.items():
        out[code == ((r << 16) | (g << 8) | b)] = index
    return out


def colour_table(classes: Sequence[str], palette: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int, int], int]:
    """Colour -> class index, matched by class name so palette order and class order cannot drift apart."""
    index = {c: i for i, c in enumerate(classes)}
    return {colour: index[c] for c, colour in zip(classes, palette)}


def values_to_index(raw: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """(H, W) raw label values -> int64 class indexes through a lookup table; other values -> 255."""
    lut = np.full(max(256, int(raw.max(initial=0)) + 1), IGNORE, dtype=np.int64)
    for value, index in table.items():
        if value < lut.size:
            lut[value] = index
    return lut[raw.astype(np.int64)]


def tile_windows(width: int, height: int, size: int | None, stride: int | None) -> list[WindowTuple]:
    """Row-major windows of size x size every stride, the last snapped to the edge; None = whole image.

    A side shorter than ``size`` gives windows of that side's length (no padding here; RandomCrop
    and the collate functions pad).
    """
    if size is None:
        return [(0, 0, width, height)]
    step = stride or size
    w, h = min(size, width), min(size, height)
    return [(c, r, w, h) for r in grid_starts(height, size, step) for c in grid_starts(width, size, step)]


def window_index(images: Sequence[Path], size: int | None, stride: int | None) -> list[tuple[int, WindowTuple]]:
    """(image number, window) of every tile_windows window of each image, in order; sizes from headers only."""
    index: list[tuple[int, WindowTuple]] = []
    for i, image in enumerate(images):
        width, height = image_size(image)
        index.extend((i, w) for w in tile_windows(width, height, size, stride))
    return index


def detection_targets(polys: np.ndarray, labels: np.ndarray, diff: np.ndarray, trunc: np.ndarray) -> Sample:
    """The detection keys of a sample (polygons, labels, difficult, truncated) as tensors sharing the arrays."""
    return {
        "polygons": torch.from_numpy(polys),
        "labels": torch.from_numpy(labels),
        "difficult": torch.from_numpy(diff),
        "truncated": torch.from_numpy(trunc),
    }


class HeadLabels:
    """A transform: masks of label class ids become a head's class ids (classes it lacks, e.g. clutter, IGNORE)."""

    def __init__(self, label_classes: Sequence[str], head_classes: Sequence[str]) -> None:
        lut = class_lut(label_classes, head_classes)
        self.lut = None if lut is None else torch.from_numpy(lut)

    def __call__(self, sample: Sample) -> Sample:
        """The sample with its mask mapped (unchanged when the classes are the same or there is no mask)."""
        if self.lut is None or "mask" not in sample:
            return sample
        return {**sample, "mask": self.lut[sample["mask"].long().clamp(0, IGNORE)]}


def check_split(name: str, split: str, splits: Sequence[str], aliases: dict[str, str] | None = None) -> str:
    """The canonical split name; an unknown one is an InputError listing the valid ones."""
    split = (aliases or {}).get(split, split)
    if split not in splits:
        raise InputError(f"{name} has no split '{split}'; valid splits: {', '.join(splits)}")
    return split


def check_root(root: str | os.PathLike[str], name: str, expected: str) -> Path:
    """The dataset folder; a missing one is an InputError saying what should be there."""
    p = Path(root)
    if not p.is_dir():
        raise InputError(f"no such folder (expected the {name} dataset: {expected})", p)
    return p


def not_this_dataset(root: Path, name: str, expected: str) -> InputError:
    """The error for a folder that exists but does not hold the dataset's layout."""
    return InputError(f"does not look like {name}: expected {expected}", root)


def sorted_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files directly in a folder with one of the suffixes (case-insensitive), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


class SampleDataset(Dataset, ABC):
    """Base of every loader: ``_load(i)`` builds the sample, transforms apply to the whole dict."""

    name: str = ""

    def __init__(self, transforms: Transform | None = None) -> None:
        self.transforms = transforms

    def _check_root_and_split(self, root: str | os.PathLike[str], split: str) -> None:
        """Set name, root and split from the class's record ``info``; bad ones are InputErrors."""
        info = self.info  # type: ignore[attr-defined]  # each benchmark loader sets its record (benchmarks.py)
        self.name = info.name
        self.root = check_root(root, self.name, info.layout)
        self.split = check_split(self.name, split, info.splits, info.split_aliases)

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples in the split."""

    @abstractmethod
    def _load(self, index: int) -> Sample:
        """The sample at a non-negative index, before transforms."""

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        sample = self._load(index % len(self))
        return self.transforms(sample) if self.transforms is not None else sample
