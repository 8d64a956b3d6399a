"""What the tuner's bookkeeping (tuner.py) and an executor say to each other.

An executor runs the experiments of a grid somewhere; the bookkeeping decides what runs and
records what came of it (result lines, statuses, summary, exit code), the same for every
executor. Two exist: slots.LocalSlots (one process per GPU slot of this machine) and
ray_runner.RayRunner (a Ray cluster). A third (a batch scheduler, say) is one more module with:

    check(grid)                      refuse the grid before anything is written (raise UserError);
                                     called after the grid and its data passed the local checks
    run(spec, queue, hooks) -> (interrupted, stopped, not_started)
    close()                          release what check() or run() took (always called)
    scheduler                        None, or the name of an early-stopping scheduler ("asha")

run() starts the expids of queue (a list, in order) as its resources allow and calls
    hooks.check(expid) -> None, or why it must not start (another live process trains it);
                          before the expid starts (the slots: just before; Ray: all before
                          the first start); a refused expid is finished at once with
                          Ended(status=that reason)
    hooks.started(expid)
    hooks.finished(Ended(...))   once per expid that ended, whatever became of it
and returns (interrupted: bool, stopped: [Ended of runs cut short by the interrupt],
not_started: [expids never started]). Ctrl-C (KeyboardInterrupt) stops the running ones and
returns; it is never raised out of run().
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .grid import Grid


@dataclass
class RunSpec:
    """What every run of one tuner call does: train `expid` of config_dir (from scratch with
    fresh). argv() is the command line for executors that start processes; tuner_pid tells
    such a run who its tuner is, so that it stops itself if the tuner dies."""
    config_dir: str
    run_expid: Path
    fresh: bool = False
    tuner_pid: int = None

    def argv(self, expid: str, gpu: int) -> list[str]:
        return [sys.executable, "-u", str(self.run_expid), "--config", str(self.config_dir),
                "--expid", expid, "--gpu", str(gpu)] + (
                    ["--tuner-pid", str(self.tuner_pid)] if self.tuner_pid else []) + (
                    ["--fresh"] if self.fresh else [])


@dataclass
class Ended:
    """How one run ended, as its executor saw it.

    returncode: the run's exit status (0 for a clean end; negative: killed by that signal;
    None: it never ran or was cut off). result: the run's result when the executor hands it
    back instead of the run appending its own result line (the bookkeeping then writes the
    line): {"val": metrics, "fingerprint", "run", "dataset_id", "weights"}; with "stopped": why a
    scheduler ended it early (its best checkpoint and training state are kept).
    status: the executor's own verdict, which the bookkeeping takes as it is (a refusal, a
    run lost with its node after every retry). where: where it ran, for the log."""
    expid: str
    seconds: float = None
    returncode: int = None
    result: dict = None
    status: str = None
    where: str = ""


class Hooks(Protocol):
    """What an executor calls on the bookkeeping (tuner.GridRuns; module docstring)."""

    def check(self, expid: str) -> str | None: ...

    def started(self, expid: str) -> None: ...

    def finished(self, ended: Ended) -> None: ...


class Executor(Protocol):
    """What the tuner calls on an executor (module docstring): slots.LocalSlots,
    ray_runner.RayRunner."""
    scheduler: str | None

    def check(self, grid: Grid) -> None: ...

    def run(self, spec: RunSpec, queue: list[str],
            hooks: Hooks) -> tuple[bool, list[Ended], list[str]]: ...

    def close(self) -> None: ...
