"""Grid search over a tuner config that cannot fail silently, with one writer per grid.

tune() reads top to bottom:
1. expand and check the grid in memory (keys with "did you mean", every grid point's values,
   task-1 rules: src/tuning/grid.py), the GPU slots, each dataset's files and each
   model_root's permissions; a refusal writes nothing and prints one line;
2. take the grid's lock (a second tuner on the same config is refused, naming the first's
   pid and host; the lock of a dead tuner is taken over), then write the grid folder;
3. plan: an experiment is done when its latest result line carries the fingerprint its
   config and data have now (src/tuning/fingerprint.py), the last summary did not call it
   failed or interrupted, and its checkpoint is readable and was written by that same run;
   everything else runs (all of it with --force);
4. run the queue on the slots (src/tuning/slots.py); a run is `ok` only if it exits 0 AND
   appended a new result line; a run whose experiment another live process is training
   (an orphan of a killed tuner, say) is not started beside it;
5. write the summary (best validation AUC first) to `<tuner name>_summary.csv` beside the
   result file `<tuner name>.csv`, print it, exit 0, 2 (failed runs) or 130 (interrupted).
"""
import csv
import logging
import signal
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..params import RunPaths
from .fingerprint import fingerprint_record
from .grid import expand
from .lock import FileLock, describe, holder
from .results import latest_results, read_results, results_path
from .slots import LocalSlots

logger = logging.getLogger(__name__)

RUN_EXPID = Path(__file__).resolve().parents[2] / "run_expid.py"
ORPHAN_WAIT_SECONDS = 60  # an orphaned run notices its tuner is gone at its next batch
OK, DONE_BEFORE, INTERRUPTED, NOT_STARTED = "ok", "done before", "interrupted", "not started"
SUMMARY_FIELDS = ["expid", "status", "AUC", "logloss", "seconds"]


class GridFailed(UserError):
    """Some runs of the grid failed; the others are recorded."""


# --- checks before anything is written -------------------------------------------------------
def check_gpus(gpus):
    """Every slot's GPU must exist (a CPU build of torch has none): refused up front."""
    wanted = sorted({g for g in gpus if g >= 0})
    if wanted:
        from ..experiment import require_gpu
        for gpu in wanted:
            require_gpu(gpu)


def validate_grid_data(grid):
    """Check each dataset of the grid once, that each model_root can be written, and that
    the TensorBoard package is there where a grid point asks for it."""
    from ..data.checks import validate_dataset
    from ..experiment import require_writable
    from ..history import require_tensorboard
    checked, roots = set(), set()
    for expid in grid.expids:
        params = grid.params(expid)
        require_tensorboard(params)
        if params["dataset_id"] not in checked:
            logger.info("Checking data of dataset %s", params["dataset_id"])
            validate_dataset(params, splits=("train", "valid", "test"))
            checked.add(params["dataset_id"])
        roots.add(params.get("model_root", "./checkpoints/"))
    for root in sorted(roots):
        require_writable(root, "model_root")


# --- what is done, what runs -----------------------------------------------------------------
def summary_path(config_dir):
    return Path(results_path(config_dir).stem + "_summary.csv")


def previous_statuses(config_dir):
    """{expid: status} from the summary the last tuner run wrote ({} if none)."""
    path = summary_path(config_dir)
    if not path.exists():
        return {}
    with open(path, newline="", errors="replace") as f:
        return {row["expid"]: row["status"] for row in csv.DictReader(f) if row.get("expid")}


def _needs_retry(status):
    return status.startswith("failed") or status in (INTERRUPTED, NOT_STARTED)


def checkpoint_problem(paths, line):
    """Why the checkpoint of a finished run cannot be trusted, or None."""
    from ..models.base import read_checkpoint
    try:
        saved = read_checkpoint(paths.checkpoint)
    except UserError as err:
        return str(err).split(". Fix:")[0]
    if saved.get("run_id") != line.get("run"):
        return (f"checkpoint {paths.checkpoint} was written by run {saved.get('run_id')}, not by "
                f"the run of the result line ({line.get('run')})")
    return None


def plan(grid, fingerprints, force=False):
    """(records of experiments done before, queue of experiments to run)."""
    if force:
        return {}, list(grid.expids)
    previous = previous_statuses(grid.config_dir)
    lines = latest_results(results_path(grid.config_dir), fingerprints)
    done, queue = {}, []
    for expid in grid.expids:
        line = lines.get(expid)
        if line is None or _needs_retry(previous.get(expid, OK)):
            queue.append(expid)
            continue
        problem = checkpoint_problem(RunPaths(grid.params(expid)), line)
        if problem:
            logger.warning("%s runs again: %s", expid, problem)
            queue.append(expid)
            continue
        done[expid] = {"expid": expid, "status": DONE_BEFORE, "seconds": None, "val": line["val"]}
    if done:
        logger.info("Skipping %d expid(s) with results already (use --force to rerun)", len(done))
    return done, queue


def _exit_status(returncode):
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"failed (killed by {name})"
    return f"failed (exit {returncode})"


def _line_counts(config_dir):
    counts = {}
    for record in read_results(results_path(config_dir)):
        counts[record["exp_id"]] = counts.get(record["exp_id"], 0) + 1
    return counts


def finish_record(config_dir, expid, returncode, lines_before, seconds):
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


def _note_in_log(log, text):
    """A line in a run's log the run could not write itself (it was killed by a signal)."""
    try:
        if Path(log).exists():
            with open(log, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} (tuner) {text}\n")
    except OSError:
        pass


def run_queue(config_dir, queue, gpus, log_paths=None, lock_paths=None, executor=None,
              fresh=False):
    """Run each expid of queue on the slots. Returns ({expid: record}, interrupted); a record
    has expid, status, seconds and val (the metrics of the result line the run wrote)."""
    log_paths, lock_paths = log_paths or {}, lock_paths or {}
    executor = executor or LocalSlots(gpus)
    lines_before = _line_counts(config_dir)
    records = {}

    def command(expid, gpu):
        import os
        return [sys.executable, "-u", str(RUN_EXPID), "--config", str(config_dir), "--expid",
                expid, "--gpu", str(gpu), "--tuner-pid", str(os.getpid())] + (
                    ["--fresh"] if fresh else [])

    def on_start(expid):
        lock = lock_paths.get(expid)
        busy = holder(lock) if lock else None
        deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
        while busy and time.monotonic() < deadline:
            logger.info("%s is being trained by %s: waiting for it to stop", expid, describe(busy))
            time.sleep(2)
            busy = holder(lock)
        if busy:
            return f"failed (busy: {describe(busy)} is training it)"
        for tmp in Path(lock).parent.glob(f"{expid}.model.tmp*") if lock else []:
            logger.info("Removing %s left by an interrupted run", tmp)
            tmp.unlink(missing_ok=True)
        return None

    def on_finish(expid, returncode, seconds, refusal):
        if refusal:
            records[expid] = {"expid": expid, "status": refusal, "seconds": None, "val": {}}
        else:
            records[expid] = finish_record(config_dir, expid, returncode, lines_before, seconds)
            if returncode is not None and returncode < 0 and expid in log_paths:
                _note_in_log(log_paths[expid], f"the run was {records[expid]['status'][8:-1]}")
        logger.info("%s %s", expid, records[expid]["status"])

    interrupted, stopped, not_started = executor.run(queue, command, on_start, on_finish)
    for expid, returncode, seconds in stopped:
        record = finish_record(config_dir, expid, returncode, lines_before, seconds)
        if record["status"] != OK:  # it may have finished as the interrupt came
            record["status"] = INTERRUPTED
        records[expid] = record
    for expid in not_started:
        records[expid] = {"expid": expid, "status": NOT_STARTED, "seconds": None, "val": {}}
    return records, interrupted


# --- summary -----------------------------------------------------------------------------------
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


# --- the whole run -------------------------------------------------------------------------------
def expand_grid(tuner_yaml):
    """Check the tuner config and write its grid folder; (config_dir, expids). For callers
    that only need the folder (tests, the item-embedding protocol)."""
    grid = expand(tuner_yaml)
    grid.write()
    return str(grid.config_dir), grid.expids


def tune(tuner_yaml, gpus, force=False, executor=None):
    """Check, lock, write, plan, run, summarise. Raises GridFailed naming failed expids,
    KeyboardInterrupt (after writing the summary) when interrupted."""
    grid = expand(tuner_yaml)
    check_gpus(gpus)
    logger.info("Grid of %s: %d experiment(s)", tuner_yaml, len(grid.expids))
    validate_grid_data(grid)
    grid.config_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(grid.config_dir / ".tuner.lock", f"the grid {grid.config_dir}",
                  fix="wait for that tuner to finish, or stop it (Ctrl-C) and rerun"):
        grid.write()
        signatures = {}
        fingerprints = {e: fingerprint_record(grid.params(e), signatures)["fingerprint"]
                        for e in grid.expids}
        done, queue = plan(grid, fingerprints, force)
        paths = {e: RunPaths(grid.params(e)) for e in queue}
        records, interrupted = run_queue(grid.config_dir, queue, list(gpus),
                                         log_paths={e: p.log for e, p in paths.items()},
                                         lock_paths={e: p.lock for e, p in paths.items()},
                                         executor=executor, fresh=force)
        records.update(done)
        rows, path = write_summary(grid.config_dir, grid.expids, records)
    print(format_table(rows))
    print(f"summary: {path}; result lines: {results_path(grid.config_dir)}")
    print(f"report: python -m src.report --config {grid.config_dir} writes "
          f"reports/{grid.config_dir.name}/index.html (or run the tuner with --report)")
    if interrupted:
        print("Interrupted: rerun the same command to run the unfinished experiments",
              file=sys.stderr)
        raise KeyboardInterrupt
    failed = [r["expid"] for r in rows if r["status"] not in (OK, DONE_BEFORE)]
    if failed:
        log_folder = RunPaths(grid.params(failed[0])).folder
        raise GridFailed(f"{len(failed)} of {len(rows)} run(s) failed: {', '.join(failed)}. "
                         f"Fix: read their logs ({log_folder}/<expid>.log), then rerun the same "
                         f"command to retry only these")
    return str(grid.config_dir), rows
