"""Grid search over a tuner config, one run per GPU slot, that cannot fail silently.

FuxiCTR's enumerate_params expands the grid (expids `<base>_<NNN>_<md5[:8]>`, written to
`<tuner name>/model_config.yaml` and `dataset_config.yaml`); its grid_search ignores exit
codes, has no resume and runs whatever `python` is on PATH. Here:
- a config marked `task1: true` is checked against the task-1 rules before anything is
  written (src/task1_rules.py); the data of each dataset is checked once before any run;
- each run is a child process of this same interpreter (sys.executable);
- a run is `ok` only if it exits 0 AND appended a new result line; a non-zero exit is a
  failure even if a line appeared, a zero exit without a line is a failure too;
- rerunning skips expids with a result line, except those the previous summary calls failed
  or interrupted; --force reruns everything;
- Ctrl-C (or SIGTERM to the tuner) sends SIGTERM to the running children, SIGKILL after
  STOP_TIMEOUT_SECONDS, records them as `interrupted` and the queue as `not started`,
  writes the summary and exits 130 (src/cli.py). A killed run never has a result line: it is
  appended only at the very end of run_expid.py, and checkpoints are replaced atomically.
- a summary table, best validation AUC first, is printed and written to
  `<tuner name>_summary.csv` beside the result file `<tuner name>.csv`.
"""
import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from fuxictr.autotuner import enumerate_params, load_experiment_ids

from ..errors import ConfigError, UserError
from .results import read_results, results_path
from .task1_rules import check_tuner_config

logger = logging.getLogger(__name__)

RUN_EXPID = Path(__file__).resolve().parents[2] / "run_expid.py"
POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 30  # how long a child may take to exit after SIGTERM before SIGKILL
OK, DONE_BEFORE, INTERRUPTED, NOT_STARTED = "ok", "done before", "interrupted", "not started"
SUMMARY_FIELDS = ["expid", "status", "AUC", "logloss", "seconds"]


class GridFailed(UserError):
    """Some runs of the grid failed; the others are recorded."""


def expand_grid(tuner_yaml):
    """Check the tuner config (task-1 rules included), write the grid's config folder;
    return (config_dir, expids)."""
    tuner_yaml = Path(tuner_yaml)
    if not tuner_yaml.is_file():
        raise ConfigError(f"--config {tuner_yaml}: no such tuner config file")
    with open(tuner_yaml) as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or "tuner_space" not in config or "base_expid" not in config:
        raise ConfigError(f"{tuner_yaml}: a tuner config needs base_expid and tuner_space keys")
    check_tuner_config(config, tuner_yaml)
    try:
        config_dir = enumerate_params(str(tuner_yaml))
    except RuntimeError as err:  # e.g. a tuner key that is in neither model nor dataset config
        raise ConfigError(f"{tuner_yaml}: {err}") from None
    return config_dir, load_experiment_ids(config_dir)


def validate_grid_data(config_dir, expids):
    """Check each dataset of the grid once, before any run starts."""
    # Imported here, not at the top: src.experiment pulls in torch (seconds), which a config
    # refused by expand_grid never needs.
    from ..data.checks import validate_dataset as validate_inputs
    from ..params import load_params
    checked = set()
    for expid in expids:
        params = load_params(config_dir, expid)
        key = (params["dataset_id"], params.get("train_data"), params.get("item_info"))
        if key not in checked:
            logger.info("Checking data of dataset %s", params["dataset_id"])
            validate_inputs(params, splits=("train", "valid", "test"))
            checked.add(key)


def finished_expids(config_dir):
    """{expid: its latest result line} of the config's result file."""
    return {r["exp_id"]: r for r in read_results(results_path(config_dir))}


def _result_counts(config_dir):
    counts = {}
    for record in read_results(results_path(config_dir)):
        counts[record["exp_id"]] = counts.get(record["exp_id"], 0) + 1
    return counts


def previous_statuses(config_dir):
    """{expid: status} from the summary the last tuner run wrote ({} if none)."""
    path = summary_path(config_dir)
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["expid"]: row["status"] for row in csv.DictReader(f) if row.get("expid")}


def _needs_retry(status):
    return status.startswith("failed") or status in (INTERRUPTED, NOT_STARTED)


def child_environment(gpus):
    """Runs sharing the CPU get an equal share of its cores each: without a cap every torch
    process starts one thread per core and parallel runs slow each other down."""
    env = dict(os.environ)
    cpu_slots = sum(1 for gpu in gpus if gpu < 0)
    if cpu_slots > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_slots))
    return env


def remove_stale_tmp_checkpoints(config_dir, expid):
    """A run killed inside torch.save leaves `<checkpoint>.tmp<pid>`; its best checkpoint is
    intact (saves are tmp + rename). Remove the leftovers before the expid runs again."""
    from ..params import load_params
    try:
        params = load_params(config_dir, expid)
    except UserError:
        return
    folder = Path(params.get("model_root", "./checkpoints/")) / params["dataset_id"]
    for tmp in folder.glob(f"{expid}.model.tmp*"):
        logger.info("Removing %s left by an interrupted run", tmp)
        tmp.unlink(missing_ok=True)


def _exit_status(returncode):
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"failed (killed by {name})"
    return f"failed (exit {returncode})"


def _finish(config_dir, expid, returncode, lines_before, seconds):
    """The record of a run that ended: ok only with exit 0 and a new result line."""
    record = {"expid": expid, "seconds": seconds, "val": {}}
    results = [r for r in read_results(results_path(config_dir)) if r["exp_id"] == expid]
    new_line = len(results) > lines_before.get(expid, 0)
    if returncode != 0:
        record["status"] = _exit_status(returncode)
    elif not new_line:
        record["status"] = "failed (no result line)"
    else:
        record["status"], record["val"] = OK, results[-1]["val"]
    return record


def _stop(running):
    """SIGTERM every running child, SIGKILL those still alive after STOP_TIMEOUT_SECONDS (or at
    once on a second Ctrl-C); wait for all of them."""
    processes = [process for _, process, _ in running.values()]
    try:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("Run pid %d ignored SIGTERM for %ds: killing it", process.pid,
                               STOP_TIMEOUT_SECONDS)
    except KeyboardInterrupt:
        logger.warning("Second interrupt: killing the runs now")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class _StopSignalsAsInterrupt:
    """While running the grid, Ctrl-C (SIGINT) and SIGTERM both raise KeyboardInterrupt, so a
    scheduler's kill also stops the children and writes the summary. SIGINT is set here too
    because a tuner started in the background by a non-interactive shell inherits SIGINT
    ignored, and `kill -INT` should still stop it cleanly."""
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:  # signal handlers can only be set from the main thread
            self.previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
            for signum in self.SIGNALS:
                signal.signal(signum, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.installed:
            for signum, previous in self.previous.items():
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        return False


def run_grid(config_dir, expids, gpus, force=False):
    """Run each expid not yet recorded (all if force).

    Returns ({expid: record}, interrupted); a record has expid, status, seconds and val (the
    validation metrics of the result line this run wrote).
    """
    previous = previous_statuses(config_dir)
    done = {} if force else {e: r for e, r in finished_expids(config_dir).items()
                             if not _needs_retry(previous.get(e, OK))}
    records = {e: {"expid": e, "status": DONE_BEFORE, "seconds": None, "val": done[e]["val"]}
               for e in expids if e in done}
    queue = [e for e in expids if e not in records]
    if records:
        logger.info("Skipping %d expid(s) with results already (use --force to rerun)",
                    len(records))
    lines_before = _result_counts(config_dir)
    env = child_environment(gpus)
    free_slots = list(range(len(gpus)))
    running = {}  # slot -> (expid, process, start time)
    interrupted = False
    with _StopSignalsAsInterrupt():
        try:
            while queue or running:
                while queue and free_slots:
                    slot = free_slots.pop(0)
                    expid = queue.pop(0)  # an interrupt from here on leaves it "not started"
                    remove_stale_tmp_checkpoints(config_dir, expid)
                    cmd = [sys.executable, "-u", str(RUN_EXPID), "--config", str(config_dir),
                           "--expid", expid, "--gpu", str(gpus[slot])]
                    logger.info("Start %s on gpu %s", expid, gpus[slot])
                    running[slot] = (expid, subprocess.Popen(cmd, env=env), time.time())
                time.sleep(POLL_SECONDS)
                for slot, (expid, process, start) in list(running.items()):
                    if process.poll() is None:
                        continue
                    records[expid] = _finish(config_dir, expid, process.returncode,
                                             lines_before, time.time() - start)
                    logger.info("%s %s", expid, records[expid]["status"])
                    del running[slot]
                    free_slots.append(slot)
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("Interrupted: stopping %d running experiment(s)", len(running))
            _stop(running)
            for expid, process, start in running.values():
                record = _finish(config_dir, expid, process.returncode, lines_before,
                                 time.time() - start)
                if record["status"] != OK:  # it may have finished as the interrupt came
                    record["status"] = INTERRUPTED
                records[expid] = record
            for expid in queue:
                records[expid] = {"expid": expid, "status": NOT_STARTED, "seconds": None,
                                  "val": {}}
    return records, interrupted


def summary_rows(expids, records):
    """One row per expid: status, validation AUC and logloss (of the line this run wrote, or
    the latest line for `done before`; none for a failed run), time; best AUC first."""
    rows = []
    for expid in expids:
        record = records.get(expid, {"status": NOT_STARTED, "seconds": None, "val": {}})
        val = record.get("val") or {}
        rows.append({"expid": expid, "status": record["status"], "AUC": val.get("AUC"),
                     "logloss": val.get("logloss"), "seconds": record["seconds"]})
    rows.sort(key=lambda r: (r["AUC"] is None, -(r["AUC"] or 0.0)))
    return rows


def summary_path(config_dir):
    return Path(results_path(config_dir).stem + "_summary.csv")


def write_summary(config_dir, expids, records):
    rows = summary_rows(expids, records)
    path = summary_path(config_dir)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v))
                             for k, v in row.items()})
    tmp.replace(path)
    return rows, path


def format_table(rows):
    lines = [f"{'expid':<44} {'status':<26} {'AUC':>8} {'logloss':>8} {'seconds':>8}"]
    for r in rows:
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        lines.append(f"{r['expid']:<44} {r['status']:<26} {fmt(r['AUC'], '8.4f'):>8} "
                     f"{fmt(r['logloss'], '8.4f'):>8} {fmt(r['seconds'], '8.0f'):>8}")
    return "\n".join(lines)


def tune(tuner_yaml, gpus, force=False):
    """Check, expand, check data once, run, summarise. Raises GridFailed naming failed
    expids, KeyboardInterrupt (after writing the summary) when interrupted."""
    config_dir, expids = expand_grid(tuner_yaml)
    logger.info("Grid of %s: %d experiment(s) in %s", tuner_yaml, len(expids), config_dir)
    validate_grid_data(config_dir, expids)
    records, interrupted = run_grid(config_dir, expids, list(gpus), force=force)
    rows, path = write_summary(config_dir, expids, records)
    print(format_table(rows))
    print(f"summary: {path}; result lines: {results_path(config_dir)}")
    if interrupted:
        print("Interrupted: rerun the same command to run the unfinished experiments",
              file=sys.stderr)
        raise KeyboardInterrupt
    failed = [r["expid"] for r in rows if r["status"] not in (OK, DONE_BEFORE)]
    if failed:
        raise GridFailed(f"{len(failed)} of {len(rows)} run(s) failed: {', '.join(failed)}. "
                         f"Fix: read their logs ({_log_folder(config_dir, failed[0])}/<expid>"
                         f".log), then rerun the same command to retry only these")
    return config_dir, rows


def _log_folder(config_dir, expid):
    """Where run_expid writes the log of expid: model_root/dataset_id."""
    from ..params import load_params, log_file
    try:
        return log_file(load_params(config_dir, expid)).parent
    except (UserError, KeyError):
        return "model_root/<dataset_id>"
