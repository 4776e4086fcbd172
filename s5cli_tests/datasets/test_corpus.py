from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from s5cli.curation.config import CurateConfig
from s5cli.curation.pipeline import run_curate
from s5cli.datasets.corpus import CorpusDataset, read_chip
from s5cli.errors import InputError
from s5cli_tests.curation.conftest import save_tiny_checkpoint
from s5cli_tests.scenes import make_scene


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    make_scene(tmp_path / "a.tif", width=96, height=80, seed=1)  # nodata border: 5 of 9 chips dropped
    run_curate([str(tmp_path / "a.tif")], tmp_path / "corpus", CurateConfig(chip_size=32))
    return tmp_path / "corpus"


def kept_paths(corpus: Path) -> list[str]:
    table = pq.read_table(corpus / "manifest.parquet", columns=["path", "kept"])
    return [p for p, k in zip(table.column("path").to_pylist(), table.column("kept").to_pylist()) if k]


def test_reads_kept_chips_only(corpus):
    ds = CorpusDataset(corpus)
    table = pq.read_table(corpus / "manifest.parquet", columns=["kept"])
    assert table.num_rows == 9 and len(ds) == sum(table.column("kept").to_pylist()) == 4
    assert [Path(ds[i]["path"]) for i in range(len(ds))] == [(corpus / p).resolve() for p in kept_paths(corpus)]
    sample = ds[0]
    assert sample["dataset"] == "corpus" and set(sample) == {"image", "dataset", "path"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 32, 32)
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    data, valid = read_chip(sample["path"])
    assert valid.all()
    np.testing.assert_allclose(sample["image"].numpy(), data / 255.0, rtol=1e-6)
    assert len(CorpusDataset(corpus / "manifest.parquet")) == 4


def test_transforms_apply_to_the_sample(corpus):
    ds = CorpusDataset(corpus, transforms=lambda s: {**s, "image": s["image"][:, :16, :16]})
    assert ds[1]["image"].shape == (3, 16, 16)


def test_masks_need_a_teacher(corpus):
    with pytest.raises(InputError, match="pseudo-labels"):
        CorpusDataset(corpus, masks=True)


def test_masks_from_a_teacher_run(tmp_path):
    tiny_checkpoint = save_tiny_checkpoint(tmp_path / "teacher.pt")
    make_scene(tmp_path / "a.tif", width=64, height=64, seed=2, nodata_border=0)
    cfg = CurateConfig(chip_size=32, teacher=str(tiny_checkpoint), device="cpu")
    run_curate([str(tmp_path / "a.tif")], tmp_path / "corpus", cfg)
    ds = CorpusDataset(tmp_path / "corpus", masks=True)
    assert len(ds) >= 1
    mask = ds[0]["mask"]
    assert mask.dtype == torch.int64 and mask.shape == (32, 32) and int(mask.max()) < 4


def test_paths_cannot_escape_the_corpus(corpus, tmp_path):
    table = pq.read_table(corpus / "manifest.parquet")
    paths = table.column("path").to_pylist()
    first = next(i for i, k in enumerate(table.column("kept").to_pylist()) if k)
    paths[first] = "../a.tif"
    table = table.set_column(table.schema.get_field_index("path"), "path", pa.array(paths, pa.string()))
    pq.write_table(table, corpus / "evil.parquet")
    ds = CorpusDataset(corpus / "evil.parquet")
    with pytest.raises(InputError, match="escapes its root"):
        ds[0]


def test_unfinished_or_missing_corpus(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(InputError, match="has not finished"):
        CorpusDataset(tmp_path / "c")
    with pytest.raises(InputError, match="no such corpus"):
        CorpusDataset(tmp_path / "nope")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable corpus manifest"):
        CorpusDataset(tmp_path / "bad.parquet")
