import math

import pytest
import torch

from s5cli.detection.roi_align import roi_align, rotated_roi_align


def bilinear_reference(fm, y, x):
    """torchvision/mmcv RoIAlign's bilinear read, one point at a time."""
    c, h, w = fm.shape
    if y < -1 or y > h or x < -1 or x > w:
        return torch.zeros(c, dtype=fm.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yh = yl = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xh = xl = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    return (
        (1 - ly) * (1 - lx) * fm[:, yl, xl]
        + (1 - ly) * lx * fm[:, yl, xh]
        + ly * (1 - lx) * fm[:, yh, xl]
        + ly * lx * fm[:, yh, xh]
    )


def roi_align_reference(fm, box, out_h, out_w, scale, ratio, aligned):
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - offset for v in box)
    w, h = x2 - x1, y2 - y1
    if not aligned:
        w, h = max(w, 1.0), max(h, 1.0)
    out = torch.zeros(fm.shape[0], out_h, out_w, dtype=fm.dtype)
    for ph in range(out_h):
        for pw in range(out_w):
            total = 0
            for iy in range(ratio):
                for ix in range(ratio):
                    yy = y1 + ph * h / out_h + (iy + 0.5) * h / out_h / ratio
                    xx = x1 + pw * w / out_w + (ix + 0.5) * w / out_w / ratio
                    total = total + bilinear_reference(fm, yy, xx)
            out[:, ph, pw] = total / ratio**2
    return out


@pytest.mark.parametrize("aligned", [True, False])
def test_horizontal_matches_reference_loop(aligned):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 10, 12, generator=gen, dtype=torch.float64)
    rois = torch.tensor(
        [[0, 1.0, 2.0, 30.0, 25.0], [1, -10.0, -8.0, 50.0, 44.0], [1, 3.3, 4.4, 5.5, 6.6], [0, 40.0, 30.0, 60.0, 50.0]],
        dtype=torch.float64,
    )
    out = roi_align(feats, rois, (3, 4), 0.25, sampling_ratio=2, aligned=aligned)
    for i, roi in enumerate(rois):
        ref = roi_align_reference(feats[int(roi[0])], roi[1:].tolist(), 3, 4, 0.25, 2, aligned)
        assert torch.allclose(out[i], ref, atol=1e-12)


def test_rotated_of_axis_aligned_box_equals_horizontal():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64)
    hrois = torch.tensor(
        [[0, 4.0, 6.0, 40.0, 30.0], [1, -6.0, 10.0, 20.0, 70.0], [1, 30.0, 30.0, 33.0, 31.0]], dtype=torch.float64
    )
    x1, y1, x2, y2 = hrois[:, 1:].unbind(1)
    rrois = torch.stack(
        [hrois[:, 0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, torch.zeros(3, dtype=torch.float64)], 1
    )
    expected = roi_align(feats, hrois, 7, 0.25, sampling_ratio=2, aligned=True)
    assert torch.allclose(
        rotated_roi_align(feats, rrois, 7, 0.25, sampling_ratio=2, aligned=True), expected, atol=1e-12
    )


def test_constant_map_gives_constant_output():
    feats = torch.full((1, 2, 20, 20), 3.0)
    rois = torch.tensor([[0, 40.0, 40.0, 30.0, 12.0, 0.7], [0, 20.0, 50.0, 10.0, 8.0, -1.3]])
    assert torch.allclose(rotated_roi_align(feats, rois, 7, 0.25), torch.full((2, 2, 7, 7), 3.0))


def test_linear_ramp_reads_bin_centres():
    # f(x, y) = 2x + 3y + 1 on pixel centres is exact under bilinear sampling; a bin's mean is f at its centre.
    h, w = 32, 32
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    feats = (2 * xs + 3 * ys + 1)[None, None]
    cx, cy, bw, bh, a = 16.0, 15.0, 14.0, 7.0, 0.6
    out = rotated_roi_align(
        feats, torch.tensor([[0, cx, cy, bw, bh, a]], dtype=torch.float64), (7, 7), 1.0, 2, aligned=True
    )[0, 0]
    for i in range(7):
        for j in range(7):
            u = (j + 0.5) / 7 * bw - bw / 2  # along the w side (cos a, -sin a)
            v = (i + 0.5) / 7 * bh - bh / 2  # along the h side (sin a, cos a)
            x = cx - 0.5 + u * math.cos(a) + v * math.sin(a)
            y = cy - 0.5 - u * math.sin(a) + v * math.cos(a)
            assert out[i, j].item() == pytest.approx(2 * x + 3 * y + 1, abs=1e-9)


def test_quarter_turn_is_a_transposed_flip():
    # The upright box (w along -y) of a w x h region reads the h x w axis-aligned region rotated:
    # output column j runs up the image, output row i runs to the right.
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(1, 1, 24, 24, generator=gen, dtype=torch.float64)
    flat = rotated_roi_align(
        feats, torch.tensor([[0, 12.0, 12.0, 8.0, 16.0, 0.0]], dtype=torch.float64), (4, 4), 1.0, 1
    )
    turned = rotated_roi_align(
        feats, torch.tensor([[0, 12.0, 12.0, 16.0, 8.0, math.pi / 2]], dtype=torch.float64), (4, 4), 1.0, 1
    )
    assert torch.allclose(turned[0, 0], flat[0, 0].flip(0).T, atol=1e-12)


def test_gradients_reach_features():
    feats = torch.randn(1, 2, 8, 8, requires_grad=True)
    rotated_roi_align(feats, torch.tensor([[0, 10.0, 12.0, 12.0, 6.0, 0.4]]), 3, 0.5).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 2, 1.0, sampling_ratio=0)
    with pytest.raises(ValueError, match="rois"):
        rotated_roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 2, 1.0)
    assert rotated_roi_align(torch.zeros(1, 3, 4, 4), torch.zeros(0, 6), 7, 1.0).shape == (0, 3, 7, 7)
