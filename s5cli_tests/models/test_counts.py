"""The S5 paper's parameter table (README of MiliLab/S5; docs/method.md), reproduced from built models."""

import pytest

from s5cli.models.catalog import paper_specs
from s5cli.models.network import count_parameters

# Paper table, in millions, one decimal: (single dataset, MoE-MDF over the four segmentation datasets).
PAPER = {"vit-b": (103.2, 160.4), "vit-l": (327.4, 435.0), "vit-h": (663.4, 824.5)}


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_segmentation_counts_match_paper(preset):
    single, multi = paper_specs(preset)
    assert [h.num_classes for h in multi.heads] == [5, 5, 9, 7]
    for spec, expected in zip((single, multi), PAPER[preset]):
        count = count_parameters(spec)
        assert abs(count / 1e6 - expected) <= 0.05, (preset, spec.moe, count)


def test_moe_adds_three_partial_experts_and_three_decoders():
    single, multi = paper_specs("vit-b")
    extra_experts = 12 * 3 * (4 * 768 * 256 + 256)  # L * 3 * (4D*P + P)
    d, c, bn = 768, 256, 512  # UPerHead(256) on D channels; a BatchNorm has 2 * 256 parameters
    ppm, bottleneck = 4 * (d * c + bn), (d + 4 * c) * c * 9 + bn
    laterals, fpn_convs, fpn_bottleneck = 3 * (d * c + bn), 3 * (c * c * 9 + bn), 4 * c * c * 9 + bn
    decoder = ppm + bottleneck + laterals + fpn_convs + fpn_bottleneck + (c + 1)  # + the unused conv_seg
    heads = sum(256 * k + k for k in (5, 5, 9, 7)) - (256 * 5 + 5)
    assert count_parameters(multi) - count_parameters(single) == extra_experts + 3 * decoder + heads
