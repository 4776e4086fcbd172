import math

import torch

from s5cli.detection.assign import IGNORED, NEGATIVE, max_iou_assign, random_sample
from s5cli.detection.coders import DeltaXYWHTCoder, MidpointOffsetCoder
from s5cli.geometry.boxes import rboxes_to_hboxes, regularize_rboxes, wrap_angle
from s5cli.geometry.iou import rotated_iou_aligned


def random_rboxes(n, seed):
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 500,
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 60 + 2,
            (torch.rand(n, 1, generator=gen, dtype=torch.float64) - 0.5) * 2 * math.pi,
        ],
        1,
    )
    return regularize_rboxes(boxes)


def test_midpoint_offsets_of_an_axis_aligned_box():
    # Top vertex: the top side's rightmost corner (x2), right vertex: the next corner clockwise (y2).
    coder = MidpointOffsetCoder()
    gt = torch.tensor([[50.0, 40.0, 20.0, 10.0, 0.0]])
    anchor = torch.tensor([[35.0, 30.0, 55.0, 50.0]])
    deltas = coder.encode(anchor, gt)
    expected = torch.tensor(
        [[(50 - 45) / 20, (40 - 40) / 20, math.log(20 / 20), math.log(10 / 20), 0.5 / 0.5, 0.5 / 0.5]]
    )
    assert torch.allclose(deltas, expected, atol=1e-6)
    assert torch.allclose(coder.decode(anchor, deltas), gt, atol=1e-5)


def test_midpoint_round_trip_on_random_boxes():
    coder = MidpointOffsetCoder()
    gt = random_rboxes(3000, 0)
    gt[:50, 4] = 0.0  # exact ties between corners
    gt[50:100, 4] = -math.pi / 2
    gen = torch.Generator().manual_seed(1)
    xy = torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 500
    anchors = torch.cat([xy, xy + torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 80 + 4], 1)
    for ref in (rboxes_to_hboxes(gt), anchors):
        back = coder.decode(ref, coder.encode(ref, gt))
        assert rotated_iou_aligned(back, gt).min() > 0.999
    back = coder.decode(anchors.float(), coder.encode(anchors.float(), gt.float()))
    assert rotated_iou_aligned(back.double(), gt).min() > 0.99


def test_midpoint_thin_nearly_level_box_decodes_back():
    # OBBDetection's 0.1 px tie rule would take the corner opposite the top one for this box.
    coder = MidpointOffsetCoder()
    gt = torch.tensor([[14.084, 66.053, 42.39, 5.3863, -0.018535]], dtype=torch.float64)
    ref = rboxes_to_hboxes(gt)
    assert rotated_iou_aligned(coder.decode(ref, coder.encode(ref, gt)), gt).item() > 0.999


def test_rotated_delta_round_trip_and_angle_range():
    coder = DeltaXYWHTCoder()
    gt, proposals = random_rboxes(2000, 2), random_rboxes(2000, 3)
    deltas = coder.encode(proposals, gt)
    assert deltas[:, 4].abs().max() * 0.1 <= math.pi / 4 + 1e-9  # the closer of the two descriptions
    back = coder.decode(proposals, deltas)
    diff = back - gt
    diff[:, 4] = wrap_angle(diff[:, 4])
    keep = (gt[:, 2] - gt[:, 3]) > 1e-3
    assert diff[keep].abs().max() < 1e-9


def test_rotated_delta_in_the_proposal_frame():
    coder = DeltaXYWHTCoder(stds=(1.0,) * 5)
    proposal = torch.tensor([[0.0, 0.0, 20.0, 10.0, math.pi / 2 - 0.5]])
    # Shift by 4 px along the proposal's w side (cos a, -sin a) and 2 px along its h side (sin a, cos a).
    a = proposal[0, 4]
    shift = 4 * torch.stack([torch.cos(a), -torch.sin(a)]) + 2 * torch.stack([torch.sin(a), torch.cos(a)])
    gt = proposal.clone()
    gt[0, :2] += shift
    assert torch.allclose(coder.encode(proposal, gt), torch.tensor([[4 / 20, 2 / 10, 0.0, 0.0, 0.0]]), atol=1e-6)


def test_max_iou_assign_rules():
    iou = torch.tensor(
        [
            [0.8, 0.1],  # positive for gt 0
            [0.5, 0.2],  # between thresholds: ignored
            [0.1, 0.2],  # negative
            [0.1, 0.35],  # below 0.7 but gt 1's best match (>= 0.3): positive for gt 1
        ]
    )
    plain = max_iou_assign(iou, 0.7, 0.3, 0.3, match_low_quality=False)
    assert plain.tolist() == [0, IGNORED, NEGATIVE, IGNORED]
    low = max_iou_assign(iou, 0.7, 0.3, 0.3, match_low_quality=True)
    assert low.tolist() == [0, IGNORED, NEGATIVE, 1]
    assert max_iou_assign(torch.zeros(3, 0), 0.7, 0.3, 0.3, True).tolist() == [NEGATIVE] * 3


def test_random_sample_fractions():
    assigned = torch.tensor([0] * 10 + [NEGATIVE] * 100 + [IGNORED] * 5)
    pos, neg = random_sample(assigned, num=16, pos_fraction=0.25)
    assert len(pos) == 4 and len(neg) == 12
    assert (assigned[pos] >= 0).all() and (assigned[neg] == NEGATIVE).all()
    pos, neg = random_sample(torch.tensor([0, NEGATIVE, NEGATIVE]), num=512, pos_fraction=0.25)
    assert len(pos) == 1 and len(neg) == 2


def test_chunked_assignment_equals_whole_matrix():
    gen = torch.Generator().manual_seed(5)
    iou = (torch.rand(50, 6, generator=gen) * 10).round() / 10  # many ties
    iou[:, 5] = 0.2  # a GT nobody matches well: below min_pos_iou stays unmatched
    whole = max_iou_assign(iou, 0.7, 0.3, 0.3, True)
    chunked = max_iou_assign(lambda a, b: iou[a:b], 0.7, 0.3, 0.3, True, shape=(50, 6), chunk=7)
    assert torch.equal(whole, chunked)
    assert (whole >= 0).sum() > 0 and 5 not in whole.tolist()
