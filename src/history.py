"""A run's evaluation history: one CSV row per evaluation, written as training goes, and
optionally the same numbers as TensorBoard scalars.

`<expid>.history.csv` sits beside the run's log (RunPaths.history). The trainer writes each row
before it saves the training state of that evaluation (src/training/trainer.py, eval_step), so a
resumed run, which continues from its last state, finds every row up to that state on disk:
it keeps those, drops any written after it (evaluations of the killed run that are redone now)
and appends. A fresh start truncates the file. The report (src/report) reads it back.
"""
from __future__ import annotations

import csv
import importlib.util
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import ConfigError

logger = logging.getLogger(__name__)

# train_loss is the objective (BCE + regularisation penalty); train_penalty, its penalty part,
# came later: older files lack the column and read back None there
FIELDS = ["epoch", "step", "train_loss", "val_AUC", "val_logloss", "lr", "samples_per_s",
          "elapsed_s", "train_penalty"]
# TensorBoard tag of each column (epoch and step are the axes, not scalars)
TENSORBOARD_TAGS = {"val_AUC": "valid/AUC", "val_logloss": "valid/logloss",
                    "train_loss": "train/loss", "train_penalty": "train/penalty", "lr": "train/lr",
                    "samples_per_s": "train/samples_per_s"}


def require_tensorboard(params: dict[str, Any]) -> None:
    """`tensorboard: True` needs the optional package: refused before any training."""
    if params.get("tensorboard") and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"tensorboard=True in expid {params.get('model_id')}, but the "
                          f"tensorboard package is not installed. Fix: pip install -r "
                          f"requirements-tensorboard.txt, or set tensorboard: False")


def read_history(path: Path | str, until_step: int | None = None) -> list[dict[str, Any]]:
    """The rows of a history file as dicts of numbers (None for an empty cell), in file order;
    [] when there is no file. until_step keeps only the rows of evaluations up to that step."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            try:
                row = {k: (float(raw[k]) if raw.get(k) not in (None, "") else None)
                       for k in FIELDS}
            except ValueError:  # a line cut short by a crash mid-write: the rest is unusable
                logger.warning("%s: unreadable row after step %s ignored", path,
                               rows[-1]["step"] if rows else "-")
                break
            if row["step"] is None:
                continue
            row["epoch"], row["step"] = int(row["epoch"]), int(row["step"])
            if until_step is not None and row["step"] > until_step:
                break
            rows.append(row)
    return rows


def _cell(value):
    return "" if value is None else repr(float(value)) if isinstance(value, float) else value


def _write_rows(path, rows):
    """Header and rows to path through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: _cell(row[k]) for k in FIELDS} for row in rows)


class RunHistory:
    """history = RunHistory(paths.history, resume_step), handed to the Trainer in its
    RunContext; the trainer calls start() when training (re)starts, pause() when an
    evaluation begins and record() with its numbers; close() at the end. resume_step is the
    step of the training state the run continues from (None: a fresh start)."""

    def __init__(self, path: Path | str, resume_step: int | None = None,
                 tensorboard_dir: Path | str | None = None) -> None:
        self.path = Path(path)
        kept = read_history(self.path, until_step=resume_step) if resume_step is not None else []
        if resume_step is not None and (not kept or kept[-1]["step"] != resume_step):
            logger.warning("%s has no row for step %d, where the run resumes: earlier "
                           "evaluations are missing from it", self.path, resume_step)
        _write_rows(self.path, kept)
        # elapsed_s counts on from the kept rows: the time a killed run spent after its last
        # evaluation is lost with the work it did
        self._elapsed_before = kept[-1]["elapsed_s"] if kept else 0.0
        self._started = self._interval_start = time.monotonic()
        self._train_seconds = 0.0
        self._writer = (_tensorboard_writer(tensorboard_dir, resume_step)
                        if tensorboard_dir else None)

    def start(self) -> None:
        """Training (re)starts: the clock of the next interval runs from now."""
        self._interval_start = time.monotonic()

    def pause(self) -> None:
        """An evaluation begins: the interval's training time ends here."""
        self._train_seconds = time.monotonic() - self._interval_start

    def record(self, epoch: int, step: int, train_loss: float, rows: int, metrics: dict[str, float],
               lr: float, train_penalty: float | None = None) -> None:
        """One evaluation: training loss (its regularisation penalty part: train_penalty) and
        rows since the previous one, the validation metrics, the learning rate; appended and
        flushed at once."""
        row = {"epoch": epoch, "step": step, "train_loss": train_loss,
               "train_penalty": train_penalty,
               "val_AUC": metrics.get("AUC"), "val_logloss": metrics.get("logloss"), "lr": lr,
               "samples_per_s": rows / self._train_seconds if self._train_seconds > 0 else None,
               "elapsed_s": self._elapsed_before + time.monotonic() - self._started}
        row = {k: (float(v) if v is not None and k not in ("epoch", "step") else v)
               for k, v in row.items()}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=FIELDS).writerow({k: _cell(row[k]) for k in FIELDS})
        if self._writer is not None:
            for column, tag in TENSORBOARD_TAGS.items():
                if row[column] is not None:
                    self._writer.add_scalar(tag, row[column], global_step=step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class NoHistory:
    """What a trainer records to when its run keeps no history (benchmarks, tests)."""

    def start(self) -> None:
        pass

    def pause(self) -> None:
        pass

    def record(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _tensorboard_writer(folder, resume_step):
    """A SummaryWriter for folder: a fresh run empties it; a resumed run hides the events
    after its state (purge_step), which it writes again."""
    from torch.utils.tensorboard import SummaryWriter
    folder = Path(folder)
    if resume_step is None and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(str(folder), purge_step=None if resume_step is None
                         else resume_step + 1)
