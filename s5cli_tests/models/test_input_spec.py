"""The checkpoint's input contract: built from what the loaders read, per head where they differ, old specs kept."""

from pathlib import Path

import pytest

from s5cli.datasets.benchmarks import LOVEDA, POTSDAM
from s5cli.datasets.pixels import PixelFormat, benchmark_format
from s5cli.errors import InputError
from s5cli.models.spec import IMAGENET_MEAN, InputSpec, ModelSpec, input_spec

TWELVE_BIT = PixelFormat(bands=(2, 3, 4), names=("red", "green", "blue"), scale=4095.0, dtype="uint16", gsd=0.3)


def test_one_dataset_fills_the_model_contract() -> None:
    spec = input_spec({"trees": TWELVE_BIT})
    assert spec.source_bands == [2, 3, 4] and spec.scale == 4095.0 and spec.dtype == "uint16" and spec.gsd == 0.3
    assert spec.bands == ["red", "green", "blue"] and spec.mean == list(IMAGENET_MEAN) and spec.heads == {}
    assert spec.for_head("trees") == spec
    four = PixelFormat(bands=(1, 2, 3, 4), names=("b1", "b2", "b3", "nir"), scale=65535.0, dtype="uint16", gsd=None)
    spec4 = input_spec({"x": four})
    assert spec4.bands == ["b1", "b2", "b3", "nir"] and spec4.mean == [0.5] * 4 and spec4.std == [0.25] * 4


def test_heads_trained_on_differently_read_data_keep_their_own() -> None:
    spec = input_spec({"potsdam": benchmark_format(POTSDAM), "loveda": benchmark_format(LOVEDA)})
    assert set(spec.heads) == {"potsdam", "loveda"}
    assert spec.for_head("potsdam").gsd == 0.05 and spec.for_head("loveda").gsd == 0.3
    assert spec.for_head("loveda").heads == {} and spec.for_head("loveda").source_bands == [1, 2, 3]
    assert spec.for_head("loveda").dtype == "uint8" and spec.for_head("loveda").scale == 255.0
    assert spec.for_head("unknown").gsd == 0.05  # a head without its own entry: the model's (the first one's)
    same = input_spec({"potsdam": benchmark_format(POTSDAM), "vaihingen": benchmark_format(POTSDAM)})
    assert same.heads == {}  # read alike: one contract


def test_an_init_checkpoint_keeps_its_normalisation_and_must_fit_the_band_count(tmp_path: Path) -> None:
    base = InputSpec(mean=[0.1, 0.2, 0.3], std=[0.4, 0.5, 0.6])
    spec = input_spec({"trees": TWELVE_BIT}, base=base)
    assert spec.mean == [0.1, 0.2, 0.3] and spec.std == [0.4, 0.5, 0.6] and spec.scale == 4095.0
    yaml = tmp_path / "trees.yaml"
    four = PixelFormat((1, 2, 3, 4), ("a", "b", "c", "d"), 65535.0, "uint16", 0.3, origin=str(yaml))
    with pytest.raises(InputError) as err:
        input_spec({"trees": four}, base=base)
    assert err.value.message == (
        f"{yaml}: dataset 'trees' gives 4 band(s) but the init checkpoint takes 3 bands (red, green, blue); "
        f"choose 3 with `bands: [1, 2, 3]` in {yaml}"
    )
    with pytest.raises(InputError, match="one model takes one band count"):
        input_spec({"potsdam": benchmark_format(POTSDAM), "trees": four})


def test_checkpoints_before_the_contract_still_load() -> None:
    old = {"preset": "vit-nano", "heads": [{"name": "a", "classes": ["x", "y"]}],
           "input": {"bands": ["red", "green", "blue"], "mean": [0.5] * 3, "std": [0.2] * 3, "scale": 255.0,
                     "gsd": None}}  # fmt: skip
    spec = ModelSpec.model_validate(old)
    contract = spec.input.for_head("a")
    assert contract.scale == 255.0 and contract.source_bands is None and contract.dtype is None
    assert contract.gsd is None and contract.heads == {}
