"""Detection parameter counts of the whole S5 network (ViT + simple FPN + Oriented R-CNN heads), as in the S5 table."""

import pytest

from s5cli.models.known_heads import known_head
from s5cli.models.network import count_parameters
from s5cli.models.spec import ModelSpec

# (embed dim, depth) of the S5 ViTs
SIZES = {"vit-b": (768, 12), "vit-l": (1024, 24), "vit-h": (1280, 32)}
# README of MiliLab/S5, in millions: (single DIOR-R, MoE-MDF over DIOR-R + DOTA-v2.0)
PAPER = {"vit-b": (111.2, 138.3), "vit-l": (334.6, 377.8), "vit-h": (671.7, 730.0)}


def specs(preset):
    heads = [known_head("dior-r", task="detection"), known_head("dota-v2.0", task="detection")]
    return ModelSpec(preset=preset, heads=heads[:1]), ModelSpec(preset=preset, moe=True, heads=heads)


def analytic(preset, classes):
    """Backbone (pos-embed at 32x32), per dataset FPN + RPN + RoI head, experts for extra datasets."""
    d, depth = SIZES[preset]
    backbone = (3 * 256 * d + d) + 1024 * d + d  # patch embed, pos embed, (unused) cls token
    backbone += depth * ((4 * d * d + 4 * d) + (8 * d * d + 5 * d) + 4 * d)  # attention, MLP, two LayerNorms
    backbone += 3 * (4 * d * d + d) + 2 * d  # simple FPN: three ConvT 2x2 and a LayerNorm2d
    experts = depth * (len(classes) - 1) * (4 * d * 256 + 256)  # P = 256 outputs of fc2 per extra dataset
    heads = 0
    for k in classes:
        heads += 4 * (d * 256 + 256) + 4 * (256 * 9 * 256 + 256)  # FPN
        heads += (256 * 9 * 256 + 256) + (256 * 3 + 3) + (256 * 18 + 18)  # oriented RPN
        heads += (256 * 49 * 1024 + 1024) + (1024 * 1024 + 1024) + 1025 * (k + 1) + 1025 * 5  # RoI head
    return backbone + experts + heads


@pytest.mark.parametrize("preset", sorted(SIZES))
def test_counts_are_the_analytic_totals(preset):
    single, multi = specs(preset)
    assert count_parameters(single) == analytic(preset, [20])
    assert count_parameters(multi) == analytic(preset, [20, 18])


@pytest.mark.parametrize(("preset", "which"), [("vit-b", 0), ("vit-b", 1), ("vit-l", 1), ("vit-h", 1)])
def test_counts_reproduce_the_paper_table(preset, which):
    count = count_parameters(specs(preset)[which])
    assert abs(count / 1e6 - PAPER[preset][which]) <= 0.05, count


def test_single_vit_l_and_vit_h_differ_from_the_paper_table():
    # The table's single-dataset ViT-L / ViT-H entries are not reproducible from the official code:
    # ViT-L gives 334.66 M (the table's 334.6 is also every ViT-L baseline's entry), and ViT-H gives
    # 669.83 M, while the table's own MoE ViT-H entry, 730.0 M, is 669.83 M plus one expert per block
    # (41.95 M) plus a second FPN, RPN and RoI head (18.19 M). We keep the official architecture.
    assert count_parameters(specs("vit-l")[0]) == 334_662_191
    assert count_parameters(specs("vit-h")[0]) == 669_831_471
    assert round((count_parameters(specs("vit-h")[1]) - count_parameters(specs("vit-h")[0])) / 1e6, 2) == 60.14


def test_counts_at_the_official_detection_grid():
    """The official detection config builds img_size 1024: 64 x 64 position tokens, 3072 x D more than at 512."""
    from s5cli.models.catalog import preset_rows

    row = next(r for r in preset_rows() if r["preset"] == "vit-b")
    assert round(row["detection_single"] / 1e6, 1) == 111.2 and round(row["detection_multi"] / 1e6, 1) == 138.3
    assert (
        round(row["detection_single_1024"] / 1e6, 1) == 113.5 and round(row["detection_multi_1024"] / 1e6, 1) == 140.6
    )
    assert row["detection_single_1024"] - row["detection_single"] == 3072 * 768
