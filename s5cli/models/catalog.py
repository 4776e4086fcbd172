"""Parameter counts of every preset, as `s5 models` lists them (built on the meta device)."""

from __future__ import annotations

from s5cli.datasets.benchmarks import S5_DETECTION_DATASETS, S5_SEGMENTATION_DATASETS
from s5cli.datasets.registry import dataset_info
from s5cli.models.network import count_parameters
from s5cli.models.presets import MODEL_PRESETS
from s5cli.models.spec import HeadSpec, ModelSpec

DETECTION_CONFIG_SIZE = 1024  # img_size of the official configs/obb/oriented_rcnn/mtd/vit_*_moe_dior_r_dota2.py


def expert_width_for(preset: str) -> int:
    """P = 256 for the S5 sizes; a quarter of the width for the tiny test presets narrower than that."""
    dim = MODEL_PRESETS[preset].embed_dim
    return 256 if dim > 256 else dim // 4


def paper_specs(
    preset: str, names: tuple[str, ...] = S5_SEGMENTATION_DATASETS, img_size: int = 512
) -> tuple[ModelSpec, ModelSpec]:
    """(single-dataset, MoE-MDF over `names`) specs with the position grid at `img_size`.

    The paper's table counts every model at 512 px (a 32 x 32 position grid), detection included.
    """
    heads = [HeadSpec.from_dataset(dataset_info(n)) for n in names]
    single = ModelSpec(preset=preset, heads=heads[:1], img_size=img_size)
    multi = ModelSpec(preset=preset, moe=True, heads=heads, expert_width=expert_width_for(preset), img_size=img_size)
    return single, multi


def _counts(preset: str, names: tuple[str, ...], img_size: int = 512) -> tuple[int, int]:
    single, multi = paper_specs(preset, names, img_size)
    return count_parameters(single), count_parameters(multi)


def preset_rows() -> list[dict]:
    """One row per preset: parameter counts at 512 px (the paper's table), detection also at 1024 px.

    1024 px is what the official detection config builds (a 64 x 64 position grid).
    """
    rows = []
    for name, preset in MODEL_PRESETS.items():
        seg_single, seg_multi = _counts(name, S5_SEGMENTATION_DATASETS)
        det_single, det_multi = _counts(name, S5_DETECTION_DATASETS)
        # What the official detection config builds: img_size 1024, a 64 x 64 position grid.
        det_single_1024, det_multi_1024 = _counts(name, S5_DETECTION_DATASETS, DETECTION_CONFIG_SIZE)
        rows.append(
            {
                "preset": name,
                "embed_dim": preset.embed_dim,
                "depth": preset.depth,
                "num_heads": preset.num_heads,
                "taps": list(preset.taps),
                "test_only": preset.test_only,
                "segmentation_single": seg_single,
                "segmentation_multi": seg_multi,
                "detection_single": det_single,
                "detection_multi": det_multi,
                "detection_single_1024": det_single_1024,
                "detection_multi_1024": det_multi_1024,
            }
        )
    return rows
