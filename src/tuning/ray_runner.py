"""The Ray executor of a grid (see src/tuning/executor.py): each grid point is a Ray Tune
trial that runs somewhere in a Ray cluster with --gpus-per-run GPUs and --cpus-per-run CPUs.

How, and why:
- A trial trains in its own Ray worker process (one actor per trial, never reused) by calling
  src.experiment.train there (run_param_tuner.py passes it in: the experiment sits above the
  tuner), and hands its result back; this driver writes the result line, once, into the
  result file on the machine that ran the tuner. The driver sends each trial
  its params and this package (a Ray runtime_env), so nodes need the same Python environment,
  the data and model_root, not the repository or the grid folder.
- A trial runs in the tuner's current folder (the same path on each node) when relative paths
  are used: relative paths of configs start there, as they do for run_expid.py.
- Before anything is written, every node that can take a run is asked what it sees: each data
  file (with the same size and parquet footer as here) and each model_root (a file written
  there by the driver must be visible from the node, and the node must be able to write):
  src/tuning/ray_nodes.py.
- Faults: a run that fails for its own reasons (bad config, NaN loss, a bug) ends its trial
  normally with the exit status run_expid.py would have (2, or 1 for a crash) and is never
  retried. Only a lost worker process or node fails the trial in Ray Tune's eyes; Tune then
  restarts it (FailureConfig max_failures = --retries) where resources are free, and the run
  continues from its training state on the shared model_root.
- --scheduler asha: each evaluation is reported to Tune (validation AUC, at evaluation number
  total_steps // eval_steps, which a resumed run continues); ASHA may stop a trial at a report,
  after that evaluation's checkpoint and training state were saved.
- Ctrl-C or SIGTERM: Tune's own SIGINT handler is off, so KeyboardInterrupt leaves Tuner.fit at
  once; Ray is then shut down, and the running trials (actors of this driver's job) die with it.
Parts: the node check (ray_nodes.py), the Tune callback that keeps the books
(ray_bookkeeping.py), what runs in a trial's worker (ray_trial.py). Ray is imported only by
these modules, and only when a grid runs on Ray.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..params import RunPaths
from .executor import Ended
from .ray_nodes import check_nodes, node_name
from .ray_trial import EVALUATION, run_trial
from .slots import StopSignalsAsInterrupt

if TYPE_CHECKING:
    from .executor import Hooks, RunSpec
    from .grid import Grid

logger = logging.getLogger(__name__)

LOCAL = "local"
TRIAL_SCHEDULERS = ("asha",)
CONNECT_SECONDS = 10  # a head node that does not accept a connection by then is not there
# Ray Tune settings for the driver while a grid runs: our own Ctrl-C handling; Tune's older
# console output, which verbose=0 silences (the newer one prints a table even then).
TUNE_ENVIRONMENT = {"TUNE_DISABLE_SIGINT_HANDLER": "1", "RAY_AIR_NEW_OUTPUT": "0"}


class RayRunner:
    """executor = RayRunner("auto" | "HOST:PORT" | "local", train, gpus_per_run=1,
    cpus_per_run=1, retries=1, scheduler=None | "asha", grace_period=1, reduction_factor=4).
    train: the function each trial calls (src.experiment.train), passed in by the entry script
    because the experiment sits above the tuner (tests/test_layers.py)."""

    def __init__(self, address: str, train: Callable[..., dict[str, Any]],
                 gpus_per_run: float = 1, cpus_per_run: float = 1, retries: int = 1,
                 scheduler: str | None = None, grace_period: int = 1,
                 reduction_factor: float = 4) -> None:
        problems = []
        host, _, port = (address or "").rpartition(":")
        if address and address.startswith("ray://"):
            problems.append(f"--ray {address}: a Ray Client address would run the grid's "
                            f"bookkeeping on the cluster, not here; run the tuner on a node of "
                            f"the cluster with --ray auto (or the head's HOST:PORT)")
        elif address not in (LOCAL, "auto") and not (host and port.isdigit()):
            problems.append(f"--ray {address}: expected auto, local or HOST:PORT (the head "
                            f"node's address, port 6379 by default)")
        if not gpus_per_run >= 0:
            problems.append(f"--gpus-per-run {gpus_per_run} must be >= 0")
        if not cpus_per_run > 0:
            problems.append(f"--cpus-per-run {cpus_per_run} must be > 0")
        if not (isinstance(retries, int) and retries >= 0):
            problems.append(f"--retries {retries} must be a whole number >= 0")
        if scheduler not in (None,) + TRIAL_SCHEDULERS:
            problems.append(f"--scheduler {scheduler}: use {' or '.join(TRIAL_SCHEDULERS)}")
        if not (isinstance(grace_period, int) and grace_period >= 1):
            problems.append(f"--grace-period {grace_period} must be a whole number >= 1")
        if not reduction_factor > 1:
            problems.append(f"--reduction-factor {reduction_factor} must be > 1")
        if problems:
            raise UserError(f"{'; '.join(problems)}. Fix: correct the option (python "
                            f"run_param_tuner.py --help)")
        self.address, self.scheduler, self.retries = address, scheduler, retries
        self.train = train
        self.resources = {"cpu": cpus_per_run, "gpu": gpus_per_run}
        self.grace_period, self.reduction_factor = grace_period, reduction_factor
        self.params, self.connected = {}, False

    # --- before anything is written ------------------------------------------------------
    def check(self, grid: Grid) -> None:
        """The scheduler's metric, the cluster, its resources and what each node sees."""
        self.params = {e: grid.params(e) for e in grid.expids}
        if self.scheduler:
            _require_auc_monitor(self.params)
        self._connect()
        check_nodes(self._nodes_that_fit(), self.params)

    def _connect(self):
        if self.address not in (LOCAL, "auto"):
            _require_reachable(self.address)
        if self.address == LOCAL:
            # A one-machine instance need not be reachable from the network: Ray then binds
            # its servers to the loopback interface. Read by Ray at import, so set first.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray
        package = str(Path(__file__).resolve().parents[1])  # src/, shipped to every node
        options = dict(logging_level=logging.WARNING, runtime_env={"py_modules": [package]})
        try:
            if self.address == LOCAL:
                ray.init(address=LOCAL, include_dashboard=False, **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"--ray {self.address}: cannot connect to a Ray cluster ({reason}). "
                            f"Fix: start one (`ray start --head` on one machine, `ray start "
                            f"--address HEAD:6379` on the others), pass its address, or use "
                            f"--ray local") from None
        self.connected = True

    def _nodes_that_fit(self):
        """The live nodes with the CPUs and GPUs of one run; refused if there is none."""
        import ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus, gpus = self.resources["cpu"], self.resources["gpu"]
        fit = [n for n in nodes if n["Resources"].get("CPU", 0) >= cpus
               and n["Resources"].get("GPU", 0) >= gpus]
        if not fit:
            have = "; ".join(f"{node_name(n)}: {n['Resources'].get('CPU', 0):g} CPU(s), "
                             f"{n['Resources'].get('GPU', 0):g} GPU(s)" for n in nodes)
            raise UserError(f"--ray {self.address}: no node has the {cpus:g} CPU(s) and {gpus:g} "
                            f"GPU(s) of one run ({have}). Fix: lower --cpus-per-run or "
                            f"--gpus-per-run (--gpus-per-run 0 trains on CPUs), or add such a "
                            f"node")
        return fit
    # --- the runs ------------------------------------------------------------------------
    def run(self, spec: RunSpec, queue: list[str],
            hooks: Hooks) -> tuple[bool, list[Ended], list[str]]:
        from ray import tune

        from .ray_bookkeeping import Bookkeeping  # it subclasses a Ray class
        queue = [e for e in queue if not _refused(e, hooks)]
        if not queue:
            return False, [], []
        gpu = 0 if self.resources["gpu"] > 0 else -1  # Ray sets CUDA_VISIBLE_DEVICES per run
        if spec.fresh:  # --force: from scratch; a retry after a lost node still resumes
            for expid in queue:
                RunPaths(self.params[expid]).state.unlink(missing_ok=True)
        params = {e: dict(self.params[e], gpu=gpu) for e in queue}
        job = {"cwd": os.getcwd(), "report": bool(self.scheduler), "train": self.train,
               "config_dir": str(spec.config_dir)}  # the owner of the runs' files
        argv = {e: [str(spec.run_expid), "--config", str(spec.config_dir), "--expid", e,
                    "--gpu", str(gpu)] for e in queue}
        book = Bookkeeping(hooks, argv)
        storage = tempfile.mkdtemp(prefix="tuner_ray_")
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(run_trial, params=params, job=job),
                                dict(self.resources)),
            param_space={"expid": tune.grid_search(queue)},
            tune_config=tune.TuneConfig(scheduler=self._scheduler(), reuse_actors=False,
                                        trial_name_creator=_trial_name,
                                        trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(name="grid", storage_path=storage, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=self.retries),
                                      callbacks=[book]))
        logger.info("Ray: %d run(s), each with %g CPU(s) and %g GPU(s)%s", len(queue),
                    self.resources["cpu"], self.resources["gpu"],
                    f", ASHA (grace period {self.grace_period}, reduction factor "
                    f"{self.reduction_factor})" if self.scheduler else "")
        interrupted = False
        try:
            with _environment(TUNE_ENVIRONMENT), StopSignalsAsInterrupt():
                try:
                    tuner.fit()
                except KeyboardInterrupt:
                    interrupted = True
                    logger.warning("Interrupted: cancelling %d running experiment(s)",
                                   len(book.running()))
                    self._disconnect()  # the job's actors, the running trials, end with it
        finally:
            shutil.rmtree(storage, ignore_errors=True)
        stopped = [Ended(e, seconds=book.seconds(e)) for e in book.running()]
        not_started = [e for e in queue if e not in book.started]
        if not interrupted and (stopped or not_started):  # Tune ended without them: a bug
            raise RuntimeError(f"Ray Tune ended with runs unfinished: {stopped + not_started}")
        return interrupted, stopped, not_started

    def _scheduler(self):
        if not self.scheduler:
            return None
        from ray.tune.schedulers import ASHAScheduler
        # max_t: runs end by their own epochs and early stopping, never by ASHA's budget
        return ASHAScheduler(time_attr=EVALUATION, metric="AUC", mode="max", max_t=10 ** 9,
                             grace_period=self.grace_period,
                             reduction_factor=self.reduction_factor)

    def close(self) -> None:
        self._disconnect()

    def _disconnect(self):
        if self.connected:
            import ray
            ray.shutdown()
            self.connected = False


# --- helpers of the driver ---------------------------------------------------------------
def _require_auc_monitor(params):
    """ASHA ranks runs by the validation AUC of each evaluation, which a run computes only when
    its monitor asks for it."""
    for expid, p in params.items():
        monitor = p.get("monitor", "AUC")
        names = list(monitor) if isinstance(monitor, dict) else [monitor]
        if "AUC" not in names:
            raise UserError(f"--scheduler asha ranks runs by validation AUC, but {expid} has "
                            f"monitor={monitor!r}. Fix: monitor: AUC in its model block, or run "
                            f"without --scheduler")


def _require_reachable(address):
    """HOST:PORT must accept a connection: ray.init would otherwise retry for minutes."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise UserError(f"--ray {address}: nothing answers there ({err.strerror or err}). Fix: "
                        f"start the head node (`ray start --head` prints its address) or "
                        f"correct the address; --ray auto finds the cluster of this machine"
                        ) from None


def _refused(expid, hooks):
    refusal = hooks.check(expid)
    if refusal:
        hooks.finished(Ended(expid, status=refusal))
    return bool(refusal)


def _trial_name(trial):
    return trial.config["expid"]


@contextlib.contextmanager
def _environment(values):
    """os.environ with values set for the block, as it was afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
