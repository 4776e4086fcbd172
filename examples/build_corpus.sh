#!/usr/bin/env bash
# Build an S4P pre-training corpus from a folder of scenes with `s5 curate` (chips, rules, near-duplicate
# removal, optional teacher pseudo-labels and entropy selection, a GeoParquet manifest), report on it,
# then pre-train on it with `s5 pretrain` (FixMatch: the corpus is the unlabeled stream).
#
# With no settings it generates a small synthetic world (labelled scenes + 6 unlabeled 512 px scenes),
# curates the unlabeled scenes in 2 shards run side by side (as 2 machines would), and pre-trains a tiny
# model for 20 steps: about 30 seconds on 2 CPU cores.
#
#   SCENES=/data/naip CHIP=512 SHARDS=1 WORKERS=8 TEACHER=isaid.pt bash examples/build_corpus.sh
#
# Writes $WORK/corpus/ (chips/, manifest.parquet, curate.json, report_*.png), $WORK/pretrain.yaml and
# $WORK/runs/pretrain/ (config.yaml, metrics.csv, curves.png, checkpoint.pt); existing ones are replaced.
#
# Several machines: each runs `s5 curate $SCENES -o $CORPUS --shard I/N ...` (I = 0..N-1, same options,
# CORPUS on a shared file system); the shard that finishes last merges all parts into the manifest, and
# `s5 curate --merge $CORPUS` redoes that merge by hand (e.g. after a shard was rerun with --resume).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$ROOT/.venv/bin/python" ]]; then DEFAULT_PYTHON="$ROOT/.venv/bin/python"; else DEFAULT_PYTHON=python3; fi
PYTHON="${PYTHON:-$DEFAULT_PYTHON}"  # the Python that has s5cli installed

WORK="${WORK:-s5-corpus}"            # every output goes here
SCENES="${SCENES:-}"                 # folder(s) or globs of scenes (GeoTIFF, JPEG, PNG, ...); empty: generate
N_SCENES="${N_SCENES:-6}"            # how many unlabeled scenes to generate when SCENES is empty
CHIP="${CHIP:-128}"                  # chip side in px (RS4P: 512)
SHARDS="${SHARDS:-2}"                # curate in N shards (here side by side; on a cluster one per machine)
WORKERS="${WORKERS:-0}"              # tiling processes per shard (0: in the shard's own process)
TEACHER="${TEACHER:-}"               # a segmentation checkpoint that pseudo-labels every chip; empty: none
KEEP_FRACTION="${KEEP_FRACTION:-0.8}"  # with a teacher: keep this most confident share of the chips
LABELED="${LABELED:-}"               # labeled data for pretrain: a dataset YAML, or a benchmark name (isaid)
DATA_ROOT="${DATA_ROOT:-data}"       # with a benchmark name: the folder holding one folder per dataset
CROP="${CROP:-64}"                   # pre-training crop in px
PRETRAIN_ITERATIONS="${PRETRAIN_ITERATIONS:-20}"  # optimiser steps of the tiny pre-training
PRETRAIN="${PRETRAIN:-1}"            # 0: write pretrain.yaml but stop after the corpus
DEVICE="${DEVICE:-auto}"

s5() { "$PYTHON" -m s5cli "$@"; }    # the `s5` command of that Python
mkdir -p "$WORK"
CORPUS="$WORK/corpus"

# 1. Inputs: a synthetic world when no scenes are given (its labelled scenes feed pretrain's labeled stream).
if [[ -z "$SCENES" ]]; then
  echo "== generating a synthetic world in $WORK/world"
  "$PYTHON" -c 'import sys; from pathlib import Path; from s5cli.demo.world import build_world
build_world(Path(sys.argv[1]), n_unlabeled=int(sys.argv[2]))' "$WORK/world" "$N_SCENES"
  SCENES="$WORK/world/unlabeled"
  LABELED="${LABELED:-$WORK/world/landcover.yaml}"
  cat > "$WORK/world/landcover.yaml" <<EOF
name: landcover
task: segmentation
classes: [background, building, road, tree, water]
scenes:
  - {path: scene_train.tif, split: train}
  - {path: scene_val.tif, split: val}
labels: labels.gpkg
layer: landcover
class_column: class_name
background: background
tile_size: $CROP
EOF
fi

# 2. Curate. Every rule and threshold is recorded in curate.json and the manifest's metadata.
CURATE_ARGS=(--chip-size "$CHIP" --workers "$WORKERS" --device "$DEVICE")
if [[ -n "$TEACHER" ]]; then CURATE_ARGS+=(--teacher "$TEACHER" --keep-fraction "$KEEP_FRACTION"); fi
if (( SHARDS == 1 )); then
  s5 curate $SCENES -o "$CORPUS" "${CURATE_ARGS[@]}" --overwrite
else
  # Shards join one corpus folder; a folder left by an earlier run of this script is cleared first.
  if [[ -f "$CORPUS/curate.json" ]]; then rm -rf "$CORPUS"; fi
  pids=()
  for (( i = 0; i < SHARDS; i++ )); do
    s5 curate $SCENES -o "$CORPUS" "${CURATE_ARGS[@]}" --shard "$i/$SHARDS" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # a failed shard stops the script here (set -e)
  # The last shard to finish has merged; merge by hand only if none could (see the header).
  if [[ ! -f "$CORPUS/manifest.parquet" ]]; then s5 curate --merge "$CORPUS"; fi
fi

# 3. Report: counts per rule, and plots beside the manifest (entropy and classes need a teacher).
s5 curate --report "$CORPUS" --overwrite

# 4. Pre-train on it. This is the YAML to adapt: the manifest is the unlabeled stream, a labelled
#    segmentation dataset (a benchmark such as isaid under a data root, or your own dataset YAML) the other.
if [[ "$LABELED" == *.yaml || "$LABELED" == *.yml ]]; then
  LABELED_YAML="  dataset: custom                    # your own data, described by a dataset YAML
  root: $(realpath "$LABELED")"
elif [[ -n "$LABELED" ]]; then
  LABELED_YAML="  dataset: $LABELED
  data_root: $(realpath -m "$DATA_ROOT")"
else
  LABELED_YAML="  dataset: isaid                     # EDIT: the labeled dataset (S4P: iSAID)
  data_root: /data                   # EDIT: the folder holding isaid/"
  echo "== no LABELED dataset: writing $WORK/pretrain.yaml with placeholders to edit, not pre-training"
  PRETRAIN=0
fi
cat > "$WORK/pretrain.yaml" <<EOF
# s5 pretrain --config $WORK/pretrain.yaml   (start from configs/pretrain/vit-b.yaml for the real recipe)
output: $(realpath -m "$WORK/runs/pretrain")
device: $DEVICE
labeled:
$LABELED_YAML
  split: train
  val_split: val
unlabeled:
  manifest: $(realpath "$CORPUS")/manifest.parquet   # the kept chips of the curated corpus
crop_size: $CROP
workers: 0
model:
  preset: vit-nano                   # vit-b / vit-l / vit-h for real runs
  drop_path: 0.0
  decoder_channels: 32
  grad_checkpointing: false
iterations: $PRETRAIN_ITERATIONS
global_batch_size: 4                 # labeled images per step over all GPUs (and as many unlabeled)
optim: {lr: 1.0e-3, weight_decay: 0.01}
amp: "off"
log_every: 5
eval_every: 0                        # validate once, at the end
eval_max_images: 8
checkpoint_every: 0
EOF
echo "== wrote $WORK/pretrain.yaml"
if (( PRETRAIN )); then
  s5 pretrain --config "$WORK/pretrain.yaml" --overwrite
  echo "== done: corpus $CORPUS/manifest.parquet, S4P checkpoint $WORK/runs/pretrain/checkpoint.pt"
else
  echo "== done: corpus $CORPUS/manifest.parquet; pre-train with: s5 pretrain --config $WORK/pretrain.yaml"
fi
