"""Grid search over a tuner config, one run per GPU slot, that cannot fail silently.

FuxiCTR's enumerate_params expands the grid (expids `<base>_<NNN>_<md5[:8]>`, written to
`<tuner name>/model_config.yaml` and `dataset_config.yaml`); its grid_search ignores exit
codes, has no resume and runs whatever `python` is on PATH. Here each run is a child process
of this same interpreter; exit codes are checked; expids with a recorded result are skipped
unless force; Ctrl-C stops the children and keeps what finished; a summary table, best first,
is printed and written to `<tuner name>_summary.csv`.
"""
import csv
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from fuxictr.autotuner import enumerate_params, load_experiment_ids

from .errors import ConfigError, UserError
from .experiment import load_params, validate_inputs
from .results import read_results, results_path

logger = logging.getLogger(__name__)

RUN_EXPID = Path(__file__).resolve().parent.parent / "run_expid.py"
POLL_SECONDS = 0.5


class GridFailed(UserError):
    """Some runs of the grid failed; the others are recorded."""


def expand_grid(tuner_yaml):
    """Write the grid's config folder; return (config_dir, expids)."""
    tuner_yaml = Path(tuner_yaml)
    if not tuner_yaml.is_file():
        raise ConfigError(f"--config {tuner_yaml}: no such tuner config file")
    with open(tuner_yaml) as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or "tuner_space" not in config or "base_expid" not in config:
        raise ConfigError(f"{tuner_yaml}: a tuner config needs base_expid and tuner_space keys")
    try:
        config_dir = enumerate_params(str(tuner_yaml))
    except RuntimeError as err:  # e.g. a tuner key that is in neither model nor dataset config
        raise ConfigError(f"{tuner_yaml}: {err}") from None
    return config_dir, load_experiment_ids(config_dir)


def validate_grid_data(config_dir, expids):
    """Check each dataset of the grid once, before any run starts."""
    checked = set()
    for expid in expids:
        params = load_params(config_dir, expid)
        key = (params["dataset_id"], params.get("train_data"), params.get("item_info"))
        if key not in checked:
            logger.info("Checking data of dataset %s", params["dataset_id"])
            validate_inputs(params, splits=("train", "valid", "test"))
            checked.add(key)


def finished_expids(config_dir):
    return {r["exp_id"]: r for r in read_results(results_path(config_dir))}


def child_environment(gpus):
    """Runs sharing the CPU get an equal share of its cores each: without a cap every torch
    process starts one thread per core and parallel runs slow each other down."""
    env = dict(os.environ)
    cpu_slots = sum(1 for gpu in gpus if gpu < 0)
    if cpu_slots > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_slots))
    return env


def run_grid(config_dir, expids, gpus, force=False):
    """Run each expid not yet recorded (all if force); return {expid: status record}."""
    done = {} if force else finished_expids(config_dir)
    records = {e: {"expid": e, "status": "done before", "seconds": None} for e in expids
               if e in done}
    queue = [e for e in expids if e not in records]
    if records:
        logger.info("Skipping %d expid(s) with results already (use --force to rerun)",
                    len(records))
    env = child_environment(gpus)
    free_slots = list(range(len(gpus)))
    running = {}  # slot -> (expid, process, start time)
    try:
        while queue or running:
            while queue and free_slots:
                slot = free_slots.pop(0)
                expid = queue.pop(0)
                cmd = [sys.executable, "-u", str(RUN_EXPID), "--config", str(config_dir),
                       "--expid", expid, "--gpu", str(gpus[slot])]
                logger.info("Start %s on gpu %s", expid, gpus[slot])
                running[slot] = (expid, subprocess.Popen(cmd, env=env), time.time())
            time.sleep(POLL_SECONDS)
            for slot, (expid, process, start) in list(running.items()):
                if process.poll() is None:
                    continue
                status = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
                records[expid] = {"expid": expid, "status": status,
                                  "seconds": time.time() - start}
                logger.info("%s %s", expid, status)
                del running[slot]
                free_slots.append(slot)
    except KeyboardInterrupt:
        for expid, process, start in running.values():
            process.terminate()
        for expid, process, start in running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            records[expid] = {"expid": expid, "status": "interrupted",
                              "seconds": time.time() - start}
        for expid in queue:
            records[expid] = {"expid": expid, "status": "not started", "seconds": None}
        write_summary(config_dir, expids, records)
        raise
    return records


def summary_rows(config_dir, expids, records):
    """One row per expid: status, validation AUC and logloss (latest result line), time."""
    results = finished_expids(config_dir)
    rows = []
    for expid in expids:
        record = records.get(expid, {"status": "not run", "seconds": None})
        val = results.get(expid, {}).get("val", {})
        status = record["status"]
        if status == "ok" and not val:
            status = "failed (no result line)"
        rows.append({"expid": expid, "status": status, "AUC": val.get("AUC"),
                     "logloss": val.get("logloss"), "seconds": record["seconds"]})
    rows.sort(key=lambda r: (r["AUC"] is None, -(r["AUC"] or 0.0)))
    return rows


def summary_path(config_dir):
    return Path(results_path(config_dir).stem + "_summary.csv")


def write_summary(config_dir, expids, records):
    rows = summary_rows(config_dir, expids, records)
    path = summary_path(config_dir)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["expid", "status", "AUC", "logloss", "seconds"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v))
                             for k, v in row.items()})
    tmp.replace(path)
    return rows, path


def format_table(rows):
    lines = [f"{'expid':<44} {'status':<24} {'AUC':>8} {'logloss':>8} {'seconds':>8}"]
    for r in rows:
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        lines.append(f"{r['expid']:<44} {r['status']:<24} {fmt(r['AUC'], '8.4f'):>8} "
                     f"{fmt(r['logloss'], '8.4f'):>8} {fmt(r['seconds'], '8.0f'):>8}")
    return "\n".join(lines)


def tune(tuner_yaml, gpus, force=False):
    """Expand, check data once, run, summarise. Raises GridFailed naming failed expids."""
    config_dir, expids = expand_grid(tuner_yaml)
    logger.info("Grid of %s: %d experiment(s) in %s", tuner_yaml, len(expids), config_dir)
    validate_grid_data(config_dir, expids)
    records = run_grid(config_dir, expids, list(gpus), force=force)
    rows, path = write_summary(config_dir, expids, records)
    print(format_table(rows))
    print(f"summary: {path}; result lines: {results_path(config_dir)}")
    failed = [r["expid"] for r in rows if not (r["status"] in ("ok", "done before") and r["AUC"])]
    if failed:
        raise GridFailed(f"{len(failed)} of {len(rows)} run(s) failed: {', '.join(failed)}. "
                         f"Their logs are under model_root/<dataset_id>/<expid>.log; rerun the "
                         f"same command to retry only these")
    return config_dir, rows
