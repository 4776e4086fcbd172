"""The record of every benchmark s5cli reads, as its official download holds it (docs/datasets.md).

Class names and colours are the benchmarks' own; loaders map label colours and annotation names to
classes by *name*, never by position. One record per dataset: the loader, the model heads, fine-tuning,
evaluation and predict read it from here.
"""

from __future__ import annotations

from typing import Any

from s5cli.datasets.info import RGB, DatasetInfo, Protocol, default_palette

# ISPRS colours; class names as mmseg writes them. Clutter is a class in the labels (index 5) that S5
# trains and scores as ignore: heads predict 5 classes (docs/datasets.md, ISPRS).
ISPRS_CLASSES = ("impervious_surface", "building", "low_vegetation", "tree", "car", "clutter")
ISPRS_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))
# LoveDA: class index = raw mask value - 1 (0 is no-data); the mmseg palette.
LOVEDA_CLASSES = ("background", "building", "road", "water", "barren", "forest", "agriculture")
LOVEDA_PALETTE = (
    (255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183), (0, 255, 0), (255, 195, 128),
)  # fmt: skip
# OpenEarthMap: the paper's names, the official palette; value 0 "unknown" is a class (S5 counts it).
OEM_CLASSES = ("unknown", "bareland", "rangeland", "developed", "road", "tree", "water", "agriculture", "building")
OEM_PALETTE = (
    (0, 0, 0), (128, 0, 0), (0, 255, 36), (148, 148, 148), (255, 255, 255), (34, 97, 38), (0, 69, 255),
    (75, 181, 73), (222, 31, 7),
)  # fmt: skip
# iSAID: mmseg's order and colours, names lower-cased; the label space of S4P pre-training.
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
# DIOR-R: the canonical order of mmrotate, MTP and BboxToolkit, lower case.
DIOR_CLASSES = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "expressway-service-area",
    "expressway-toll-station", "dam", "golffield", "groundtrackfield", "harbor", "overpass", "ship", "stadium",
    "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
)  # fmt: skip
# DOTA: mmrotate's order; v1.5 adds container-crane, v2.0 adds airport and helipad.
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

_ISPRS_SPLITS = ("train", "test")


IRRG = ("nir", "red", "green")  # false colour: Vaihingen's only product, one of Potsdam's


def _isprs(name: str, metric: str, layout: str, gsd: float, aliases: tuple[str, ...], **bands: Any) -> DatasetInfo:
    """Potsdam and Vaihingen share classes, the clutter rule, sizes and the protocol."""
    return DatasetInfo(
        name=name,
        task="segmentation",
        classes=ISPRS_CLASSES,
        palette=ISPRS_PALETTE,
        metric=metric,  # type: ignore[arg-type]
        splits=_ISPRS_SPLITS,
        loader=f"isprs:{name.capitalize()}",
        layout=layout,
        # The official test tiles in non-overlapping windows + h-flip TTA (S5's 'original' mode). S5 also
        # validates on them (model selection on test).
        protocol=Protocol("test", "crop", flip=True, windows=True),
        val_split="test",
        ignored=("clutter",),
        split_aliases={"val": "test"},  # mmseg calls the test tiles "val"
        aliases=aliases,
        crop_size=512,  # S5: 512 windows, stride 256 for training (529 per Potsdam tile), non-overlapping test
        stride=256,
        test_stride=512,
        gsd=gsd,
        **bands,
    )


def _dota(version: str) -> DatasetInfo:
    classes = DOTA_CLASSES[version]
    return DatasetInfo(
        name=f"dota-v{version}",
        task="detection",
        classes=classes,
        palette=default_palette(len(classes)),
        metric="mAP",
        splits=("train", "val", "trainval", "test"),
        loader=f"dota:DOTAv{version.replace('.', '')}",
        layout="{train,val}/images/P####.png with {train,val}/labelTxt/P####.txt, and test/images/",
        # Whole val images by patches merged with rotated NMS; test-dev goes to the server as Task1 files.
        protocol=Protocol(
            "val", "patches", options={"patch_size": None}, submission_split="test", map_rule="dota_devkit"
        ),
        aliases=(f"DOTA-v{version}", f"DOTAv{version}", f"dota_v{version}", f"dota{version}"),
        patch_size=1024,  # mmrotate / BboxToolkit single-scale split configs
        patch_gap=200,
    )


POTSDAM = _isprs(
    "potsdam",
    "mF1",  # S5 reports mF1 for Potsdam
    "2_Ortho_RGB/top_potsdam_{r}_{c}_RGB.tif (or 3_Ortho_IRRG/, 4_Ortho_RGBIR/) and "
    "5_Labels_all/top_potsdam_{r}_{c}_label.tif (or 5_Labels_all_noBoundary/, or the labels flat in the folder)",
    0.05,
    ("ISPRS_Potsdam", "ISPRS-Potsdam"),
    band_options={"RGB": RGB, "IRRG": IRRG, "RGBIR": (*RGB, "nir")},  # the loader's `bands` option
)
VAIHINGEN = _isprs(
    "vaihingen",
    "mIoU",
    "top/top_mosaic_09cm_area{N}.tif and the colour labels top_mosaic_09cm_area{N}.tif "
    "(and/or ..._noBoundary.tif) flat in the folder",
    0.09,
    ("ISPRS_Vaihingen", "ISPRS-Vaihingen"),
    bands=IRRG,
)
LOVEDA = DatasetInfo(
    name="loveda",
    task="segmentation",
    classes=LOVEDA_CLASSES,
    palette=LOVEDA_PALETTE,
    metric="mIoU",
    splits=("train", "val", "trainval", "test"),
    loader="loveda:LoveDA",
    layout="{Train,Val,Test}/{Urban,Rural}/images_png/{id}.png with masks_png/{id}.png beside (not for Test)",
    # Val has labels; Test goes to the server (PNG 0..6). Slide 512 / stride 256.
    protocol=Protocol("val", "slide", overlap=0.5, submission_split="test"),
    aliases=("LoveDA", "love-da"),
    crop_size=512,  # whole 1024 images; 512 random crops for training, 512 / 256 sliding window for test
    stride=256,
    gsd=0.3,
)
OPENEARTHMAP = DatasetInfo(
    name="openearthmap",
    task="segmentation",
    classes=OEM_CLASSES,
    palette=OEM_PALETTE,
    metric="mIoU",
    splits=("train", "val", "test"),
    loader="openearthmap:OpenEarthMap",
    layout="OpenEarthMap_wo_xBD/{train,val,test}.txt and {region}/{images,labels}/{region}_{k}.tif",
    protocol=Protocol("val", "resize"),  # the whole image resized to one tile, logits back up
    aliases=("OpenEarthMap", "OpenEarthMap_wo_xBD", "oem"),
    crop_size=512,
    # GSD 0.25-0.5 m, region by region: the images are georeferenced, so it is read from them.
)
ISAID = DatasetInfo(
    name="isaid",
    task="segmentation",
    classes=ISAID_CLASSES,
    palette=ISAID_PALETTE,
    metric="mIoU",
    splits=("train", "val", "test"),
    loader="isaid:ISAID",
    layout="{train,val,test}/images/P####.png with P####_instance_color_RGB.png beside (train, val)",
    protocol=Protocol("val", "crop", windows=True),  # S4P validation: tile windows of the val images
    metric_exclude=("background",),  # S4P's validation skips class 0
    aliases=("iSAID",),
    crop_size=896,  # mmseg iSAID patches: 896 with overlap 384 (stride 512)
    stride=512,
    test_stride=512,
)
DIOR_R = DatasetInfo(
    name="dior-r",
    task="detection",
    classes=DIOR_CLASSES,
    palette=default_palette(len(DIOR_CLASSES)),
    metric="mAP",
    splits=("train", "val", "trainval", "test"),
    loader="dior:DIORR",
    layout=(
        "JPEGImages-trainval/, JPEGImages-test/, 'Annotations/Oriented Bounding Boxes/{id}.xml' and "
        "ImageSets/Main/{train,val,test}.txt"
    ),
    # mAP VOC07 on test, images resized to the head's size; S5 scores it with BboxToolkit, whose DIOR
    # reader never reads <difficult>: every object counts.
    protocol=Protocol("test", "detect", count_difficult=True),
    aliases=("DIOR-R", "DIOR", "dior_r", "diorr"),
    crop_size=800,  # whole 800 x 800 images
)
DOTA_V1_0, DOTA_V1_5, DOTA_V2_0 = _dota("1.0"), _dota("1.5"), _dota("2.0")
MILLION_AID = DatasetInfo(
    name="million-aid",
    task="unlabeled",
    classes=(),
    palette=(),
    metric="none",
    splits=("all", "train", "test"),
    loader="imagefolder:ImageFolder",
    layout="image files (.jpg, .png, .tif) at any depth, e.g. train/{level1}/{level2}/P#######.jpg",
    val_split=None,
    aliases=("MillionAID", "Million-AID", "millionaid", "imagefolder"),
)

BENCHMARKS: tuple[DatasetInfo, ...] = (
    POTSDAM, VAIHINGEN, LOVEDA, OPENEARTHMAP, ISAID, DIOR_R, DOTA_V1_0, DOTA_V1_5, DOTA_V2_0, MILLION_AID,
)  # fmt: skip

# The MoE-MDF datasets of the released S5 weights, in the official expert order.
S5_SEGMENTATION_DATASETS = ("vaihingen", "potsdam", "openearthmap", "loveda")
S5_DETECTION_DATASETS = ("dior-r", "dota-v2.0")
