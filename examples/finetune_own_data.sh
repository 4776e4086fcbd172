#!/usr/bin/env bash
# Fine-tune S5 on your own GeoTIFF scenes + GeoPackage labels, then evaluate, export and predict a scene
# into polygons (GeoPackage) and a class raster (COG) with a quick-look PNG.
#
# With no settings it generates a small synthetic world first (two 512 px UTM scenes, a GeoPackage with
# a "landcover" layer and a "buildings" layer), so it runs anywhere without data.
# Time: about 1-3 minutes on 2 CPU cores (60 steps of a tiny model). Point it at your own data with the
# variables below, e.g.
#
#   TRAIN_SCENES="north.tif east.tif" VAL_SCENES=south.tif LABELS=labels.gpkg LAYER=landuse \
#   CLASS_COLUMN=class CLASSES=background,building,road BACKGROUND=background \
#   NAME=landuse TILE=512 ITERATIONS=2000 BATCH=8 bash examples/finetune_own_data.sh
#
# Everything is written under $WORK (replaced on a rerun): the dataset YAML, runs/finetune/ (the run
# directory: config.yaml, metrics.csv, curves.png, best.pt), evaluate.csv, $NAME.pt (the exported dense
# model) and outputs/ ($NAME.gpkg, $NAME.tif, $NAME.png).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$ROOT/.venv/bin/python" ]]; then DEFAULT_PYTHON="$ROOT/.venv/bin/python"; else DEFAULT_PYTHON=python3; fi
PYTHON="${PYTHON:-$DEFAULT_PYTHON}"  # the Python that has s5cli installed

# --- your data (leave TRAIN_SCENES empty to generate the synthetic world) --------------------------------
WORK="${WORK:-s5-own-data}"          # every output goes here
TRAIN_SCENES="${TRAIN_SCENES:-}"     # GeoTIFFs to train on (space-separated)
VAL_SCENES="${VAL_SCENES:-}"         # GeoTIFFs to validate and evaluate on (space-separated)
LABELS="${LABELS:-}"                 # GeoPackage (or GeoJSON, Shapefile) of labelled polygons, any CRS
LAYER="${LAYER:-landcover}"          # the layer of LABELS to read
CLASS_COLUMN="${CLASS_COLUMN:-class_name}"              # the column holding each polygon's class name
CLASSES="${CLASSES:-background,building,road,tree,water}"  # class index = position in this list
BACKGROUND="${BACKGROUND:-background}"                  # class of unlabelled pixels; empty: ignore them
PALETTE="${PALETTE:-}"               # map colours, one r,g,b per class, space-separated; empty: generated
NAME="${NAME:-landcover}"            # the dataset's name: the model's head is called so
EXTRA_DATASETS="${EXTRA_DATASETS:-}" # more dataset YAMLs or benchmark names, comma-separated (MoE-MDF)
PREDICT_SCENE="${PREDICT_SCENE:-}"   # the scene to map at the end (default: the first validation scene)

# --- the model and the run (tiny defaults: minutes on a CPU; scale these up on real data) ---------------
CONFIG="${CONFIG:-$ROOT/configs/finetune/tiny.yaml}"  # official recipe: configs/finetune/seg-vit-b.yaml
INIT="${INIT:-}"                     # an S4P / S5 checkpoint to start from (see OFFICIAL below); empty: scratch
OFFICIAL="${OFFICIAL:-}"             # released S5 weights (.pth), converted with `s5 weights import` into INIT
TILE="${TILE:-64}"                   # window side in px: the dataset's tiles and the training crops
ITERATIONS="${ITERATIONS:-60}"       # optimiser steps
BATCH="${BATCH:-4}"                  # images per dataset per step
DEVICE="${DEVICE:-auto}"             # auto (a GPU when there is one), cpu, cuda
WORLD_SIZE_PX="${WORLD_SIZE_PX:-512}"  # side of each generated scene

s5() { "$PYTHON" -m s5cli "$@"; }    # the `s5` command of that Python
mkdir -p "$WORK"

# 1. Inputs: the synthetic world when no data is given.
if [[ -z "$TRAIN_SCENES" ]]; then
  echo "== generating a synthetic world in $WORK/world"
  "$PYTHON" -c 'import sys; from pathlib import Path; from s5cli.demo.world import build_world
build_world(Path(sys.argv[1]), size=int(sys.argv[2]), n_unlabeled=0)' "$WORK/world" "$WORLD_SIZE_PX"
  TRAIN_SCENES="$WORK/world/scene_train.tif"
  VAL_SCENES="$WORK/world/scene_val.tif"
  LABELS="$WORK/world/labels.gpkg"
  PALETTE="${PALETTE:-200,190,160 220,40,40 90,90,90 30,140,50 40,90,200}"  # the world's five classes
  # A second labelled dataset from the same GeoPackage turns the run into MoE-MDF (one expert and one
  # head per dataset); `s5 export` below then pulls out the dense landcover model.
  cat > "$WORK/buildings.yaml" <<EOF
name: buildings
task: segmentation
classes: [background, building]
palette: [[200, 190, 160], [220, 40, 40]]
scenes:
  - {path: "$(realpath "$TRAIN_SCENES")", split: train}
  - {path: "$(realpath "$VAL_SCENES")", split: val}
labels: "$(realpath "$LABELS")"
layer: buildings
class_column: class_name
background: background
tile_size: $TILE
EOF
  EXTRA_DATASETS="${EXTRA_DATASETS:-$WORK/buildings.yaml}"
fi
PREDICT_SCENE="${PREDICT_SCENE:-${VAL_SCENES%% *}}"

# 2. The dataset YAML (s5cli/datasets/custom.py documents every key). Labels are reprojected to each
#    scene's CRS and rasterised per window on the fly; polygons whose class is not in CLASSES are an error.
YAML="$WORK/$NAME.yaml"
{
  echo "name: $NAME"
  echo "task: segmentation"
  echo "classes: [${CLASSES//,/, }]"
  echo "scenes:"
  for scene in $TRAIN_SCENES; do echo "  - {path: \"$(realpath "$scene")\", split: train}"; done
  for scene in $VAL_SCENES; do echo "  - {path: \"$(realpath "$scene")\", split: val}"; done
  echo "labels: \"$(realpath "$LABELS")\""
  echo "layer: $LAYER"
  echo "class_column: $CLASS_COLUMN"
  if [[ -n "$BACKGROUND" ]]; then echo "background: $BACKGROUND"; fi
  if [[ -n "$PALETTE" ]]; then echo "palette: [$(printf '[%s], ' $PALETTE | sed 's/, $//')]"; fi
  echo "tile_size: $TILE"
} > "$YAML"
echo "== wrote $YAML"
DATASETS="$YAML${EXTRA_DATASETS:+,$EXTRA_DATASETS}"

# 3. Optional: the released S5 weights as the starting point. `s5 weights import` converts the official
#    .pth (S4P backbone, S4P UperNet or MoE-MDF) into an s5cli checkpoint; nothing is downloaded.
if [[ -n "$OFFICIAL" ]]; then
  INIT="$WORK/init.pt"
  s5 weights import "$OFFICIAL" -o "$INIT" --overwrite
fi
INIT_ARGS=()
if [[ -n "$INIT" ]]; then
  # The model's size follows the checkpoint: pass its preset over the config's (tiny.yaml says vit-nano).
  PRESET="$("$PYTHON" -c 'import sys; from s5cli.models.checkpoint import checkpoint_spec, read_checkpoint
print(checkpoint_spec(read_checkpoint(sys.argv[1])).preset)' "$INIT")"
  INIT_ARGS=(--init "$INIT" --preset "$PRESET")
fi

# 4. Fine-tune. Several GPUs: `torchrun --nproc-per-node N -m s5cli finetune ...` with the same options.
s5 finetune --config "$CONFIG" --datasets "$DATASETS" "${INIT_ARGS[@]}" \
  --crop-size "$TILE" --iterations "$ITERATIONS" --batch-size-per-dataset "$BATCH" --device "$DEVICE" \
  -o "$WORK/runs/finetune" --overwrite
CKPT="$WORK/runs/finetune/best.pt"

# 5. Score it on the validation scenes: a table on screen, per-class IoU/F1 in evaluate.csv.
s5 evaluate "$CKPT" --datasets "$DATASETS" --device "$DEVICE" -o "$WORK/evaluate.csv" --overwrite

# 6. Export this dataset's dense model (shared weights + its expert merged, its head only): a plain ViT
#    that computes the same map, faster to run.
s5 export "$CKPT" --dataset "$NAME" -o "$WORK/$NAME.pt" --overwrite

# 7. Map a scene: polygons in a GeoPackage (a layer per scene), a class COG with the scene's grid and CRS,
#    a confidence COG and a quick-look PNG.
mkdir -p "$WORK/outputs"
s5 predict "$PREDICT_SCENE" --checkpoint "$WORK/$NAME.pt" --device "$DEVICE" \
  -o "$WORK/outputs/$NAME.gpkg" --raster "$WORK/outputs/$NAME.tif" --probs \
  --preview "$WORK/outputs/$NAME.png" --overwrite

echo "== done: $WORK/outputs/$NAME.gpkg, $WORK/outputs/$NAME.tif, $WORK/outputs/$NAME.png (scores: $WORK/evaluate.csv)"
