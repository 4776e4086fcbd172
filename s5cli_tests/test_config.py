from pathlib import Path

import pytest

from s5cli.config import StrictConfig, dump_config, load_config
from s5cli.errors import ConfigError


class Optim(StrictConfig):
    lr: float = 1e-4
    weight_decay: float = 0.05


class Demo(StrictConfig):
    name: str = "x"
    steps: int = 10
    optim: Optim = Optim()


def test_load_and_override(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\noptim:\n  lr: 0.001\n")
    cfg = load_config(Demo, path, {"optim.weight_decay": 0.1, "name": None})
    assert cfg.steps == 5 and cfg.optim.lr == 0.001 and cfg.optim.weight_decay == 0.1 and cfg.name == "x"
    assert "weight_decay: 0.1" in dump_config(cfg)


def test_unknown_key_names_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lrr: 0.001\n")
    with pytest.raises(ConfigError) as info:
        load_config(Demo, path)
    assert info.value.message == f"{path}: unknown key 'optim.lrr'"


def test_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("steps: many\n")
    with pytest.raises(ConfigError, match="key 'steps'"):
        load_config(Demo, path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(Demo, tmp_path / "none.yaml")


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Demo, path)
