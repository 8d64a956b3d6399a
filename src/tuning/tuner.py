"""Grid search over a tuner config that cannot fail silently, with one writer per grid.

tune() reads top to bottom:
1. expand and check the grid in memory (keys with "did you mean", every grid point's values,
   task-1 rules: src/tuning/grid.py), the GPU slots, each dataset's files, each
   model_root's permissions and that no other config folder owns the grid's run files
   (src/runs/files.py); a refusal writes nothing and prints one line;
2. take the grid's lock (a second tuner on the same config is refused, naming the first's
   pid and host; the lock of a dead tuner is taken over), then write the grid folder;
3. plan: an experiment is done when its latest result line carries the fingerprint its
   config and data have now (src/runs/fingerprint.py), the last summary did not call it
   failed or interrupted, and its checkpoint is readable and was written by that same run;
   everything else runs (all of it with --force);
4. run the queue on an executor (src/tuning/executor.py): the slots of this machine
   (src/tuning/slots.py) or a Ray cluster (src/tuning/ray_runner.py); a run is `ok` only if
   it exits 0 AND appended a new result line, or if its executor handed its result back, in
   which case the line is written here, once; a run whose experiment another live process is
   training (an orphan of a killed tuner, say) is not started beside it, and one that such a
   process finished while the tuner waited for it (run_expid.py started by hand) is `done
   before`, not trained again; a line of progress as each run ends;
5. write the summary (best validation AUC first) to `<tuner name>_summary.csv` beside the
   result file `<tuner name>.csv`, print it, exit 0, 2 (failed runs) or 130 (interrupted).
A run that a scheduler stopped early (Ray Tune's ASHA) has a result line (the AUC of its best
checkpoint, which it keeps with its training state) and the status `stopped early`. A rerun
with the same scheduler keeps it (`stopped before`); a rerun without one trains it on to its
end, from its training state.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import leftovers
from ..data.checks import validate_dataset
from ..environment import require_gpu, require_writable
from ..errors import UserError
from ..history import require_tensorboard
from ..training.state_hash import CHECKPOINT_KEY, verify_weights
from ..params import RunPaths
from ..progress import _duration
from ..runs.checkpoint import read_checkpoint
from ..runs.files import check_owner
from ..runs.fingerprint import fingerprint_record
from ..runs.lock import FileLock, describe, holder
from ..runs.results import append_result, latest_results, read_results, results_path
from .executor import RunSpec
from .grid import expand
from .slots import LocalSlots
from .summary import NOT_STARTED, format_table, read_summary, write_summary

if TYPE_CHECKING:
    from .executor import Ended, Executor
    from .grid import Grid

logger = logging.getLogger(__name__)

RUN_EXPID = Path(__file__).resolve().parents[2] / "run_expid.py"
ORPHAN_WAIT_SECONDS = 60  # an orphaned run notices its tuner is gone at its next batch
OK, DONE_BEFORE, INTERRUPTED = "ok", "done before", "interrupted"
STOPPED, STOPPED_BEFORE = "stopped early", "stopped before"  # by a scheduler (ASHA)
NOT_FAILED = (OK, DONE_BEFORE, STOPPED, STOPPED_BEFORE)  # every other status is a failure


class GridFailed(UserError):
    """Some runs of the grid failed; the others are recorded."""


# --- checks before anything is written -------------------------------------------------------
def check_gpus(gpus: Iterable[int]) -> None:
    """Every slot's GPU must exist (a CPU build of torch has none): refused up front."""
    wanted = sorted({g for g in gpus if g >= 0})
    for gpu in wanted:
        require_gpu(gpu)


def validate_grid_data(grid: Grid) -> None:
    """Check each dataset of the grid once, that each model_root can be written, and that
    the TensorBoard package is there where a grid point asks for it."""
    longest, roots = {}, set()  # per dataset: the expid with the largest max_len
    for expid in grid.expids:
        params = grid.params(expid)
        require_tensorboard(params)
        best = longest.get(params["dataset_id"])
        if best is None or _max_len(params) > _max_len(grid.params(best)):
            longest[params["dataset_id"]] = expid
        roots.add(params.get("model_root", "./checkpoints/"))
    for dataset_id, expid in longest.items():
        # the histories must be as long as the longest max_len of any grid point, not the first
        logger.info("Checking data of dataset %s", dataset_id)
        try:
            validate_dataset(grid.params(expid), splits=("train", "valid", "test"))
        except UserError as err:  # same error, also naming the grid point it was checked for
            err.args = (f"expid {expid} (max_len={_max_len(grid.params(expid))}): {err}",)
            raise
    for root in sorted(roots):
        require_writable(root, "model_root")
    for expid in grid.expids:  # another config's runs in the same files: refused, named
        check_owner(RunPaths(grid.params(expid)), grid.config_dir)


def _max_len(params):
    value = params.get("max_len")
    return value if isinstance(value, int) else 0


# --- what is done, what runs -----------------------------------------------------------------
def previous_statuses(config_dir: Path | str) -> dict[str, str]:
    """{expid: status} from the summary the last tuner run wrote ({} if none)."""
    return {expid: row["status"] for expid, row in read_summary(config_dir).items()}


def _needs_retry(status):
    return status.startswith("failed") or status in (INTERRUPTED, NOT_STARTED)


def _was_stopped(status):
    return status in (STOPPED, STOPPED_BEFORE)


def checkpoint_problem(paths: RunPaths, line: dict[str, Any]) -> str | None:
    """Why the checkpoint of a finished run cannot be trusted, or None: unreadable, of another
    run, or weights that differ from its own recorded hash or its result line's. A checkpoint
    or line written before weights were hashed is accepted, unverified (said in the log)."""
    try:
        saved = read_checkpoint(paths.checkpoint)
        weights = verify_weights(saved.get("state_dict", {}), saved.get(CHECKPOINT_KEY),
                                 paths.checkpoint)
    except UserError as err:
        return str(err).split(". Fix:")[0]
    if saved.get("run_id") != line.get("run"):
        return (f"checkpoint {paths.checkpoint} was written by run {saved.get('run_id')}, not by "
                f"the run of the result line ({line.get('run')})")
    if line.get("weights") and line["weights"] != weights:
        return (f"checkpoint {paths.checkpoint} holds other weights (sha256 {weights[:16]}...) "
                f"than its result line's run evaluated ({line['weights'][:16]}...)")
    if not (line.get("weights") and saved.get(CHECKPOINT_KEY)):
        logger.info("%s: written before weights were hashed, kept unverified (--force retrains "
                    "it verifiably)", paths.checkpoint)
    return None


def plan(grid: Grid, fingerprints: dict[str, str], force: bool = False,
         keep_stopped: bool = False) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(records of experiments done before, queue of experiments to run). keep_stopped: runs
    a scheduler stopped early count as done (the same scheduler runs the grid again)."""
    if force:
        return {}, list(grid.expids)
    previous = previous_statuses(grid.config_dir)
    lines = latest_results(results_path(grid.config_dir), fingerprints)
    done, queue = {}, []
    for expid in grid.expids:
        line, before = lines.get(expid), previous.get(expid, OK)
        if line is None or _needs_retry(before):
            queue.append(expid)
            continue
        if _was_stopped(before) and not keep_stopped:
            logger.info("%s was stopped early by a scheduler: it trains on to its end", expid)
            queue.append(expid)
            continue
        problem = checkpoint_problem(RunPaths(grid.params(expid)), line)
        if problem:
            logger.warning("%s runs again: %s", expid, problem)
            queue.append(expid)
            continue
        done[expid] = {"expid": expid, "status": STOPPED_BEFORE if _was_stopped(before)
                       else DONE_BEFORE, "seconds": None, "val": line["val"]}
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


def finish_record(config_dir: Path | str, expid: str, returncode: int | None,
                  lines_before: Mapping[str, int], seconds: float | None) -> dict[str, Any]:
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


class GridRuns:
    """The bookkeeping of one tuner call's runs: the hooks every executor calls
    (src/tuning/executor.py). It refuses to start an experiment another live process trains,
    records how each run ended (writing the result line when the executor hands the result
    back) and logs the grid's progress as runs end."""

    def __init__(self, config_dir: Path | str, queue: list[str],
                 log_paths: dict[str, Path] | None = None,
                 lock_paths: dict[str, Path] | None = None) -> None:
        self.config_dir, self.total = config_dir, len(queue)
        self.log_paths, self.lock_paths = log_paths or {}, lock_paths or {}
        self.lines_before = _line_counts(config_dir)
        self.records, self.running = {}, set()
        self.start = time.monotonic()

    def check(self, expid: str) -> str | None:
        lock = self.lock_paths.get(expid)
        busy = holder(lock) if lock else None
        deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
        while busy and time.monotonic() < deadline:
            logger.info("%s is being trained by %s: waiting for it to stop", expid, describe(busy))
            time.sleep(2)
            busy = holder(lock)
        if busy:
            return f"failed (busy: {describe(busy)} is training it)"
        if _line_counts(self.config_dir).get(expid, 0) > self.lines_before.get(expid, 0):
            return DONE_BEFORE  # the process waited for (run_expid.py by hand) finished it
        # a run killed while saving leaves its temporary checkpoint or training state
        for name in (f"{expid}{partial}.{kind}" for partial in ("", ".partial")
                     for kind in ("model", "state")) if lock else ():
            for tmp in leftovers(Path(lock).parent / name):
                logger.info("Removing %s left by an interrupted run", tmp)
                tmp.unlink(missing_ok=True)
        return None

    def started(self, expid: str) -> None:
        self.running.add(expid)

    def finished(self, ended: Ended) -> None:
        self.running.discard(ended.expid)
        record = self.records[ended.expid] = self.record(ended)
        logger.info("%s %s%s", ended.expid, record["status"],
                    f", on {ended.where}" if ended.where else "")
        logger.info("%s", self.progress())

    def record(self, ended: Ended) -> dict[str, Any]:
        """The record of a run that ended (see Ended): the executor's verdict, or the result it
        handed back (its line appended here), or what the run wrote itself."""
        expid = ended.expid
        if ended.status:
            lines = [r for r in read_results(results_path(self.config_dir))
                     if r["exp_id"] == expid] if ended.status == DONE_BEFORE else []
            val = lines[-1]["val"] if lines else {}
            return {"expid": expid, "status": ended.status, "seconds": ended.seconds, "val": val}
        if ended.result is not None:
            result = ended.result
            append_result(self.config_dir, expid, result["dataset_id"], result["val"],
                          argv=result["argv"], fingerprint=result["fingerprint"],
                          run_id=result["run"], weights=result.get("weights"))
            if result.get("stopped"):
                logger.info("%s: %s", expid, result["stopped"])
            return {"expid": expid, "status": STOPPED if result.get("stopped") else OK,
                    "seconds": ended.seconds, "val": result["val"]}
        record = finish_record(self.config_dir, expid, ended.returncode, self.lines_before,
                               ended.seconds)
        if ended.returncode is not None and ended.returncode < 0 and expid in self.log_paths:
            _note_in_log(self.log_paths[expid], f"the run was {record['status'][8:-1]}")
        return record

    def interrupted(self, ended: Ended) -> None:
        """The record of a run cut short by Ctrl-C: interrupted, unless it finished as the
        interrupt came."""
        record = None
        if ended.result is not None:
            record = self.record(ended)
        elif ended.returncode is not None:  # a process: it may have written its line
            record = finish_record(self.config_dir, ended.expid, ended.returncode,
                                   self.lines_before, ended.seconds)
        if record is None or record["status"] not in (OK, STOPPED):
            record = {"expid": ended.expid, "status": INTERRUPTED, "seconds": ended.seconds,
                      "val": {}}
            if ended.returncode is None and ended.expid in self.log_paths:
                _note_in_log(self.log_paths[ended.expid], "the run was cancelled: the tuner "
                             "was interrupted")
        self.records[ended.expid] = record

    def progress(self) -> str:
        """One line: how far the grid is, and when it should be done at the pace so far."""
        ended = list(self.records.values())
        stopped = sum(r["status"] == STOPPED for r in ended)
        done = sum(r["status"] == OK for r in ended) + stopped
        failed = len(ended) - done
        queued = self.total - len(ended) - len(self.running)
        elapsed = time.monotonic() - self.start
        left = len(self.running) + queued
        eta = f", ETA {_duration(elapsed / len(ended) * left)}" if ended and left else ""
        return (f"grid: {done} done{f' ({stopped} stopped early)' if stopped else ''}, "
                f"{failed} failed, {len(self.running)} running, {queued} queued; "
                f"{_duration(elapsed)} elapsed{eta}")


def run_queue(config_dir: Path | str, queue: list[str], gpus: Iterable[int],
              log_paths: dict[str, Path] | None = None, lock_paths: dict[str, Path] | None = None,
              executor: Executor | None = None,
              fresh: bool = False) -> tuple[dict[str, dict[str, Any]], bool]:
    """Run each expid of queue on the executor (default: the slots of gpus). Returns
    ({expid: record}, interrupted); a record has expid, status, seconds and val (the metrics
    of the run's result line)."""
    executor = executor or LocalSlots(gpus)
    spec = RunSpec(str(config_dir), RUN_EXPID, fresh=fresh, tuner_pid=os.getpid())
    runs = GridRuns(config_dir, queue, log_paths, lock_paths)
    interrupted, stopped, not_started = executor.run(spec, queue, runs)
    for ended in stopped:
        runs.interrupted(ended)
    for expid in not_started:
        runs.records[expid] = {"expid": expid, "status": NOT_STARTED, "seconds": None, "val": {}}
    return runs.records, interrupted


# --- the whole run -------------------------------------------------------------------------------
def expand_grid(tuner_yaml: Path | str) -> tuple[str, list[str]]:
    """Check the tuner config and write its grid folder; (config_dir, expids). For callers
    that only need the folder (tests, the item-embedding protocol)."""
    grid = expand(tuner_yaml)
    grid.write()
    return str(grid.config_dir), grid.expids


def tune(tuner_yaml: Path | str, gpus: Iterable[int] = (-1,), force: bool = False,
         executor: Executor | None = None,
         check_only: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """Check, lock, write, plan, run, summarise, on the executor (default: the slots of gpus
    on this machine). Raises GridFailed naming failed expids, KeyboardInterrupt (after
    writing the summary) when interrupted. check_only: stop after the checks (config keys,
    every grid point's values, the data files, the slots or nodes), writing no grid folder."""
    grid = expand(tuner_yaml)
    if executor is None:
        check_gpus(gpus)  # before the data is read: a wrong --gpu is answered at once
        executor = LocalSlots(gpus)
    logger.info("Grid of %s: %d experiment(s)", tuner_yaml, len(grid.expids))
    try:
        validate_grid_data(grid)
        executor.check(grid)
        if check_only:
            print(f"OK: {tuner_yaml}: {len(grid.expids)} experiment(s); config, values and data "
                  f"checked; nothing trained, no grid folder written")
            return str(grid.config_dir), []
        grid.config_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(grid.config_dir / ".tuner.lock", f"the grid {grid.config_dir}",
                      fix="wait for that tuner to finish, or stop it (Ctrl-C) and rerun"):
            grid.write()
            signatures = {}
            fingerprints = {e: fingerprint_record(grid.params(e), signatures)["fingerprint"]
                            for e in grid.expids}
            done, queue = plan(grid, fingerprints, force, keep_stopped=bool(executor.scheduler))
            paths = {e: RunPaths(grid.params(e)) for e in queue}
            records, interrupted = run_queue(grid.config_dir, queue, list(gpus),
                                             log_paths={e: p.log for e, p in paths.items()},
                                             lock_paths={e: p.lock for e, p in paths.items()},
                                             executor=executor, fresh=force)
            records.update(done)
            values = {e: {k: grid.params(e).get(k) for k in grid.varied} for e in grid.expids}
            rows, path = write_summary(grid.config_dir, grid.expids, records, values,
                                       grid.varied)
    finally:
        executor.close()
    print(format_table(rows, grid.varied))
    print(f"summary: {path}; result lines: {results_path(grid.config_dir)}")
    print(f"report: python -m src.report --config {grid.config_dir} writes "
          f"reports/{grid.config_dir.name}/index.html (or run the tuner with --report)")
    if interrupted:
        print("Interrupted: rerun the same command to run the unfinished experiments",
              file=sys.stderr)
        raise KeyboardInterrupt
    failed = [r["expid"] for r in rows if r["status"] not in NOT_FAILED]
    if failed:
        log_folder = RunPaths(grid.params(failed[0])).folder
        raise GridFailed(f"{len(failed)} of {len(rows)} run(s) failed: {', '.join(failed)}. "
                         f"Fix: read their logs ({log_folder}/<expid>.log), then rerun the same "
                         f"command to retry only these")
    return str(grid.config_dir), rows
