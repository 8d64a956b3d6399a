"""The task-2 comparison table from tuned grids on generated data.

For each tuner config given: every experiment's validation AUC (its result line), its test AUC
(prediction.py's zip scored against the generator's ground truth), its parameter count; then,
per model block (the tuner config's base_expid), the mean and spread over the
training seeds and the fraction of the gap from the baseline DIN to the best achievable AUC that it
closes. Run from the folder the tuners ran in (result lines and checkpoints are there).

Usage:
  python bench/task2_table.py --data data/small \\
      --baseline baseline_features_tuner_config:DIN_default \\
      config/compare/baseline_features_tuner_config.yaml \\
      config/compare/task2_features_tuner_config.yaml config/compare/ablation_tuner_config.yaml
"""
import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from src.cli import run_main  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.experiment import build_model  # noqa: E402
from src.predict import current_fingerprints, predict_test  # noqa: E402
from src.params import load_params, read_yaml  # noqa: E402
from src.submission import score_submission  # noqa: E402
from src.tuning.grid import EXPID_TAIL, config_dir_of  # noqa: E402
from src.runs.results import latest_results, results_path  # noqa: E402
from src.data.vocab import resolve_vocab_sizes  # noqa: E402


def experiments(tuner_yaml, truth, out):
    config_dir = config_dir_of(tuner_yaml)
    # each experiment's model block: the tuner config's base_expid when it names one block
    # (its expids then start with the model class and dataset_id instead), else the expid
    # without its grid number and hash (DIN_default_cpu_003_6f764ca6 -> DIN_default_cpu)
    tuner = read_yaml(tuner_yaml)
    base = tuner.get("base_expid")
    single_block = base if isinstance(base, str) else None
    # grid keys other than the seed split a block into one table row per value
    varied = [key for key, values in (tuner.get("tuner_space") or {}).items()
              if key != "seed" and isinstance(values, list) and len(values) > 1]
    fingerprints = current_fingerprints(config_dir)
    lines = latest_results(results_path(config_dir), fingerprints)
    rows = []
    for expid in fingerprints:
        if expid not in lines:
            print(f"{expid}: no result line yet, left out", file=sys.stderr)
            continue
        scored = score_experiment(config_dir, expid, truth, out)
        params = scored["params"]
        block = ", ".join([single_block or EXPID_TAIL.sub("", expid)]
                          + [f"{key} {params[key]:g}" if isinstance(params[key], float)
                             else f"{key} {params[key]}" for key in varied])
        rows.append({"config": Path(tuner_yaml).stem, "expid": expid, "block": block,
                     "seed": params["seed"], "valid_auc": lines[expid]["val"]["AUC"],
                     "test_auc": scored["test_auc"], "parameters": scored["parameters"]})
    return rows


def score_experiment(config_dir, expid, truth, out):
    """One trained experiment's test scores (prediction.py's zip, written into out), their
    AUC against the ground-truth parquet, its parameter count and params."""
    params = resolve_vocab_sizes(load_params(config_dir, expid))
    result = predict_test(config_dir, [expid], out_dir=out)
    model = build_model(params)
    return {"test_auc": score_submission(result["zip"], truth)["Task2"],
            "scores": result["scores"], "params": params,
            "parameters": sum(p.numel() for p in model.parameters())}


def summarise(rows, baseline, best, baseline_means=None):
    blocks = {}
    for row in rows:
        blocks.setdefault((row["config"], row["block"]), []).append(row)
    if baseline_means:
        base_valid, base_test = baseline_means
    else:
        base_valid, base_test = baseline_aucs(blocks, baseline)
    return summarise_blocks(blocks, base_valid, base_test, best)


def baseline_aucs(blocks, baseline):
    """Mean validation and test AUC of the baseline block's runs."""
    # baseline: BLOCK, or CONFIG:BLOCK where several configs have the block
    want_config, _, want_block = baseline.rpartition(":")
    found = {config for (config, block) in blocks if block == want_block
             and want_config in ("", config)}
    if len(found) != 1:
        raise UserError(f"baseline {baseline}: " + (
            f"in several configs ({', '.join(sorted(found))}); name one as CONFIG:BLOCK, e.g. "
            f"{sorted(found)[0]}:{want_block}" if found else "no runs of that block"))
    base = blocks[(found.pop(), want_block)]
    return np.mean([r["valid_auc"] for r in base]), np.mean([r["test_auc"] for r in base])


def summarise_blocks(blocks, base_valid, base_test, best):
    table = []
    for (config, block), rs in blocks.items():
        valid = np.array([r["valid_auc"] for r in rs])
        test = np.array([r["test_auc"] for r in rs])
        table.append({"config": config, "block": block, "seeds": len(rs),
                      "valid_mean": valid.mean(), "valid_spread": np.ptp(valid),
                      "test_mean": test.mean(), "test_spread": np.ptp(test),
                      "gap_closed_valid": (valid.mean() - base_valid) / (best["valid"] - base_valid),
                      "gap_closed_test": (test.mean() - base_test) / (best["test"] - base_test),
                      "parameters": rs[0]["parameters"]})
    return sorted(table, key=lambda r: -r["valid_mean"])


def markdown(table, best, baseline):
    lines = [f"best achievable AUC: valid {best['valid']:.4f}, test {best['test']:.4f}; gap "
             f"closed = (model - {baseline}) / (best - {baseline}), on the means over seeds",
             "",
             "| features | model block | seeds | valid AUC | spread | test AUC | spread | "
             "gap closed (valid) | gap closed (test) | parameters |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['config'].replace('_tuner_config', '')} | {r['block']} | {r['seeds']} "
                     f"| {r['valid_mean']:.4f} | {r['valid_spread']:.4f} | {r['test_mean']:.4f} | "
                     f"{r['test_spread']:.4f} | {100 * r['gap_closed_valid']:.0f}% | "
                     f"{100 * r['gap_closed_test']:.0f}% | {r['parameters']:,} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="tuner config yamls that were tuned")
    parser.add_argument("--data", required=True, help="the generated data folder")
    parser.add_argument("--baseline", default="DIN_default",
                        help="model block of the baseline DIN (CONFIG:BLOCK where several configs "
                             "have it, CONFIG the tuner config's file stem)")
    parser.add_argument("--baseline-means", type=float, nargs=2, metavar=("VALID", "TEST"),
                        help="the baseline's mean validation and test AUC from an earlier "
                             "table, when its runs are not among these configs")
    parser.add_argument("--out", help="also write the rows and table as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    summary = json.loads((Path(args.data) / "ground_truth" / "summary.json").read_text())
    best = summary["best_auc"]
    truth = Path(args.data) / "ground_truth" / "test_truth.parquet"
    with tempfile.TemporaryDirectory() as out:
        rows = [row for config in args.configs for row in experiments(config, truth, out)]
    for row in rows:
        print(f"{row['expid']}: seed {row['seed']}, valid {row['valid_auc']:.4f}, "
              f"test {row['test_auc']:.4f}", file=sys.stderr)
    table = summarise(rows, args.baseline, best, args.baseline_means)
    print(markdown(table, best, args.baseline))
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "table": table}, indent=2,
                                             default=float))


if __name__ == "__main__":
    run_main(main)
