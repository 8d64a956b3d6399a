"""Training and scoring speed of the model blocks of a model config, on generated data.

For each block: parameters, training samples/s (shuffled batches from MMCTRDataLoader, the
model's full train_step: forward, loss, backward, optimiser step) and scoring samples/s
(eval mode, no gradients, as predict runs). Blocks of the DIN are
also measured with split_attention=False (the attention MLP on the concatenation
[t, h, t - h, t * h], as before the split), so the split's gain is read side by side.
Variants are measured in turn, `--rounds` times each, interleaved so that a busy spell on a
shared machine hits all of them; the best round counts.

The dataset block is the baseline's (config/DIN_microlens_mmctr_tuner_config_01.yaml) pointed at
--data, with item_id and item_tags vocabularies taken from the data; --dataset-config takes
the single dataset block of another tuner config instead (e.g. one declaring user_id).

Usage:
  python -m src.datagen --scale small --out /tmp/gen_small
  python bench/bench_models.py --data /tmp/gen_small --threads 1 --batch-size 1024 \
      --steps 20 --expids DIN_default DIN_default_cpu QIN_cpu
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fuxictr.utils import load_model_config  # noqa: E402

from src.cli import run_main  # noqa: E402
from src.data.features import build_feature_map  # noqa: E402
from src.data.item_table import ItemTable  # noqa: E402
from src.data.loader import MMCTRDataLoader  # noqa: E402
from src.data.vocab import resolve_vocab_sizes  # noqa: E402
from src.errors import ConfigError  # noqa: E402
from src.experiment import build_model  # noqa: E402

# the same timing as the data-path benchmark: a short split starts over, CUDA is synchronised
sys.path.insert(0, str(REPO / "bench"))
from bench_data_path import timed_batches, train_rate  # noqa: E402

FULL_TRAIN_ROWS = 3_600_000  # the real train split: seconds per epoch are derived from it

BASELINE_DATASET = REPO / "config" / "DIN_microlens_mmctr_tuner_config_01.yaml"


def dataset_block(data_dir, dataset_config=None):
    """The dataset block of a tuner config with its paths pointed at data_dir."""
    with open(dataset_config or BASELINE_DATASET) as f:
        blocks = yaml.safe_load(f)["dataset_config"]
    if len(blocks) != 1:
        raise ConfigError(f"{dataset_config}: expected one dataset block, found "
                          f"{', '.join(blocks)}")
    dataset = dict(next(iter(blocks.values())))
    split_dir = Path(data_dir) / "MicroLens_1M_x1"
    item_info = split_dir / "item_info.parquet"
    dataset.update(item_info=str(item_info),
                   **{f"{s}_data": str(split_dir / f"{s}.parquet")
                      for s in ("train", "valid", "test")})
    # item files of the release (item_emb.parquet) sit beside the split folder
    dataset["feature_cols"] = [dict(c, item_file=str(Path(data_dir) / Path(c["item_file"]).name))
                               if "item_file" in c else c for c in dataset["feature_cols"]]
    if dataset_config is None:  # the baseline's vocabularies are the real data's: use the data's
        tags = pq.read_table(item_info, columns=["item_tags"]).column(0).combine_chunks()
        vocab = {"item_id": pq.ParquetFile(item_info).metadata.num_rows,
                 "item_tags": max(int(tags.flatten().to_numpy().max()) + 1, 2)}
        dataset["feature_cols"] = [dict(c, vocab_size=vocab[c["name"]]) if c["name"] in vocab
                                   else c for c in dataset["feature_cols"]]
    return dataset


def variants(config_dir, expids):
    """(label, expid, overrides) for each block; DIN blocks twice, split and concatenated."""
    for expid in expids:
        model = load_model_config(str(config_dir), expid)["model"]
        yield expid, expid, {}
        if model == "DIN":
            yield f"{expid} [concat]", expid, {"split_attention": False}


def score_rate(model, batches, steps, device):
    model.eval()
    with torch.no_grad():
        return timed_batches(batches, steps, model.scores, device)


def measure(args):
    dataset = dataset_block(args.data, args.dataset_config)
    runs = list(variants(args.config_dir, args.expids))
    models, loaders, loader_of, table = {}, {}, {}, None
    for label, expid, overrides in runs:
        params = load_model_config(str(args.config_dir), expid)
        params.update(dataset)
        params.update(dataset_id="bench", gpu=0 if args.device == "cuda" else -1, verbose=0,
                      model_root="/tmp/bench_models_ckpt", **overrides)
        params = resolve_vocab_sizes(params)
        if args.batch_size:
            params["batch_size"] = args.batch_size
        feature_map = build_feature_map(params)
        table = table or ItemTable.from_parquet(params["item_info"], feature_map)
        torch.manual_seed(0)
        models[label] = build_model(params, feature_map, item_table=table)
        batch_size = int(params["batch_size"])
        if batch_size not in loaders:
            loaders[batch_size] = MMCTRDataLoader(feature_map, params["train_data"],
                                                  split="train", batch_size=batch_size,
                                                  shuffle=True, device=args.device)
        loader_of[label] = loaders[batch_size]
    rates = {(label, kind): [] for label, _, _ in runs for kind in ("train", "score")}
    peak_gb = {}
    for round_index in range(args.rounds):
        for label, _, _ in runs:
            np.random.seed(round_index)
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            rates[label, "train"].append(train_rate(models[label], loader_of[label], args.steps,
                                                    args.device))
            if args.device == "cuda":
                peak_gb[label] = max(peak_gb.get(label, 0.0),
                                     torch.cuda.max_memory_allocated() / 1e9)
            rates[label, "score"].append(score_rate(models[label], loader_of[label], args.steps,
                                                    args.device))
            print(f"round {round_index + 1}: {label}: train {rates[label, 'train'][-1]:,.0f}, "
                  f"score {rates[label, 'score'][-1]:,.0f} samples/s", file=sys.stderr, flush=True)
    return {label: {"model": type(models[label]).__name__,
                    "parameters": sum(p.numel() for p in models[label].parameters()),
                    "batch_size": loader_of[label].batch_size,
                    "train_samples_per_s": max(rates[label, "train"]),
                    "full_epoch_seconds": FULL_TRAIN_ROWS / max(rates[label, "train"]),
                    "peak_gpu_gb": peak_gb.get(label),
                    "score_samples_per_s": max(rates[label, "score"]),
                    "train_rounds": rates[label, "train"], "score_rounds": rates[label, "score"]}
            for label, _, _ in runs}


def table(results, args):
    device = (torch.cuda.get_device_name(0) if args.device == "cuda"
              else f"CPU, threads {torch.get_num_threads()}")
    lines = [(f"data {args.data}, {device}, {args.steps} steps, best of {args.rounds} rounds"),
             "| block | model | parameters | batch | training samples/s | scoring samples/s | "
             "s per 3.6M-row epoch | peak GPU GB |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        peak = f"{r['peak_gpu_gb']:.2f}" if r["peak_gpu_gb"] is not None else "-"
        lines.append(f"| {label} | {r['model']} | {r['parameters']:,} | {r['batch_size']} | "
                     f"{r['train_samples_per_s']:,.0f} | {r['score_samples_per_s']:,.0f} | "
                     f"{r['full_epoch_seconds']:,.0f} | {peak} |")
    for label, r in results.items():
        if label.endswith(" [concat]"):
            split = results[label[:-len(" [concat]")]]
            lines.append(f"split attention vs concatenation, {label[:-9]}: training "
                         f"{split['train_samples_per_s'] / r['train_samples_per_s']:.2f}x, "
                         f"scoring {split['score_samples_per_s'] / r['score_samples_per_s']:.2f}x")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True,
                        help="generated data folder (python -m src.datagen)")
    parser.add_argument("--config-dir", default=str(REPO / "config" / "task2_config"),
                        help="folder of the model_config.yaml to read the blocks from")
    parser.add_argument("--expids", nargs="+", help="blocks to measure (default: all but Base)")
    parser.add_argument("--dataset-config", help="tuner config whose one dataset block to use")
    parser.add_argument("--batch-size", type=int, help="override every block's batch_size")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per block")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: model and split on GPU 0, peak GPU memory reported")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.expids:
        with open(Path(args.config_dir) / "model_config.yaml") as f:
            args.expids = [name for name in yaml.safe_load(f) if name != "Base"]
    results = measure(args)
    print(table(results, args))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"results": results, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    run_main(main)
