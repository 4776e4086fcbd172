"""Every dataset fact has one home, its record: loaders, heads, fine-tuning and evaluation all read it."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from s5cli.config import load_config
from s5cli.datasets.registry import DATASETS, FOLDER_DATASETS, dataset_info
from s5cli.models.spec import HeadSpec

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "s5cli_tests" / "data"
LABELED = [n for n in FOLDER_DATASETS if DATASETS[n].task != "unlabeled"]


def _loader(name: str) -> type:
    module, cls = DATASETS[name].loader.split(":")
    return getattr(importlib.import_module(f"s5cli.datasets.{module}"), cls)


@pytest.mark.parametrize("name", FOLDER_DATASETS)
def test_the_loader_reads_its_record(name: str, data_dir: Path) -> None:
    info = DATASETS[name]
    loader = _loader(name)
    assert loader.info is info  # the class's record is the registry's, not a copy
    defaults = {k: p.default for k, p in inspect.signature(loader.__init__).parameters.items()}
    for option, field in (("crop_size", "crop_size"), ("stride", "stride"), ("patch_size", "patch_size")):
        if option in defaults and getattr(info, field) is not None and defaults[option] is not None:
            assert defaults[option] in (getattr(info, field), "record"), (name, option)  # "record": read at init
    ds = loader(data_dir / name, split=info.splits[0])
    assert ds.name == info.name


@pytest.mark.parametrize("name", LABELED)
def test_heads_finetune_and_evaluation_read_the_record(name: str) -> None:
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.finetune.data import plan_datasets
    from s5cli.scoring.plan import plan_job

    info = dataset_info(name)
    head = HeadSpec.from_dataset(info)
    assert head.classes == list(info.head_classes) and head.palette == list(info.head_palette)
    assert not set(head.classes) & set(info.ignored)  # the ignore rule (ISPRS clutter) is the record's
    cfg = load_config(
        FinetuneConfig, REPO / "configs" / "finetune" / "tiny.yaml", {"datasets": [name], "data_root": str(DATA)}
    )
    (plan,) = plan_datasets(cfg)
    assert plan.info is info and plan.split == info.train_split and plan.val_split == info.val_split
    assert plan.head.classes == head.classes
    size = cfg.crop_size if info.task == "segmentation" else cfg.det_size
    assert plan.head.input.size == size
    job = plan_job(info, plan.head, plan.root)
    assert (job.split, job.settings.mode) == (info.protocol.split, info.protocol.mode)
    assert job.settings.flip == (info.protocol.flip and info.task == "segmentation")
    if info.protocol.overlap is not None:
        assert job.settings.overlap == info.protocol.overlap
    for key, value in info.protocol.options.items():
        assert job.options[key] == value


def test_one_palette_function_and_one_ignore_value() -> None:
    import s5cli

    root = Path(s5cli.__file__).parent
    sources = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}
    palettes = [p for p, text in sources.items() if "hsv_to_rgb" in text or "golden" in text.lower()]
    assert palettes == ["datasets/info.py"]
    ignores = [p for p, text in sources.items() if "IGNORE = 255" in text]
    assert ignores == ["datasets/info.py"]


@pytest.mark.parametrize("name", FOLDER_DATASETS)
def test_the_record_names_the_bands_the_loader_returns(name: str, data_dir: Path) -> None:
    from s5cli.datasets.registry import pixel_format

    info = DATASETS[name]
    sample = _loader(name)(data_dir / name, split=info.splits[0])[0]
    assert sample["image"].shape[0] == len(pixel_format(info, data_dir / name).names)


def test_vaihingen_is_false_colour_and_potsdams_products_carry_their_bands(data_dir: Path) -> None:
    from s5cli.datasets.isprs import _POTSDAM_IMAGES, Potsdam
    from s5cli.datasets.registry import pixel_format
    from s5cli.errors import InputError

    assert pixel_format(dataset_info("vaihingen"), None).names == ("nir", "red", "green")
    potsdam = dataset_info("potsdam")
    assert set(potsdam.band_options) == set(_POTSDAM_IMAGES)  # every product the loader reads is named
    for option, names in potsdam.band_options.items():
        fmt = pixel_format(potsdam, data_dir / "potsdam", {"bands": option})
        image = Potsdam(data_dir / "potsdam", bands=option)[0]["image"]
        assert fmt.names == names and fmt.bands == tuple(range(1, len(names) + 1)) == tuple(range(1, len(image) + 1))
    with pytest.raises(InputError, match=r"options.bands: potsdam: no band option 'NIR'"):
        pixel_format(potsdam, data_dir / "potsdam", {"bands": "NIR"})


def test_a_checkpoint_names_each_heads_bands() -> None:
    from s5cli.datasets.pixels import benchmark_format
    from s5cli.models.spec import input_spec

    spec = input_spec(
        {"potsdam": benchmark_format(dataset_info("potsdam")), "vaihingen": benchmark_format(dataset_info("vaihingen"))}
    )
    assert spec.for_head("potsdam").bands == ["red", "green", "blue"]
    assert spec.for_head("vaihingen").bands == ["nir", "red", "green"]
    assert spec.bands == ["red", "green", "blue"] and spec.band_names is None  # the model's names live in `bands`


def test_evaluation_reads_the_product_a_head_was_trained_on(data_dir: Path) -> None:
    from s5cli.scoring.plan import Choices, plan_job

    info = dataset_info("potsdam")
    head = HeadSpec.from_dataset(info, 32)
    root = data_dir / "potsdam"
    assert plan_job(info, head, root, bands=["nir", "red", "green"]).options["bands"] == "IRRG"
    assert "bands" not in plan_job(info, head, root, bands=["red", "green", "blue"]).options
    chosen = plan_job(info, head, root, Choices(options={"bands": "RGB"}), bands=["nir", "red", "green"])
    assert chosen.options["bands"] == "RGB"  # the user's options win
