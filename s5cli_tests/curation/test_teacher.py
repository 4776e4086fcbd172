import math

import numpy as np
import pytest
import torch
from PIL import Image

from s5cli.curation.teacher import NO_LABEL, chip_stats, load_teacher, write_mask
from s5cli.datasets.info import NEUTRAL, default_palette
from s5cli.errors import InputError
from s5cli_tests.curation.conftest import H_BRIGHT, H_DARK


def image(bright_cols: int, size: int = 32) -> np.ndarray:
    data = np.full((3, size, size), 40, np.uint8)
    data[0, :, :bright_cols] = 200
    return data


def test_entropy_values_by_hand():
    assert H_BRIGHT == pytest.approx(0.3250829733914482)
    assert H_DARK == pytest.approx(0.5623351446188083)


def test_stats_of_stand_in_teacher(stand_in_teacher):
    valid = np.ones((32, 32), bool)
    half, none, full = stand_in_teacher.predict([(image(16), valid), (image(0), valid), (image(32), valid)])
    assert half.entropy_mean == pytest.approx((H_BRIGHT + H_DARK) / 2, rel=1e-6)
    assert half.entropy_max == pytest.approx(H_DARK, rel=1e-6)
    assert half.class_hist == [512, 512]
    assert half.foreground == 0.5
    assert none.foreground == 0.0 and none.class_hist == [1024, 0]
    assert none.entropy_mean == pytest.approx(H_DARK, rel=1e-6)
    assert full.foreground == 1.0 and full.entropy_max == pytest.approx(H_BRIGHT, rel=1e-6)
    assert (half.labels[:, :16] == 1).all() and (half.labels[:, 16:] == 0).all()


def test_stats_ignore_invalid_pixels_and_pad_to_16(stand_in_teacher):
    data = image(10, size=20)  # 20 x 20: padded to 32 x 32 for the model
    valid = np.ones((20, 20), bool)
    valid[:, 15:] = False  # 5 dark columns are nodata
    (stats,) = stand_in_teacher.predict([(data, valid)])
    assert stand_in_teacher.model.shapes == [(1, 3, 32, 32)]
    assert stand_in_teacher.model.datasets == ["toy"]
    assert stats.class_hist == [100, 200]  # 5 dark valid columns, 10 bright
    assert stats.foreground == pytest.approx(200 / 300)
    assert stats.entropy_mean == pytest.approx((200 * H_BRIGHT + 100 * H_DARK) / 300, rel=1e-6)
    assert stats.labels.shape == (20, 20)
    assert (stats.labels[:, 15:] == NO_LABEL).all()


def test_batches_mix_sizes(stand_in_teacher):
    chips = [(image(8, size=s), np.ones((s, s), bool)) for s in (32, 16, 32, 32, 48)]
    stats = stand_in_teacher.predict(chips)
    assert [s.labels.shape for s in stats] == [(32, 32), (16, 16), (32, 32), (32, 32), (48, 48)]
    assert stand_in_teacher.model.shapes == [(4, 3, 32, 32), (1, 3, 48, 48)]  # batch_size 4


def test_band_mismatch_is_input_error(stand_in_teacher):
    with pytest.raises(InputError, match="--bands"):
        stand_in_teacher.predict([(np.zeros((4, 16, 16), np.uint8), np.ones((16, 16), bool))])


def test_background_by_name(stand_in_teacher):
    from s5cli.curation.teacher import Teacher

    t = Teacher(stand_in_teacher.model, stand_in_teacher.head, stand_in_teacher.input, background="thing")
    (stats,) = t.predict([(image(8), np.ones((32, 32), bool))])
    assert t.background == 1 and stats.foreground == 0.75
    with pytest.raises(InputError, match="no class 'water'"):
        Teacher(stand_in_teacher.model, stand_in_teacher.head, stand_in_teacher.input, background="water")


def test_chip_stats_direct():
    probs = torch.tensor([[[0.5, 1.0]], [[0.5, 0.0]]])  # (K=2, H=1, W=2)
    stats = chip_stats(probs, torch.tensor([[True, True]]), background=0)
    assert stats.entropy_max == pytest.approx(math.log(2))
    assert stats.entropy_mean == pytest.approx(math.log(2) / 2)
    assert stats.class_hist == [2, 0] and stats.foreground == 0.0  # argmax ties go to the first class


def test_mask_png_has_palette(tmp_path):
    labels = np.array([[0, 1], [NO_LABEL, 1]], np.uint8)
    write_mask(tmp_path / "m" / "x.png", labels, [(0, 0, 0), (255, 0, 0)])
    with Image.open(tmp_path / "m" / "x.png") as im:
        assert im.mode == "P"
        assert im.getpalette()[:6] == [0, 0, 0, 255, 0, 0]
        np.testing.assert_array_equal(np.asarray(im), labels)
    assert default_palette(3, background=0)[0] == NEUTRAL and len(set(default_palette(16))) == 16


def test_real_tiny_checkpoint(tiny_checkpoint):
    teacher = load_teacher(tiny_checkpoint, device="cpu", batch_size=2)
    assert teacher.classes == ["background", "ship", "plane", "car"]
    rng = np.random.default_rng(0)
    chips = [(rng.integers(0, 255, (3, 32, 32), dtype=np.uint8), np.ones((32, 32), bool)) for _ in range(3)]
    stats = teacher.predict(chips)
    for s in stats:
        assert sum(s.class_hist) == 1024
        assert 0 <= s.entropy_mean <= s.entropy_max <= math.log(4) + 1e-6
        assert s.foreground == pytest.approx(1 - s.class_hist[0] / 1024)
        assert s.labels.max() < 4
    with pytest.raises(InputError, match="no head 'potsdam'"):
        load_teacher(tiny_checkpoint, device="cpu", head="potsdam")
