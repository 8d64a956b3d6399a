"""The local executor of a grid: one child process per slot (a GPU index, or -1 for the CPU).

It knows nothing of results: the tuner (src/tuning/tuner.py) decides what runs and reads what
came of it; this module starts commands, waits for them and stops them cleanly:
- each child is this same interpreter (sys.executable), never whatever `python` is on PATH;
- a GPU child sees only its GPU (CUDA_VISIBLE_DEVICES set to that one device, mapped through
  any list the tuner inherited) and is told `--gpu 0`; CPU children share the cores equally;
- Ctrl-C (or SIGTERM to the tuner) sends SIGTERM to the running children, SIGKILL after
  STOP_TIMEOUT_SECONDS (at once on a second Ctrl-C), and waits for all of them.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .executor import Ended

if TYPE_CHECKING:
    from .executor import Hooks, RunSpec
    from .grid import Grid

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 30  # how long a child may take to exit after SIGTERM before SIGKILL


def slot_environment(gpus: Sequence[int], slot: int,
                     base_env: Mapping[str, str] | None = None) -> tuple[dict[str, str], int]:
    """(environment, --gpu value) of the child run in slot: CPU runs sharing the machine get
    an equal share of its cores each (without a cap every torch process starts one thread per
    core and parallel runs slow each other down); a GPU run sees only its own GPU."""
    env = dict(os.environ if base_env is None else base_env)
    gpu = gpus[slot]
    if gpu < 0:
        cpu_slots = sum(1 for g in gpus if g < 0)
        if cpu_slots > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_slots))
        return env, -1
    inherited = env.get("CUDA_VISIBLE_DEVICES")
    visible = [d.strip() for d in inherited.split(",") if d.strip()] if inherited else None
    env["CUDA_VISIBLE_DEVICES"] = visible[gpu] if visible else str(gpu)
    return env, 0


class StopSignalsAsInterrupt:
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


def stop(processes: Iterable[subprocess.Popen]) -> None:
    """SIGTERM every running child, SIGKILL those still alive after STOP_TIMEOUT_SECONDS (or at
    once on a second Ctrl-C); wait for all of them."""
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


class LocalSlots:
    """The executor (src/tuning/executor.py) of runs on the slots of gpus, at most one run per
    slot at a time; each run is spec.argv(expid, gpu) in a child process that appends its own
    result line."""
    scheduler = None  # no early stopping: every run trains to its own end

    def __init__(self, gpus: Iterable[int]) -> None:
        self.gpus = list(gpus)

    def check(self, grid: Grid) -> None:
        """Nothing beyond the local checks: the GPU indices are checked before the data."""

    def close(self) -> None:
        pass

    def run(self, spec: RunSpec, queue: Iterable[str],
            hooks: Hooks) -> tuple[bool, list[Ended], list[str]]:
        queue = list(queue)
        free = list(range(len(self.gpus)))
        running = {}  # slot -> (job, process, start time)
        with StopSignalsAsInterrupt():
            try:
                while queue or running:
                    while queue and free:
                        job = queue.pop(0)  # an interrupt from here on leaves it "not started"
                        refusal = hooks.check(job)
                        if refusal:
                            hooks.finished(Ended(job, seconds=None, status=refusal))
                            continue
                        slot = free.pop(0)
                        env, gpu = slot_environment(self.gpus, slot)
                        logger.info("Start %s on %s", job, "the CPU" if gpu < 0 else
                                    f"GPU {env['CUDA_VISIBLE_DEVICES']}")
                        running[slot] = (job, subprocess.Popen(spec.argv(job, gpu), env=env),
                                         time.time())
                        hooks.started(job)
                    time.sleep(POLL_SECONDS)
                    for slot, (job, process, start) in list(running.items()):
                        if process.poll() is None:
                            continue
                        del running[slot]
                        free.append(slot)
                        hooks.finished(Ended(job, seconds=time.time() - start,
                                             returncode=process.returncode))
            except KeyboardInterrupt:
                logger.warning("Interrupted: stopping %d running experiment(s)", len(running))
                stop([process for _, process, _ in running.values()])
                stopped = [Ended(job, seconds=time.time() - start, returncode=process.returncode)
                           for job, process, start in running.values()]
                return True, stopped, queue
        return False, [], []
