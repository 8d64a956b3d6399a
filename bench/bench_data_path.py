"""Data path and training speed: our loader and DIN against the baseline's per-batch-pandas design.

Prints, for one generated dataset, each figure for both designs and their ratio:
  load seconds and peak RSS after loading the train split plus item_info;
  data-path samples/s (shuffled batches, everything from the loaded split to the model's
    input tensors on the device, item-side lookups included);
  DIN training samples/s with the demo config and with the baseline's full model config;
  test-split scoring time with the demo model (ours only: the baseline's path takes far longer).
Each design runs in its own process, so peak RSS figures do not mix.

Usage:
  python -m src.datagen --scale full --out /tmp/gen_full        # once, about a minute
  python bench/bench_data_path.py --data /tmp/gen_full [--device cuda] [--out results.json]
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from src.cli import run_main  # noqa: E402
from src.data.loader import MMCTRDataLoader  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.experiment import build_model  # noqa: E402
from src.data.features import build_feature_map  # noqa: E402
from src.data.item_table import ItemTable  # noqa: E402
from src.models.baseline_design import BaselineDIN, baseline_loader, to_device  # noqa: E402
from src.training.evaluation import predict  # noqa: E402
from src.training.options import TrainingOptions  # noqa: E402
from src.training.trainer import Trainer  # noqa: E402

# The demo config's smaller DIN; "baseline" is config/din_config DIN_default unchanged.
DEMO_MODEL = {"embedding_dim": 16, "dnn_hidden_units": [64, 32], "attention_hidden_units": [32]}


def bench_params(data_dir, model, batch_size, device):
    """Baseline model config + the baseline's dataset config pointed at data_dir (vocab from
    data)."""
    import pyarrow.parquet as pq
    with open(REPO / "config" / "din_config" / "model_config.yaml") as f:
        model_config = yaml.safe_load(f)
    with open(REPO / "config" / "DIN_microlens_mmctr_tuner_config_01.yaml") as f:
        dataset = yaml.safe_load(f)["dataset_config"]["MicroLens_1M_x1"]
    split_dir = Path(data_dir) / "MicroLens_1M_x1"
    item_info = split_dir / "item_info.parquet"
    tags = pq.read_table(item_info, columns=["item_tags"]).column(0).combine_chunks()
    vocab = {"item_id": pq.ParquetFile(item_info).metadata.num_rows,
             "item_tags": max(int(tags.flatten().to_numpy().max()) + 1, 2)}
    dataset["feature_cols"] = [dict(c, vocab_size=vocab[c["name"]]) if c["name"] in vocab else c
                               for c in dataset["feature_cols"]]
    params = dict(model_config["Base"], **model_config["DIN_default"], **dataset)
    params.update(dataset_id="bench", model_id=f"bench_{model}", batch_size=batch_size,
                  gpu=0 if device == "cuda" else -1, verbose=0, model_root="/tmp/bench_ckpt",
                  item_info=str(item_info),
                  **{f"{s}_data": str(split_dir / f"{s}.parquet") for s in ("train", "test")})
    if model == "demo":
        params.update(DEMO_MODEL)
    return params


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # ru_maxrss is in KB


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed_batches(batches, n, work, device):
    """samples/s of work(batch) over n batches, after one warm-up batch; a split shorter than
    n + 1 batches (tiny data) starts over, as the next epoch would."""
    iterator = iter(batches)
    work(next(iterator))
    sync(device)
    start, samples = time.perf_counter(), 0
    for _ in range(n):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(batches)
            batch = next(iterator)
        work(batch)
        samples += len(batch["label"]) if isinstance(batch, dict) else len(batch[2])
    sync(device)
    return samples / (time.perf_counter() - start)


def train_rate(model, batches, n, device):
    """Training samples/s of the model's train step (a Trainer with the options it was built
    with: forward, loss, backward, optimiser step)."""
    model.train()
    trainer = Trainer(model, TrainingOptions.from_params(model.config))
    return timed_batches(batches, n, trainer.train_step, device)


def measure_ours(args):
    params = bench_params(args.data, "demo", args.batch_size, args.device)
    feature_map = build_feature_map(params)
    device = torch.device(args.device)
    start = time.perf_counter()
    train = MMCTRDataLoader(feature_map, params["train_data"], split="train",
                            batch_size=args.batch_size, shuffle=True, device=device)
    table = ItemTable.from_parquet(params["item_info"], feature_map).to(device)
    result = {"load_seconds": time.perf_counter() - start, "load_peak_rss_gb": peak_rss_gb()}

    demo = build_model(params, feature_map, item_table=table)

    # the model's inputs: its forward runs prepare_items before the first layer
    result["path_samples_per_s"] = timed_batches(train, args.batches, demo.prepare_items,
                                                 args.device)
    result["train_demo_samples_per_s"] = train_rate(demo, train, args.train_batches, args.device)
    baseline_model = build_model(bench_params(args.data, "baseline", args.batch_size,
                                              args.device), item_table=table)
    result["train_baseline_samples_per_s"] = train_rate(baseline_model, train,
                                                        args.baseline_train_batches, args.device)
    start = time.perf_counter()
    test = MMCTRDataLoader(feature_map, params["test_data"], split="test",
                           batch_size=args.batch_size, device=device)
    scores = predict(demo, test)
    result.update(score_rows=len(scores), score_seconds=time.perf_counter() - start,
                  peak_rss_gb=peak_rss_gb())
    return result


def measure_baseline(args):
    params = bench_params(args.data, "demo", args.batch_size, args.device)
    feature_map = build_feature_map(params)
    start = time.perf_counter()
    train = baseline_loader(feature_map, params["train_data"], params["item_info"],
                            batch_size=args.batch_size, shuffle=True)
    result = {"load_seconds": time.perf_counter() - start, "load_peak_rss_gb": peak_rss_gb()}
    device = torch.device(args.device)
    result["path_samples_per_s"] = timed_batches(train, args.baseline_batches,
                                                 lambda b: to_device(b, device), args.device)
    table = ItemTable.from_parquet(params["item_info"], feature_map)
    demo = BaselineDIN(feature_map, item_table=table, **params)
    result["train_demo_samples_per_s"] = train_rate(demo, train, args.baseline_batches, args.device)
    baseline_params = bench_params(args.data, "baseline", args.batch_size, args.device)
    baseline_model = BaselineDIN(build_feature_map(baseline_params), item_table=table,
                                 **baseline_params)
    result["train_baseline_samples_per_s"] = train_rate(baseline_model, train,
                                                        args.baseline_train_batches, args.device)
    result["peak_rss_gb"] = peak_rss_gb()
    return result


ROWS = [("load seconds (train split + item_info)", "load_seconds", "lower"),
        ("peak RSS after load, GB", "load_peak_rss_gb", "lower"),
        ("data path, samples/s (batch, shuffled)", "path_samples_per_s", "higher"),
        ("training, demo DIN, samples/s", "train_demo_samples_per_s", "higher"),
        ("training, baseline DIN, samples/s", "train_baseline_samples_per_s", "higher")]


def table(ours, baseline, args):
    lines = [f"device {args.device}, batch {args.batch_size}, data {args.data}",
             "| figure | ours | baseline design | ours vs baseline |", "|---|---|---|---|"]
    for label, key, better in ROWS:
        a, b = ours[key], baseline[key]
        ratio = a / b if better == "higher" else b / a
        lines.append(f"| {label} | {a:,.2f} | {b:,.2f} | {ratio:,.1f}x |")
    lines.append(f"| test scoring, demo DIN: {ours['score_rows']:,} rows | "
                 f"{ours['score_seconds']:.1f} s | - | - |")
    lines.append(f"| peak RSS of the whole run, GB | {ours['peak_rss_gb']:.2f} | "
                 f"{baseline['peak_rss_gb']:.2f} | - |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="generated data folder")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--batches", type=int, default=50, help="timed batches, our path")
    parser.add_argument("--baseline-batches", type=int, default=3,
                        help="timed batches, baseline path")
    parser.add_argument("--train-batches", type=int, default=10,
                        help="timed training steps, our demo DIN")
    parser.add_argument("--baseline-train-batches", type=int, default=2,
                        help="timed training steps with the baseline's full DIN (slow on a CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--measure", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:  # child process: one design, one JSON line
        np.random.seed(0)
        torch.manual_seed(0)
        result = measure_ours(args) if args.measure == "ours" else measure_baseline(args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = {}
    for design in ("ours", "baseline"):
        cmd = [sys.executable, __file__, "--measure", design] + sys.argv[1:]
        print(f"measuring {design} ...", file=sys.stderr, flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise UserError(f"{design} failed:\n{done.stderr[-3000:]}")
        results[design] = json.loads(lines[-1][len("RESULT "):])
    print(table(results["ours"], results["baseline"], args))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(results, args=vars(args)), indent=2))


if __name__ == "__main__":
    run_main(main)
