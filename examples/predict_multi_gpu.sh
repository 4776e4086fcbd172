#!/usr/bin/env bash
# Predict a folder of scenes on every GPU of a machine: one process per GPU under torchrun, the scenes
# dealt out round-robin over the processes (scene k goes to rank k mod NPROC), each writing its own class
# COGs; rank 0 then merges every rank's polygons into one GeoPackage (a layer per scene).
# With no GPU it runs one CPU process (NPROC=2 on a CPU also works: torchrun with the gloo backend).
#
# With no settings it generates 4 synthetic 512 px scenes and uses the model that
# examples/finetune_own_data.sh exported (run that first, or set CKPT).
# Time: about 15 seconds on 2 CPU cores (4 scenes of 512 px, tiny model).
#
#   SCENES=/data/tiles CKPT=landcover.pt OUT=maps bash examples/predict_multi_gpu.sh
#   NPROC=2 bash examples/predict_multi_gpu.sh          # two processes, on GPUs or CPU
#
# Writes $OUT/polygons.gpkg (one layer per scene), $OUT/classes/<scene>.tif (class COGs on each scene's
# grid and CRS) and $OUT/previews/<scene>.png; existing outputs are replaced.
#
# Several machines: the same command on each, with torchrun's rendezvous options, and OUT on a file system
# every machine sees (rank 0 waits for the other ranks' marker files there):
#   torchrun --nnodes 2 --node-rank R --master-addr HOST0 --master-port 29500 --nproc-per-node 8 \
#     -m s5cli predict $SCENES -o $OUT/polygons.gpkg --raster $OUT/classes/ --checkpoint $CKPT
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$ROOT/.venv/bin/python" ]]; then DEFAULT_PYTHON="$ROOT/.venv/bin/python"; else DEFAULT_PYTHON=python3; fi
PYTHON="${PYTHON:-$DEFAULT_PYTHON}"  # the Python that has s5cli (and torch) installed

SCENES="${SCENES:-}"                 # a folder of GeoTIFFs (or a glob, e.g. '/data/*.tif'); empty: generate
N_SCENES="${N_SCENES:-4}"            # how many scenes to generate when SCENES is empty
CKPT="${CKPT:-s5-own-data/landcover.pt}"  # a checkpoint from `s5 export` (or any single-head checkpoint)
DATASET="${DATASET:-}"               # the head to use, for a checkpoint with several
OUT="${OUT:-s5-predict}"             # output folder
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPUS="$(nvidia-smi -L | grep -c '^GPU')"
else
  GPUS=0
fi
NPROC="${NPROC:-$(( GPUS > 0 ? GPUS : 1 ))}"   # processes: one per GPU, or 1 on a CPU
if (( GPUS > 0 )); then DEVICE="${DEVICE:-cuda}"; BATCH="${BATCH:-16}"; else DEVICE="${DEVICE:-cpu}"; BATCH="${BATCH:-4}"; fi
# Threads per process on a CPU: share the cores instead of each process taking all of them.
CORES="$(nproc 2>/dev/null || echo 1)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( CORES / NPROC > 0 ? CORES / NPROC : 1 ))}"

if (( GPUS > 0 && NPROC > GPUS )) && [[ "$DEVICE" == cuda ]]; then
  echo "error: NPROC=$NPROC but this machine has $GPUS GPU(s): one process per GPU" >&2
  exit 2
fi
if [[ ! -f "$CKPT" ]]; then
  echo "error: no checkpoint $CKPT: run examples/finetune_own_data.sh first, or set CKPT=model.pt" >&2
  exit 2
fi

if [[ -z "$SCENES" ]]; then
  SCENES="$OUT/scenes"
  echo "== generating $N_SCENES synthetic scenes in $SCENES"
  "$PYTHON" -c 'import sys; from pathlib import Path; from s5cli.demo.world import make_scene
folder = Path(sys.argv[1]); folder.mkdir(parents=True, exist_ok=True)
for k in range(int(sys.argv[2])): make_scene(folder / f"scene_{k + 1:02d}.tif", 512, 0.5, seed=10 + k)' \
    "$SCENES" "$N_SCENES"
fi

# With several scenes --raster and --preview name folders (one <scene>.tif / <scene>.png each).
mkdir -p "$OUT/classes" "$OUT/previews"
ARGS=("$SCENES" --checkpoint "$CKPT" -o "$OUT/polygons.gpkg" --raster "$OUT/classes/"
      --preview "$OUT/previews/" --device "$DEVICE" --batch-size "$BATCH" --overwrite)
if [[ -n "$DATASET" ]]; then ARGS+=(--dataset "$DATASET"); fi

echo "== predicting with $NPROC process(es) on $DEVICE ($OMP_NUM_THREADS CPU thread(s) each)"
start=$SECONDS
if (( NPROC > 1 )); then
  # `python -m torch.distributed.run` is `torchrun`, taken from the same Python as s5cli.
  "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" -m s5cli predict "${ARGS[@]}"
else
  "$PYTHON" -m s5cli predict "${ARGS[@]}"
fi
echo "== done in $(( SECONDS - start )) s: $OUT/polygons.gpkg, $OUT/classes/, $OUT/previews/"
