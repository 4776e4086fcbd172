from pathlib import Path

import pytest

from s5cli.cli.options import parse_gsd, parse_stretch
from s5cli.config import load_config
from s5cli.errors import ConfigError, InputError
from s5cli.inference.config import PredictConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_shipped_yaml_holds_the_defaults() -> None:
    cfg = load_config(PredictConfig, CONFIGS / "predict.yaml")
    assert cfg == PredictConfig()
    text = (CONFIGS / "predict.yaml").read_text()
    for field in PredictConfig.model_fields:
        assert f"\n{field}:" in text, field


def test_values_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("overlap: 1.5\n")
    with pytest.raises(ConfigError, match="overlap"):
        load_config(PredictConfig, bad)
    with pytest.raises(ConfigError, match="unknown key 'tile'"):
        load_config(PredictConfig, None, {"tile": 3})
    with pytest.raises(ConfigError, match="stretch"):
        load_config(PredictConfig, None, {"stretch": (98, 2)})
    with pytest.raises(ConfigError, match="gsd"):
        load_config(PredictConfig, None, {"gsd": -1.0})
    cfg = load_config(PredictConfig, None, {"gsd": 0.3, "bands": [3, 2, 1], "output": "o.gpkg"})
    assert cfg.gsd == 0.3 and cfg.bands == [3, 2, 1]


def test_option_parsers() -> None:
    assert parse_stretch("p2,p98") == (2.0, 98.0) and parse_stretch("1, 99.5") == (1.0, 99.5)
    assert parse_gsd("Native") == "native" and parse_gsd("0.3") == 0.3 and parse_gsd(None) is None
    with pytest.raises(InputError, match="two percentiles"):
        parse_stretch("2")
    with pytest.raises(InputError, match="metres per pixel"):
        parse_gsd("fine")
