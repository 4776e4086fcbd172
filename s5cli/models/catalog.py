"""Parameter counts of every preset, as `s5 models` lists them (built on the meta device)."""

from __future__ import annotations

from s5cli.errors import S5Error
from s5cli.models.known_heads import S5_NUM_CLASSES, S5_SEGMENTATION_DATASETS, known_head
from s5cli.models.network import count_parameters
from s5cli.models.presets import MODEL_PRESETS
from s5cli.models.spec import ModelSpec

# S5's detection pair (s5_method.md §3): DIOR-R single, DIOR-R + DOTA-v2.0 with MoE-MDF.
DETECTION_DATASETS = ["dior-r", "dota-v2.0"]


def expert_width_for(preset: str) -> int:
    """P = 256 for the S5 sizes; a quarter of the width for the tiny test presets narrower than that."""
    dim = MODEL_PRESETS[preset].embed_dim
    return 256 if dim > 256 else dim // 4


def segmentation_specs(preset: str) -> tuple[ModelSpec, ModelSpec]:
    """(single-dataset, four-dataset MoE-MDF) segmentation specs, as counted in the S5 paper table."""
    heads = [known_head(n, S5_NUM_CLASSES[n]) for n in S5_SEGMENTATION_DATASETS]
    single = ModelSpec(preset=preset, heads=heads[:1])
    multi = ModelSpec(preset=preset, moe=True, heads=heads, expert_width=expert_width_for(preset))
    return single, multi


def _detection_counts(preset: str) -> tuple[int | None, int | None]:
    try:  # detection lives in another module that may be absent or unfinished: never break the listing
        heads = [known_head(n, task="detection") for n in DETECTION_DATASETS]
        single = count_parameters(ModelSpec(preset=preset, heads=heads[:1]))
        multi = count_parameters(ModelSpec(preset=preset, moe=True, heads=heads, expert_width=expert_width_for(preset)))
    except (ImportError, S5Error, RuntimeError, TypeError, ValueError, AttributeError, KeyError):
        return None, None
    return single, multi


def preset_rows() -> list[dict]:
    """One row per preset: sizes and parameter counts (None where detection is unavailable)."""
    rows = []
    for name, preset in MODEL_PRESETS.items():
        single, multi = segmentation_specs(name)
        det_single, det_multi = _detection_counts(name)
        rows.append(
            {
                "preset": name,
                "embed_dim": preset.embed_dim,
                "depth": preset.depth,
                "num_heads": preset.num_heads,
                "taps": list(preset.taps),
                "test_only": preset.test_only,
                "segmentation_single": count_parameters(single),
                "segmentation_multi": count_parameters(multi),
                "detection_single": det_single,
                "detection_multi": det_multi,
            }
        )
    return rows
