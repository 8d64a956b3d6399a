#!/usr/bin/env bash
# The whole GPU check in one short script: what the CPU cannot show, on a real GPU.
#  1. full-scale generated data (3.6M train rows, the real sizes);
#  2. the data-path benchmark against the baseline's design (bench_data_path.py);
#  3. seconds per epoch and peak GPU memory of every real-size task-2 model (bench_models.py);
#  4. bf16 and torch.compile against fp32 (AUC, distinct scores), and a deterministic repeat
#     (check_options.py);
#  5. with two or more GPUs: two tuner runs on GPUs 0 and 1, each log naming its own GPU.
# Figures are printed and written under OUT_DIR.
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
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PY
if [ ! -f "$data/ground_truth/summary.json" ]; then
    time python -m src.datagen --scale "$scale" --out "$data" --quiet
fi
# shellcheck disable=SC2086
python bench/bench_data_path.py --data "$data" --device "$device" \
    --out "$out/bench_${device}_${scale}.json" $extra | tee "$out/bench_${device}_${scale}.md"
python bench/bench_models.py --data "$data" --device "$device" --steps 30 --rounds 1 \
    --dataset-config config/Task2_tuner_config.yaml \
    --expids DIN_default TransformerDCN_default QIN_default DINCrossAttention_default \
        DINInterest_default CosineInterest_default \
    --out "$out/models_${device}_${scale}.json" | tee "$out/models_${device}_${scale}.md"
python bench/check_options.py --device "$device" | tee "$out/options_${device}.txt"
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$device" = cuda ] && [ "$gpus" -ge 2 ]; then
    repo=$(pwd)
    work=$(mktemp -d)
    python -m src.datagen --scale tiny --out "$work/data" --quiet
    sed -e "s#./data/demo/#$work/data/#g" -e "s#./config/#$repo/config/#g" \
        config/DIN_demo_tuner_config.yaml > "$work/two_gpus.yaml"
    (cd "$work" && python "$repo/run_param_tuner.py" --config two_gpus.yaml --gpu 0 1 \
        > run.txt 2>&1) || true
    grep -h "CUDA_VISIBLE_DEVICES=" "$work"/checkpoints/*/*.log | tee "$out/two_gpus.txt"
fi
