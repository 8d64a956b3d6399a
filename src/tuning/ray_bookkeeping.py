"""The Tune callback of a grid on Ray (src/tuning/ray_runner.py): it turns trial events into
the bookkeeping's hooks (started, finished) and makes each run's Ended from its own end or,
for a run the scheduler stopped, from its last reports. It subclasses a Ray class, so this
module imports Ray: the runner imports it only when a grid runs on Ray."""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ray import tune

from .executor import Ended
from .ray_trial import EVALUATION

if TYPE_CHECKING:
    from ray.tune.experiment import Trial
    from .executor import Hooks

logger = logging.getLogger(__name__)


class Bookkeeping(tune.Callback):
    """Runs in the driver's main thread, between Tune's steps."""

    def __init__(self, hooks: Hooks, argv: dict[str, list[str]]) -> None:
        self.hooks, self.argv = hooks, argv
        self.started, self.ended = {}, set()
        self.final, self.best, self.last = {}, {}, {}

    def running(self) -> list[str]:
        return [e for e in self.started if e not in self.ended]

    def seconds(self, expid: str) -> float:
        return time.time() - self.started[expid]

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        expid = trial.config["expid"]
        if expid not in self.started:
            self.started[expid] = time.time()
            self.hooks.started(expid)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        expid = trial.config["expid"]
        if "returncode" in result:  # the run's own end
            self.final[expid] = result
        elif EVALUATION in result:
            self.last[expid] = result
            if result["checkpoint"]:
                self.best[expid] = result

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial,
                         **info: Any) -> None:
        expid = trial.config["expid"]
        self.final.pop(expid, None)  # a result of the lost attempt is not the run's
        logger.warning("%s: its worker process or node was lost (%s); Ray Tune retries it "
                       "(failure %d, at most %d retries), from its training state", expid,
                       _error_line(trial), trial.run_metadata.num_failures,
                       trial.max_failures)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        expid = trial.config["expid"]
        self.ended.add(expid)
        self.hooks.finished(self._ended(expid))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        expid = trial.config["expid"]
        self.ended.add(expid)
        logger.error("%s: %s, %d time(s); no retry left (--retries %d)", expid,
                     _error_line(trial), trial.run_metadata.num_failures, trial.max_failures)
        self.hooks.finished(Ended(expid, seconds=self.seconds(expid),
                                  status=f"failed (Ray: {_error_type(trial)})"))

    def _ended(self, expid):
        seconds, final = self.seconds(expid), self.final.get(expid)
        if final is not None:
            result = None
            if final["returncode"] == 0:
                result = dict(final["result"], argv=self.argv[expid])
            return Ended(expid, seconds=seconds, returncode=final["returncode"],
                         result=result, where=final["where"])
        # ended without its own end: the scheduler stopped it at its last report
        best, last = self.best.get(expid), self.last.get(expid)
        if best is None:
            return Ended(expid, seconds=seconds, status="failed (stopped by the scheduler "
                         "before its first checkpoint)")
        stopped = (f"stopped early by ASHA after evaluation {last[EVALUATION]} (step "
                   f"{last['step']}); it keeps its best checkpoint (evaluation "
                   f"{best[EVALUATION]}, AUC {best['val']['AUC']:.6f}) and training state")
        result = {k: best.get(k) for k in ("val", "fingerprint", "run", "dataset_id",
                                            "weights")}
        return Ended(expid, seconds=seconds, returncode=0, where=last["where"],
                     result=dict(result, argv=self.argv[expid], stopped=stopped))


def _error_line(trial):
    """The first line of the trial's latest failure, from Tune's error file."""
    error = trial.error_file
    if not error or not os.path.exists(error):
        return "no error message"
    with open(error, errors="replace") as f:
        latest = f.read().split("Failure # ")[-1].splitlines()[1:]  # after its header line
    lines = [line.strip() for line in latest if line.strip()]
    return lines[0][:300] if lines else "no error message"


def _error_type(trial):
    """The class of the trial's latest failure (ActorDiedError for a lost worker or node)."""
    try:
        import cloudpickle
        with open(trial.pickled_error_file, "rb") as f:
            return type(cloudpickle.load(f)).__name__
    except Exception:  # no such file, or one that does not unpickle here: say no more
        return "error"
