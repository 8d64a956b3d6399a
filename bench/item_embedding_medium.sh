#!/usr/bin/env bash
# Task-1 item-embedding comparison on medium generated data, sized for a 2-core CPU
# (about 45 minutes): the run behind docs/item_embedding_results.md.
# Usage: bash bench/item_embedding_medium.sh [DATA_DIR] [OUT_DIR]   (from the repository root;
# absolute paths: the evaluation runs inside OUT_DIR/run, where the tuner writes its results)
set -euo pipefail
DATA=${1:-/tmp/gen_medium}
OUT=${2:-/tmp/emb_med}
PY=${PYTHON:-python}
# One torch thread per process: on a shared 2-core machine two spinning threads per run
# were ~3x slower than one (see the results doc).
export OMP_NUM_THREADS=1

[ -f "$DATA/item_seq.parquet" ] || $PY -m src.datagen --scale medium --out "$DATA" --quiet
for method in pca_concat pca_per_modality item_emb_v1 random; do
  $PY -m src.item_embedding build --method $method --data-dir "$DATA" --out "$OUT/$method.parquet" --quiet
done
$PY -m src.item_embedding build --method contrastive --data-dir "$DATA" --out "$OUT/contrastive.parquet" --epochs 2 --seed 0

# The tuner writes result lines and checkpoints into the current folder.
mkdir -p "$OUT/run"
cd "$OUT/run"
PYTHONPATH="$OLDPWD${PYTHONPATH:+:$PYTHONPATH}" $PY -m src.item_embedding evaluate \
  "$OUT/pca_concat.parquet" "$OUT/contrastive.parquet" "$OUT/item_emb_v1.parquet" \
  "$OUT/pca_per_modality.parquet" "$OUT/random.parquet" \
  --data-dir "$DATA" --work-dir "$OUT/work" \
  --model demo --epochs 2 --train-rows 600000 --grid learning_rate=3e-3 --grid batch_size=4096 \
  --seeds 20242025 1 --gpu -1 -1
