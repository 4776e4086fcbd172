"""Class names and label colours of the benchmarks, exactly as docs/datasets.md gives them.

Loaders map label colours and annotation names to these by *name*, never by position.
"""

from __future__ import annotations

# datasets.md §1.2: ISPRS colours; class names as mmseg writes them. Clutter is a class in the
# mask (index 5) and is left out of the means (ISPRS convention, and S5 ignores it).
ISPRS_CLASSES = ("impervious_surface", "building", "low_vegetation", "tree", "car", "clutter")
ISPRS_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))
# datasets.md §3.2 (raw value - 1) and the mmseg palette.
LOVEDA_CLASSES = ("background", "building", "road", "water", "barren", "forest", "agriculture")
LOVEDA_PALETTE = (
    (255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183), (0, 255, 0), (255, 195, 128),
)  # fmt: skip
# datasets.md §4.2: the paper names, official palette; value 0 "unknown" is a class (S5 counts it).
OEM_CLASSES = ("unknown", "bareland", "rangeland", "developed", "road", "tree", "water", "agriculture", "building")
OEM_PALETTE = (
    (0, 0, 0), (128, 0, 0), (0, 255, 36), (148, 148, 148), (255, 255, 255), (34, 97, 38), (0, 69, 255),
    (75, 181, 73), (222, 31, 7),
)  # fmt: skip
# datasets.md §7: mmseg iSAID order and colours, names lower-cased.
ISAID_CLASSES = (
    "background", "ship", "storage_tank", "baseball_diamond", "tennis_court", "basketball_court",
    "ground_track_field", "bridge", "large_vehicle", "small_vehicle", "helicopter", "swimming_pool",
    "roundabout", "soccer_ball_field", "plane", "harbor",
)  # fmt: skip
ISAID_PALETTE = (
    (0, 0, 0), (0, 0, 63), (0, 63, 63), (0, 63, 0), (0, 63, 127), (0, 63, 191), (0, 63, 255), (0, 127, 63),
    (0, 127, 127), (0, 0, 127), (0, 0, 191), (0, 0, 255), (0, 191, 127), (0, 127, 191), (0, 127, 255),
    (0, 100, 155),
)  # fmt: skip
# datasets.md §5.3: canonical DIOR-R order (mmrotate, MTP, BboxToolkit), lower case.
DIOR_CLASSES = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "expressway-service-area",
    "expressway-toll-station", "dam", "golffield", "groundtrackfield", "harbor", "overpass", "ship", "stadium",
    "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
)  # fmt: skip
# datasets.md §6.3: mmrotate order; v1.5 adds container-crane, v2.0 adds airport and helipad.
DOTA_V1_CLASSES = (
    "plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
    "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
    "swimming-pool", "helicopter",
)  # fmt: skip
DOTA_CLASSES = {
    "1.0": DOTA_V1_CLASSES,
    "1.5": (*DOTA_V1_CLASSES, "container-crane"),
    "2.0": (*DOTA_V1_CLASSES, "container-crane", "airport", "helipad"),
}
