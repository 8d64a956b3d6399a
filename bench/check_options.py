"""Checks of the GPU path that need a real run: do amp_bf16 and torch_compile leave validation
AUC alone, do bf16 scores stay distinct, and does deterministic: True repeat exactly?

One epoch of the demo DIN on tiny generated data per option and training seed; the spread
across seeds is the noise an option's effect is read against. `deterministic` runs fp32 twice
with deterministic algorithms and reports whether the two AUCs (and all scores) are equal.

Usage: python bench/check_options.py [--device cuda] [--seeds 0 1] [--data DIR]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# before CUDA starts: the cuBLAS workspace setting deterministic algorithms need
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fuxictr.pytorch.torch_utils import seed_everything  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_data_path import bench_params  # noqa: E402
from src.cli import run_main  # noqa: E402
from src.data.features import build_feature_map  # noqa: E402
from src.data.generator import generate  # noqa: E402
from src.experiment import build_model, make_loaders  # noqa: E402
from src.training.evaluation import predict  # noqa: E402
from src.training.options import RunContext, TrainingOptions  # noqa: E402
from src.training.trainer import Trainer  # noqa: E402
from src.tuning.keys import check_model_block  # noqa: E402
from src.tuning.values import check_grid_values  # noqa: E402

OPTIONS = {"fp32": {}, "amp_bf16": {"amp_bf16": True}, "torch_compile": {"torch_compile": True}}


def option_params(data_dir, device, seed, options, batch_size, learning_rate):
    """The demo DIN's params with options set."""
    params = bench_params(data_dir, "demo", batch_size, device)
    params.update(valid_data=str(Path(data_dir) / "MicroLens_1M_x1" / "valid.parquet"),
                  seed=seed, learning_rate=learning_rate, **options)
    return params


def check_option_params(data_dir, device, seeds, names, batch_size, learning_rate):
    """Every variant's keys and values through the schema (src/options.py) before the first
    epoch: a misspelt option would otherwise be swallowed by the model and measure nothing."""
    for name in names:
        params = option_params(data_dir, device, seeds[0], OPTIONS[name], batch_size,
                               learning_rate)
        check_model_block(params, f"bench/check_options.py, option set {name}")
        check_grid_values({name: params}, "bench/check_options.py")


def one_epoch(data_dir, device, seed, options, batch_size, learning_rate, deterministic=False):
    """(validation AUC, validation scores) after one epoch."""
    params = option_params(data_dir, device, seed, options, batch_size, learning_rate)
    torch.use_deterministic_algorithms(deterministic)
    seed_everything(seed)
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    train, valid = make_loaders(feature_map, params, "train", model)
    trainer = Trainer(model, TrainingOptions.from_params(dict(params, epochs=1)),
                      RunContext(model.checkpoint))
    trainer.fit(train, valid)
    scores = predict(model, valid, progress_desc=None)
    return trainer.evaluate(valid)["AUC"], scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="tiny generated data (generated into a temp dir if absent)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    args = parser.parse_args()
    data = args.data or tempfile.mkdtemp(prefix="tiny_")
    if not (Path(data) / "MicroLens_1M_x1" / "train.parquet").exists():
        generate(data, scale="tiny", seed=0, progress=False)
    check_option_params(data, args.device, args.seeds, args.options, args.batch_size,
                        args.learning_rate)
    aucs = {}
    for name in args.options:
        for seed in args.seeds:
            start = time.perf_counter()
            aucs[name, seed], scores = one_epoch(data, args.device, seed, OPTIONS[name],
                                                 args.batch_size, args.learning_rate)
            distinct = len(np.unique(scores)) / len(scores)
            print(f"{name:14s} seed {seed}: valid AUC {aucs[name, seed]:.4f}, distinct scores "
                  f"{100 * distinct:.1f}% ({time.perf_counter() - start:.0f} s)", flush=True)
    base = [aucs["fp32", s] for s in args.seeds]
    print(f"fp32 spread across seeds (noise): {max(base) - min(base):.4f}")
    for name in args.options:
        if name != "fp32":
            diffs = [aucs[name, s] - aucs["fp32", s] for s in args.seeds]
            print(f"{name}: AUC minus fp32 per seed {', '.join(f'{d:+.4f}' for d in diffs)}")
    runs = [one_epoch(data, args.device, args.seeds[0], {}, args.batch_size, args.learning_rate,
                      deterministic=True) for _ in range(2)]
    same = runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    print(f"deterministic: two fp32 runs, seed {args.seeds[0]}: AUC {runs[0][0]:.6f} and "
          f"{runs[1][0]:.6f}, every score equal: {same}")
    print(f"device {args.device}"
          f"{' (' + torch.cuda.get_device_name(0) + ')' if args.device == 'cuda' else ''}, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    run_main(main)
