"""Grids on Ray, measured: the full grid against ASHA, and what Ray adds to short runs.

1. full vs ASHA: one grid of demo-size DINs (8 points by default: 4 learning rates x 2
   dropouts; 8 epochs at most, one evaluation per epoch, early_stop_patience 3 as the baseline's)
   on a slice of generated data, on a local Ray instance: once without a scheduler, then with
   --scheduler asha at each --asha setting. For each: training steps of all runs together
   (from the runs' logs: the step of each run's last evaluation; runs evaluate a whole number
   of times per epoch, so a run ends at an evaluation), the best validation AUC and its
   expid, wall time.
2. overhead: a grid of short runs (1 epoch on a few thousand rows) with the slot tuner and
   with --ray local, the same number of runs at a time; seconds per run (the summary's
   column: start of a run to its end, as each executor measures it) and wall time of the
   whole command (Ray's start-up included).
Each part runs in its own folder under --out; the tuner's own output goes to a log there.

Usage:
  python -m src.datagen --scale tiny --out /tmp/gen_tiny
  python bench/bench_ray.py --data /tmp/gen_tiny --out /tmp/bench_ray [--train-rows 20480]
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from src.cli import run_main  # noqa: E402 (after the sys.path line)
from src.errors import UserError  # noqa: E402

DEMO_TUNER = REPO / "config" / "DIN_demo_tuner_config.yaml"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def slice_data(data_dir, out, train_rows, valid_rows):
    """The first rows of the generated splits, same item_info, under out/MicroLens_1M_x1."""
    src, dst = Path(data_dir) / "MicroLens_1M_x1", Path(out) / "MicroLens_1M_x1"
    dst.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train_rows), ("valid", valid_rows), ("test", 512)):
        pd.read_parquet(src / f"{split}.parquet").head(rows).to_parquet(dst / f"{split}.parquet")
    shutil.copy(src / "item_info.parquet", dst / "item_info.parquet")
    return dst


def tuner_config(folder, split_dir, space, name="grid.yaml"):
    """The demo tuner config (demo-size DIN, deterministic) on split_dir, space overriding."""
    config = yaml.safe_load(DEMO_TUNER.read_text())
    dataset = config["dataset_config"].pop("MicroLens_demo_x1")
    dataset.update(data_root=str(split_dir.parent), item_info=str(split_dir / "item_info.parquet"),
                   **{f"{s}_data": str(split_dir / f"{s}.parquet")
                      for s in ("train", "valid", "test")})
    config["dataset_config"] = {"MicroLens_bench": dataset}
    config["dataset_id"] = "MicroLens_bench"
    config["base_config"] = str(REPO / "config" / "din_config")
    config["tuner_space"].update(space)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tune(folder, tuner_yaml, *args):
    """run_param_tuner.py in folder; (wall seconds, summary rows). Its output goes to a log."""
    started = time.monotonic()
    with open(folder / "tuner.log", "a") as log:
        done = subprocess.run([sys.executable, str(REPO / "run_param_tuner.py"), "--config",
                               str(tuner_yaml), *map(str, args)], cwd=folder, stdout=log,
                              stderr=subprocess.STDOUT, env=dict(os.environ, **RAY_ENV))
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise UserError(f"the tuner failed in {folder} (exit {done.returncode}): see "
                        f"{folder}/tuner.log")
    with open(folder / f"{tuner_yaml.stem}_summary.csv", newline="") as f:
        return wall, list(csv.DictReader(f))


def steps_of(folder, expid, steps_per_epoch):
    """Training steps of a run: the step of its last evaluation, from its log."""
    log = next((folder / "checkpoints").glob(f"*/{expid}.log")).read_text()
    epoch, batch = re.findall(r"Evaluation @epoch (\d+) - batch (\d+)", log)[-1]
    return (int(epoch) - 1) * steps_per_epoch + int(batch)


def full_vs_asha(args, split_dir):
    """The grid in full, then with ASHA at each --asha GRACE:FACTOR; figures of each."""
    steps_per_epoch = -(-args.train_rows // args.batch_size)
    space = {"learning_rate": args.learning_rates, "net_dropout": args.dropouts,
             "batch_size": args.batch_size, "epochs": args.epochs,
             "eval_steps": steps_per_epoch // args.evals_per_epoch,
             "early_stop_patience": args.patience}
    variants = [("full", [])] + [
        (f"asha_{schedule.replace(':', '_')}",
         ["--scheduler", "asha", "--grace-period", schedule.split(":")[0],
          "--reduction-factor", schedule.split(":")[1]]) for schedule in args.asha]
    figures = {}
    for name, extra in variants:
        folder = Path(args.out) / name
        shutil.rmtree(folder, ignore_errors=True)
        tuner_yaml = tuner_config(folder, split_dir, space)
        wall, rows = tune(folder, tuner_yaml, "--ray", "local", "--gpus-per-run", 0,
                          "--cpus-per-run", args.cpus_per_run, *extra)
        steps = {r["expid"]: steps_of(folder, r["expid"], steps_per_epoch) for r in rows}
        best = max(rows, key=lambda r: float(r["AUC"]))
        figures[name] = {"runs": len(rows), "steps": sum(steps.values()),
                         "stopped": sum(r["status"] == "stopped early" for r in rows),
                         "best_auc": float(best["AUC"]), "best_expid": best["expid"],
                         "wall_s": round(wall, 1), "per_run": {r["expid"]: {
                             "status": r["status"], "AUC": float(r["AUC"]),
                             "steps": steps[r["expid"]]} for r in rows}}
    return figures


def overhead(args, split_dir):
    space = {"learning_rate": [1.e-3 * (i + 1) for i in range(args.short_runs)],
             "batch_size": 2048, "epochs": 1}
    figures = {}
    for name, extra in (("slots", ["--gpu"] + ["-1"] * args.parallel),
                        ("ray", ["--ray", "local", "--gpus-per-run", 0, "--cpus-per-run",
                                 args.cpus_per_run])):
        folder = Path(args.out) / f"short_{name}"
        shutil.rmtree(folder, ignore_errors=True)
        tuner_yaml = tuner_config(folder, split_dir, space)
        wall, rows = tune(folder, tuner_yaml, *extra)
        seconds = [float(r["seconds"]) for r in rows]
        figures[name] = {"runs": len(rows), "wall_s": round(wall, 1),
                         "seconds_per_run": round(sum(seconds) / len(seconds), 2),
                         "start_s": start_up(folder / "tuner.log")}
    return figures


def start_up(log):
    """Seconds from the data check to the first run started (Ray: connecting or starting the
    instance and asking every node what it sees), from the tuner's log."""
    text = log.read_text()
    stamp = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) P\d+ INFO "
    checked = re.search(stamp + "Checking data of dataset", text)
    started = re.search(stamp + r"(Ray: \d+ run\(s\)|Start )", text)
    if not (checked and started):
        return None
    return round(_seconds(started) - _seconds(checked), 1)


def _seconds(match):
    return pd.Timestamp(match.group(1).replace(",", ".")).timestamp()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="generated data (python -m src.datagen)")
    parser.add_argument("--out", required=True, help="work folder (replaced parts)")
    parser.add_argument("--train-rows", type=int, default=20480)
    parser.add_argument("--valid-rows", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=3, help="early_stop_patience (seed: 3)")
    parser.add_argument("--evals-per-epoch", type=int, default=1,
                        help="evaluations per epoch (it should divide the steps of an epoch)")
    parser.add_argument("--learning-rates", type=float, nargs="+",
                        default=[1.e-4, 3.e-4, 1.e-3, 3.e-3])
    parser.add_argument("--dropouts", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--asha", nargs="+", default=["1:3", "1:4"], metavar="GRACE:FACTOR",
                        help="ASHA settings to compare with the full grid: grace period (in "
                             "evaluations) and reduction factor")
    parser.add_argument("--cpus-per-run", type=float, default=1)
    parser.add_argument("--parallel", type=int, default=2,
                        help="slots of the slot tuner (match the Ray instance's runs at a time)")
    parser.add_argument("--short-runs", type=int, default=8)
    parser.add_argument("--parts", nargs="+", default=["asha", "overhead"],
                        choices=["asha", "overhead"])
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    split_dir = slice_data(args.data, Path(args.out) / "data", args.train_rows, args.valid_rows)
    figures = {"settings": {k: v for k, v in vars(args).items() if k != "parts"}}
    if "asha" in args.parts:
        figures["asha"] = asha = full_vs_asha(args, split_dir)
        full = asha["full"]
        print(f"| grid of {full['runs']} | training steps | best validation AUC (expid) | "
              f"stopped early | wall s |\n|---|---|---|---|---|")
        for name, f in asha.items():
            label = "full grid" if name == "full" else \
                "ASHA, grace {}, factor {}".format(*name.split("_")[1:])
            print(f"| {label} | {f['steps']:,} ({f['steps'] / full['steps']:.0%}) | "
                  f"{f['best_auc']:.4f} ({f['best_expid']}) | {f['stopped']} | "
                  f"{f['wall_s']:.0f} |")
    if "overhead" in args.parts:
        figures["overhead"] = over = overhead(args, split_dir)
        print(f"\n| {over['slots']['runs']} short runs, {args.parallel} at a time | s per run | "
              f"start-up s | wall s |\n|---|---|---|---|")
        for name in ("slots", "ray"):
            print(f"| {name} | {over[name]['seconds_per_run']:.1f} | {over[name]['start_s']} | "
                  f"{over[name]['wall_s']:.0f} |")
        print(f"Ray adds {over['ray']['seconds_per_run'] - over['slots']['seconds_per_run']:+.1f}"
              f" s per run, {over['ray']['wall_s'] - over['slots']['wall_s']:+.0f} s in all")
    (Path(args.out) / "bench_ray.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    run_main(main)
