"""Parameter counts of every preset, as `s5 models` lists them (built on the meta device)."""

from __future__ import annotations

from s5cli.datasets.benchmarks import S5_DETECTION_DATASETS, S5_SEGMENTATION_DATASETS
from s5cli.datasets.registry import dataset_info
from s5cli.models.network import count_parameters
from s5cli.models.presets import MODEL_PRESETS
from s5cli.models.spec import HeadSpec, ModelSpec


def expert_width_for(preset: str) -> int:
    """P = 256 for the S5 sizes; a quarter of the width for the tiny test presets narrower than that."""
    dim = MODEL_PRESETS[preset].embed_dim
    return 256 if dim > 256 else dim // 4


def paper_specs(preset: str, names: tuple[str, ...] = S5_SEGMENTATION_DATASETS) -> tuple[ModelSpec, ModelSpec]:
    """(single-dataset, MoE-MDF over `names`) specs, as counted in the S5 paper table."""
    heads = [HeadSpec.from_dataset(dataset_info(n)) for n in names]
    single = ModelSpec(preset=preset, heads=heads[:1])
    multi = ModelSpec(preset=preset, moe=True, heads=heads, expert_width=expert_width_for(preset))
    return single, multi


def _counts(preset: str, names: tuple[str, ...]) -> tuple[int, int]:
    single, multi = paper_specs(preset, names)
    return count_parameters(single), count_parameters(multi)


def preset_rows() -> list[dict]:
    """One row per preset: sizes and parameter counts of the paper's segmentation and detection models."""
    rows = []
    for name, preset in MODEL_PRESETS.items():
        seg_single, seg_multi = _counts(name, S5_SEGMENTATION_DATASETS)
        det_single, det_multi = _counts(name, S5_DETECTION_DATASETS)
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
            }
        )
    return rows
