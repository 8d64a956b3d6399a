"""The training loop of our models: Trainer(model, options, run).fit(train, valid).

It keeps FuxiCTR's semantics by default (evaluate every `eval_steps` or once per epoch; each
evaluation without improvement counts towards early_stop_patience and divides the learning
rate by 10; best weights saved and reloaded at the end) and adds what FuxiCTR's loop lacks:
- a hard stop on a NaN loss;
- checkpoints written atomically with the config and fingerprint of the run that made them
  (checkpoints.py);
- the training state (weights, optimizer, schedule, epoch and batch, random generators, best
  metric) saved at every evaluation, so a killed run continues where it was;
- learning-rate schedules (schedules.py), weight decay, gradient accumulation, max_steps;
- the run's evaluation history (src/history.py), kept across a resume, and callbacks that
  watch each evaluation (a scheduler's reporter);
- progress lines with rows/s and ETA also where stderr is not a terminal.
The model provides scores(), batch_loss() and get_labels() (src/models/base.py).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from fuxictr.utils import Monitor
from torch import nn

from ..errors import ConfigError, UserError
from ..progress import Progress
from . import checkpoints, evaluation
from .options import RunContext, TrainingOptions
from .schedules import EarlyStopping, LearningRateSchedule
from .state_hash import CHECKPOINT_KEY, STATE_KEY, state_hash

if TYPE_CHECKING:
    from ..data.loader import MMCTRDataLoader

logger = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class RunStopped(UserError):
    """Training was asked to stop (its tuner is gone); the training state is kept."""


def make_optimizer(name: str, parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
                   lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """torch.optim.<name> (FuxiCTR's lower-case "adam" accepted) with a weight decay."""
    name = "Adam" if str(name).lower() == "adam" else str(name)
    optimizer_class = getattr(torch.optim, name, None)
    if not isinstance(optimizer_class, type) or not issubclass(optimizer_class,
                                                               torch.optim.Optimizer):
        raise ConfigError(f"optimizer={name!r} is not an optimizer of torch.optim. Fix: use "
                          f"adam, AdamW, SGD, ...")
    return optimizer_class(parameters, lr=lr, weight_decay=float(weight_decay or 0.0))


class Trainer:
    """Trains one model for one run. Public, for callbacks and benchmarks: model, options,
    run, optimizer, schedule, stopping, and the counters epoch (0-based), batch_index (in the
    epoch) and total_steps (training steps done)."""

    def __init__(self, model: nn.Module, options: TrainingOptions,
                 run: RunContext | None = None) -> None:
        """run: None for a trainer that only steps (benchmarks); fit needs one."""
        self.model, self.options = model, options
        self.run = run or RunContext(checkpoint=None)
        self.optimizer = make_optimizer(options.optimizer, model.parameters(),
                                        options.learning_rate, options.weight_decay)
        self.schedule = LearningRateSchedule(
            options.learning_rate, options.lr_scheduler, options.lr_decay_factor,
            options.lr_patience, options.warmup_steps, options.min_lr)
        self.stopping = EarlyStopping(Monitor(kv=options.monitor), options.monitor_mode,
                                      options.early_stop_patience)
        # counters, also for callers that call train_step without fit (benchmarks)
        self.epoch = self.batch_index = self.total_steps = 0
        self.eval_steps = options.eval_steps
        self.stop_training = False
        self.last_auc = None
        # the hash of the checkpoint last saved, or after fit of the best one, loaded back
        self.weights_sha256 = None
        # training loss, rows and regularisation penalty (part of the loss) since the last
        # evaluation
        self._interval = (None, 0, None)
        self._resume_batch = -1     # last batch done in the resumed epoch
        self._epoch_rng = None      # numpy's state when the current epoch's shuffle began

    # ---- what callbacks read ----
    @property
    def evaluation_number(self) -> int:
        """How many evaluations this run has made (a resumed run counts on)."""
        return self.total_steps // self.eval_steps

    @property
    def checkpoint_is_current(self) -> bool:
        """The checkpoint holds the weights of the evaluation just made."""
        return self.stopping.stopping_steps == 0 or not self.options.save_best_only

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # ---- the loop ----
    def fit(self, train_loader: MMCTRDataLoader, valid_loader: MMCTRDataLoader,
            resume: dict | None = None) -> None:
        """Train; resume is a training state saved by an earlier, interrupted run of the same
        experiment (see save_training_state), or None to start from scratch. The model ends
        with the best checkpoint's weights."""
        if not self.run.checkpoint:
            raise TypeError("Trainer.fit needs a RunContext naming the checkpoint to write")
        self.valid_loader = valid_loader
        self.steps_per_epoch = len(train_loader)
        self.eval_steps = self.options.eval_steps or self.steps_per_epoch
        if self.options.max_steps:  # a capped run still ends with an evaluation and a checkpoint
            self.eval_steps = min(self.eval_steps, self.options.max_steps)
        self.schedule.total_steps = (self.options.max_steps
                                     or self.options.epochs * self.steps_per_epoch)
        if resume is not None:
            self.restore_training_state(resume)
        logger.info("Start training: %d batches/epoch", self.steps_per_epoch)
        while self.epoch < self.options.epochs and not self.stop_training:
            logger.info("************ Epoch=%d start ************", self.epoch + 1)
            self.train_epoch(train_loader)
            if self.stop_training:
                break
            logger.info("************ Epoch=%d end ************", self.epoch + 1)
            self.epoch += 1
        self.save_training_state(finished=True)
        logger.info("Training finished. Load best model: %s", self.run.checkpoint)
        saved = checkpoints.load_weights(self.model, self.run.checkpoint, self.model.device)
        self.weights_sha256 = saved[CHECKPOINT_KEY]

    def train_epoch(self, train_loader: MMCTRDataLoader) -> None:
        self.model.train()
        # loss, rows and time since the last evaluation count from the epoch's start
        train_loss, train_penalty, loss_steps, loss_rows = 0.0, 0.0, 0, 0
        self.run.history.start()
        skip = self._resume_batch + 1
        if skip:  # the resumed epoch: same shuffle as before the interruption, done batches skipped
            np.random.set_state(self._epoch_rng)
            logger.info("Resuming epoch %d at batch %d", self.epoch + 1, skip + 1)
        else:
            self._epoch_rng = np.random.get_state()  # the loader shuffles from this state
        self._resume_batch = -1
        progress = Progress(self.steps_per_epoch, f"epoch {self.epoch + 1}",
                            interactive=None if self.options.verbose else False)
        progress.update(skip)
        self.optimizer.zero_grad()
        labels = self.model.feature_map.labels[0]
        for batch_index, batch_data in enumerate(train_loader):
            if batch_index < skip:
                continue
            self.batch_index = batch_index
            self.total_steps += 1
            reason = self.run.should_stop() if self.run.should_stop else None
            if reason:
                raise RunStopped(f"{reason}; the training state at the last evaluation is "
                                 f"kept in {self.run.state_path}, a rerun continues from it")
            loss = self.train_step(batch_data)
            train_loss += loss
            train_penalty += float(self.model.last_penalty)
            loss_steps += 1
            rows = len(batch_data[labels])
            loss_rows += rows
            progress.update(rows=rows, loss=train_loss / loss_steps, lr=f"{self.current_lr():.2e}",
                            last_valid_AUC=self.last_auc)
            if self.total_steps % self.eval_steps == 0:
                logger.info("Train loss: %.6f", train_loss / loss_steps)
                # for the history
                self._interval = (train_loss / loss_steps, loss_rows, train_penalty / loss_steps)
                train_loss, train_penalty, loss_steps, loss_rows = 0.0, 0.0, 0, 0
                self.eval_step()
            if self.options.max_steps and self.total_steps >= self.options.max_steps:
                logger.info("Reached max_steps=%d", self.options.max_steps)
                self.stop_training = True
            if self.stop_training:
                break
        progress.close()

    def train_step(self, batch_data: dict) -> float:
        """One batch: loss, backward; an optimizer step at the scheduled rate every
        accumulation_steps batches (counted by batch_index). Returns the batch's loss."""
        loss = self.model.batch_loss(batch_data)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss is {loss_value} at epoch {self.epoch + 1}, batch "
                f"{self.batch_index + 1}: training diverged. Fix: lower learning_rate, or check "
                f"the inputs for NaN/inf (python -m src.validation)")
        accumulation = self.options.accumulation_steps
        (loss / accumulation).backward()
        if (self.batch_index + 1) % accumulation == 0:
            lr = self.schedule.rate(self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            nn.utils.clip_grad_norm_(self.model.parameters(), self.options.max_gradient_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss_value

    # ---- evaluations ----
    def evaluate(self, loader: MMCTRDataLoader, metrics: list | None = None) -> dict:
        """The metrics (default: the config's `metrics`) of the model on a labelled loader."""
        return evaluation.evaluate(self.model, loader, metrics or self.options.metrics,
                                   self.options.verbose)

    def eval_step(self) -> None:
        logger.info("Evaluation @epoch %d - batch %d: ", self.epoch + 1, self.batch_index + 1)
        self.run.history.pause()
        lr = self.current_lr()  # the rate of the steps just done, before a plateau decay
        # AUC and logloss always, for the history, beside what the monitor needs
        metrics = list(dict.fromkeys(self.stopping.monitor.get_metrics() + ["AUC", "logloss"]))
        val_logs = self.evaluate(self.valid_loader, metrics=metrics)
        self.last_auc = float(val_logs["AUC"]) if "AUC" in val_logs else None
        self.checkpoint_and_earlystop(val_logs)
        # before the state: a run resumed from this state finds this row on disk
        loss, rows, penalty = self._interval
        self.run.history.record(self.epoch + 1, self.total_steps, loss, rows, val_logs, lr,
                                train_penalty=penalty)
        self.save_training_state()
        for callback in self.run.callbacks:
            callback(self, val_logs)
        self.run.history.start()
        self.model.train()

    def checkpoint_and_earlystop(self, logs: dict) -> None:
        """Count an evaluation: best checkpoint, learning-rate plateau, early stop."""
        improved = self.stopping.evaluated(logs)
        if improved and self.options.save_best_only:
            logger.info("Save best model: monitor(%s)=%.6f", self.stopping.mode,
                        self.stopping.best)
            self.save_weights()
        self.schedule.evaluated(improved)
        if self.stopping.should_stop:
            self.stop_training = True
            logger.info("********* Epoch=%d early stop *********", self.epoch + 1)
        if not self.options.save_best_only:
            self.save_weights()

    def save_weights(self) -> None:
        self.weights_sha256 = checkpoints.save_weights(self.model, self.run.checkpoint,
                                                       self.run.run_info)

    # ---- resuming ----
    def save_training_state(self, finished: bool = False) -> None:
        """Everything a rerun needs to continue exactly where this evaluation left off."""
        if not self.run.state_path:
            return
        weights = self.model.state_dict()
        state = {"model": weights, STATE_KEY: state_hash(weights),
                 "optimizer": self.optimizer.state_dict(),
                 "epoch": self.epoch, "batch": self.batch_index,
                 "total_steps": self.total_steps, "finished": finished,
                 "epoch_rng": (checkpoints.numpy_state_plain(self._epoch_rng)
                               if self._epoch_rng is not None else None),
                 **checkpoints.random_states(self.model.device),
                 "best_metric": float(self.stopping.best),
                 "stopping_steps": self.stopping.stopping_steps,
                 "plateau_steps": self.schedule.plateau_steps,
                 "plateau_lr": self.schedule.plateau_lr,
                 "last_auc": self.last_auc, "run_info": checkpoints.plain(self.run.run_info)}
        checkpoints.atomic_save(state, self.run.state_path, what="training state")

    def restore_training_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.total_steps = state["epoch"], state["total_steps"]
        self.stopping.best = state["best_metric"]
        self.stopping.stopping_steps = state["stopping_steps"]
        self.schedule.plateau_steps = state["plateau_steps"]
        self.schedule.plateau_lr, self.last_auc = state["plateau_lr"], state["last_auc"]
        self.batch_index = state["batch"]
        if state["finished"]:
            self.stop_training = True
        elif state["batch"] + 1 >= self.steps_per_epoch:  # the evaluation ended its epoch
            self.epoch += 1
        else:
            self._resume_batch = state["batch"]
            self._epoch_rng = checkpoints.numpy_state(state["epoch_rng"])
        checkpoints.restore_random_states(state, self.model.device)
        logger.info("Resumed from the training state of %s: epoch %d, step %d, best %s %.6f",
                    self.run.state_path, self.epoch + 1, self.total_steps,
                    self.stopping.monitor.get_metrics(), self.stopping.best)
