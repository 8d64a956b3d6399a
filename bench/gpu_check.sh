#!/usr/bin/env bash
# The whole GPU check in one go (under 8 minutes on one H200): generate full-scale data, run the
# speed benchmark on the GPU, then the bf16 / torch.compile AUC check; figures are printed and
# written under OUT_DIR.
# Usage: bash bench/gpu_check.sh [OUT_DIR]        (DEVICE=cpu SCALE=tiny to exercise it on a CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results}
device=${DEVICE:-cuda}
scale=${SCALE:-full}
data=${DATA_DIR:-/tmp/mmctr_gen_$scale}
extra=${BENCH_ARGS:-}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
if [ ! -f "$data/ground_truth/summary.json" ]; then
    time python -m src.datagen --scale "$scale" --out "$data" --quiet
fi
# shellcheck disable=SC2086
python bench/bench_data_path.py --data "$data" --device "$device" \
    --out "$out/bench_${device}_${scale}.json" $extra | tee "$out/bench_${device}_${scale}.md"
python bench/check_options.py --device "$device" | tee "$out/options_${device}.txt"
