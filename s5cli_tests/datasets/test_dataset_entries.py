"""A `--datasets` entry is a registry name, an alias, or a custom dataset YAML named by its `name:`."""

from pathlib import Path

import pytest
import yaml

from s5cli.datasets.registry import get_dataset, resolve_dataset, same_dataset
from s5cli.datasets.survey import survey
from s5cli.demo.world import build_world
from s5cli.errors import InputError


@pytest.fixture(scope="module")
def landcover_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    build_world(folder, size=128, n_unlabeled=0)
    path = folder / "landcover.yaml"
    spec = {
        "name": "landcover",
        "classes": ["background", "building", "road", "tree", "water"],
        "scenes": [{"path": "scene_train.tif", "split": "train"}, {"path": "scene_val.tif", "split": "val"}],
        "labels": "labels.gpkg",
        "layer": "landcover",
        "class_column": "class_name",
        "background": "background",
        "tile_size": 64,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def test_yaml_entry_is_named_by_its_name_key(landcover_yaml: Path) -> None:
    name, info, root = resolve_dataset(str(landcover_yaml))
    assert (name, info.task, root) == ("landcover", "segmentation", landcover_yaml)
    assert len(get_dataset(name, root, "train")) == 4  # 128 px scene, 64 px tiles
    assert get_dataset(name, root, "val")[0]["mask"].shape == (64, 64)


def test_registry_entry_needs_a_root(data_dir: Path) -> None:
    name, info, root = resolve_dataset("LoveDA", data_root=data_dir)
    assert (name, info.metric, root.name) == ("loveda", "mIoU", "loveda")
    with pytest.raises(InputError, match="--data-root"):
        resolve_dataset("loveda")
    with pytest.raises(InputError, match="no such dataset YAML"):
        resolve_dataset("missing.yaml")


def test_survey_counts_a_yaml_entry(landcover_yaml: Path) -> None:
    (entry,) = survey(names=[str(landcover_yaml)])
    assert entry["name"] == "landcover" and entry["samples"]["train"] == 4 and entry["samples"]["val"] == 4


def test_same_dataset() -> None:
    assert same_dataset("Potsdam", "ISPRS_Potsdam") and same_dataset("landcover", "Landcover")
    assert not same_dataset("potsdam", "vaihingen")
