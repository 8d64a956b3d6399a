"""The baseline-style result file: one line per finished run, appended by run_expid.py.

Format (FuxiCTR's, kept so existing tools keep reading it), fields joined by ",[", plus the
fingerprint of what made the run, the run's id (src/runs/fingerprint.py) and the sha256 of
the weights it was evaluated with (src/training/state_hash.py; lines written before weights were
hashed have none, and their checkpoint cannot be verified against them):
 20261128-124356,[command] python run_expid.py ...,[exp_id] X,[dataset_id] D,[fingerprint] F,[run] R,[weights] W,[train] N.A.,[val] AUC: 0.97 - logloss: 0.12
"""
from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import UserError

logger = logging.getLogger(__name__)


def results_path(config_dir: Path | str) -> Path:
    """Where run_expid appends results for a tuner config dir: `<dir name>.csv` in the cwd."""
    return Path(Path(config_dir).name.replace(".yaml", "") + ".csv")


def append_result(config_dir: Path | str, expid: str, dataset_id: str,
                  valid_result: dict[str, float], argv: list[str] | None = None,
                  fingerprint: str | None = None, run_id: str | None = None,
                  weights: str | None = None) -> Path:
    argv = sys.argv if argv is None else argv
    metrics = " - ".join(f"{k}: {v:.6f}" for k, v in valid_result.items())
    extra = "".join(f",[{key}] {value}" for key, value in (("fingerprint", fingerprint),
                                                          ("run", run_id), ("weights", weights))
                    if value)
    line = (f" {datetime.now().strftime('%Y%m%d-%H%M%S')},[command] python {' '.join(argv)},"
            f"[exp_id] {expid},[dataset_id] {dataset_id}{extra},[train] N.A.,[val] {metrics}\n")
    path = results_path(config_dir)
    # One write call of one line in append mode: lines of parallel runs do not interleave.
    with open(path, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return path


def parse_result_line(line: str) -> dict[str, Any] | None:
    """{"time", "command", "exp_id", "dataset_id", "fingerprint", "run", "weights",
    "val": {metric: float}}
    or None for a line that is not a result line."""
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


def read_results(path: Path | str) -> list[dict[str, Any]]:
    """All parsed result lines of a result file, in file order ([] if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UserError(f"result file {path}, line {number}: not UTF-8 text ({err.reason} "
                                f"at byte {err.start}). Fix: delete or repair that line (each line "
                                f"is one finished run; the tuner reruns experiments without "
                                f"one)") from None
            record = parse_result_line(line)
            if record is not None:
                record["line"] = number
                records.append(record)
    return records


def latest_results(path: Path | str, fingerprints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """{expid: its latest result line} among the expids of fingerprints ({expid: the
    fingerprint its config and data have now}) whose line carries that same fingerprint.
    Lines of other expids, or of the same expid made with other settings or data, are left out
    and counted in the log."""
    latest, other, stale = {}, set(), set()
    for record in read_results(path):
        expid = record["exp_id"]
        if expid not in fingerprints:
            other.add(expid)
        elif record.get("fingerprint") != fingerprints[expid]:
            stale.add(expid)
        else:
            latest[expid] = record
    if other:
        logger.info("%s: %d result line(s) of experiments not in this grid left out (%s)", path,
                    len(other), ", ".join(sorted(other)[:5]) + (" ..." if len(other) > 5 else ""))
    stale -= set(latest)
    if stale:
        logger.info("%s: result lines of %s were made with other settings or data than the "
                    "config has now: left out", path, ", ".join(sorted(stale)[:5]))
    return latest


def best_result(config_dir: Path | str, fingerprints: dict[str, str],
                metric: str = "AUC") -> dict[str, Any]:
    """The result line with the highest validation metric among the current grid's expids
    (the keys of fingerprints), each taken at its latest line with its current fingerprint:
    the same choice as the tuner's summary."""
    path = results_path(config_dir)
    records = [r for r in latest_results(path, fingerprints).values() if metric in r["val"]]
    if not records:
        raise UserError(f"no results with validation {metric} in {path} for the experiments of "
                        f"{config_dir} (with their current settings and data). Fix: run the tuner "
                        f"first (python run_param_tuner.py --config {config_dir}.yaml --gpu -1, or "
                        f"--gpu 0 on a GPU), from the folder holding {path}")
    return max(records, key=lambda r: r["val"][metric])


def ranked_results(config_dir: Path | str, fingerprints: dict[str, str],
                   metric: str = "AUC") -> list[dict[str, Any]]:
    """The current grid's latest matching result lines, best metric first."""
    records = [r for r in latest_results(results_path(config_dir), fingerprints).values()
               if metric in r["val"]]
    return sorted(records, key=lambda r: -r["val"][metric])
