"""The seed-style result file: one line per finished run, appended by run_expid.py.

Format (FuxiCTR's, kept so existing tools keep reading it), fields joined by ",[":
 20261128-124356,[command] python run_expid.py ...,[exp_id] X,[dataset_id] D,[train] N.A.,[val] AUC: 0.97 - logloss: 0.12
"""
import os
import sys
from datetime import datetime
from pathlib import Path

from ..errors import UserError


def results_path(config_dir):
    """Where run_expid appends results for a tuner config dir: `<dir name>.csv` in the cwd."""
    return Path(Path(config_dir).name.replace(".yaml", "") + ".csv")


def append_result(config_dir, expid, dataset_id, valid_result, argv=None):
    argv = sys.argv if argv is None else argv
    metrics = " - ".join(f"{k}: {v:.6f}" for k, v in valid_result.items())
    line = (f" {datetime.now().strftime('%Y%m%d-%H%M%S')},[command] python {' '.join(argv)},"
            f"[exp_id] {expid},[dataset_id] {dataset_id},[train] N.A.,[val] {metrics}\n")
    path = results_path(config_dir)
    # One write call of one line in append mode: lines of parallel runs do not interleave.
    with open(path, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return path


def parse_result_line(line):
    """{"time", "command", "exp_id", "dataset_id", "val": {metric: float}} or None."""
    parts = line.strip().split(",[")
    if len(parts) < 2:
        return None
    record = {"time": parts[0].strip()}
    for part in parts[1:]:
        key, _, value = part.partition("] ")
        record[key] = value.strip()
    if "exp_id" not in record or "val" not in record:
        return None
    val = {}
    for item in record["val"].split(" - "):
        name, _, number = item.partition(": ")
        try:
            val[name.strip()] = float(number)
        except ValueError:
            continue
    record["val"] = val
    return record


def read_results(path):
    """All parsed result lines of a result file, in file order ([] if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path) as f:
        return [r for r in map(parse_result_line, f) if r is not None]


def best_result(config_dir, metric="AUC", expids=None):
    """The recorded run of config_dir with the highest validation metric.

    expids, when given, limits the choice to those experiments (the tuner's current grid).
    """
    path = results_path(config_dir)
    records = [r for r in read_results(path)
               if metric in r["val"] and (expids is None or r["exp_id"] in expids)]
    if not records:
        raise UserError(f"no results with validation {metric} in {path} for {config_dir}. Fix: "
                        f"run the tuner first (python run_param_tuner.py --config "
                        f"{config_dir}.yaml --gpu 0), from the folder holding {path}")
    return max(records, key=lambda r: r["val"][metric])
