#!/usr/bin/env bash
# Task-1 item-embedding comparison on medium generated data, sized for a 2-core CPU: the runs
# behind docs/item_embedding_results.md.
# Usage: [MODEL=baseline|demo] bash bench/item_embedding_medium.sh [DATA_DIR] [OUT_DIR]
#   (from the repository root; absolute paths: the evaluation runs inside OUT_DIR/run_MODEL,
#   where the tuner writes its results)
# MODEL=baseline (default): the baseline's DIN, 1 epoch on 600k rows (about 80 minutes on 2
# cores for the five text+image files, 25 more with titles).
# MODEL=demo: the demo config's small DIN, 2 epochs (about 45 minutes), not comparable.
# With the optional title encoder installed (requirements-text.txt), titles are encoded and
# pca_concat and contrastive are also built with them as a third modality.
set -euo pipefail
DATA=${1:-/tmp/gen_medium}
OUT=${2:-/tmp/emb_med}
MODEL=${MODEL:-baseline}
PY=${PYTHON:-python}
# One torch thread per process: on a shared 2-core machine two spinning threads per run
# were ~3x slower than one (see the results doc).
export OMP_NUM_THREADS=1
case "$MODEL" in
  baseline) DIN_ARGS=(--model baseline --epochs 1 --train-rows 600000 --grid learning_rate=1e-3
                      --grid batch_size=4096 --grid net_dropout=0.1) ;;
  demo) DIN_ARGS=(--model demo --epochs 2 --train-rows 600000 --grid learning_rate=3e-3
                  --grid batch_size=4096) ;;
  *) echo "MODEL must be baseline or demo, not '$MODEL'" >&2; exit 2 ;;
esac

build() {  # build METHOD NAME [more build options]: skipped when OUT/NAME.parquet exists
  local method=$1 name=$2; shift 2
  [ -f "$OUT/$name.parquet" ] || $PY -m src.item_embedding build --method "$method" \
    --data-dir "$DATA" --out "$OUT/$name.parquet" "$@"
}

[ -f "$DATA/item_seq.parquet" ] || $PY -m src.datagen --scale medium --out "$DATA" --quiet
for method in pca_concat pca_per_modality item_emb_v1 random; do
  build $method $method --quiet
done
build contrastive contrastive --epochs 2 --seed 0
FILES=(pca_concat contrastive item_emb_v1 pca_per_modality random)
if $PY -c "from src.item_embedding.titles import encoder_installed as ok; exit(not ok())"; then
  [ -f "$OUT/titles.parquet" ] || $PY -m src.item_embedding encode-titles --data-dir "$DATA" \
    --out "$OUT/titles.parquet"
  build pca_concat pca_concat_titles --title-emb "$OUT/titles.parquet" --quiet
  build contrastive contrastive_titles --title-emb "$OUT/titles.parquet" --epochs 2 --seed 0
  FILES+=(pca_concat_titles contrastive_titles)
fi

PATHS=()
for name in "${FILES[@]}"; do PATHS+=("$OUT/$name.parquet"); done
mkdir -p "$OUT/run_$MODEL"
cd "$OUT/run_$MODEL"
PYTHONPATH="$OLDPWD${PYTHONPATH:+:$PYTHONPATH}" $PY -m src.item_embedding evaluate \
  "${PATHS[@]}" --data-dir "$DATA" --work-dir "$OUT/work_$MODEL" \
  "${DIN_ARGS[@]}" --seeds 20242025 1 --gpu -1 -1
