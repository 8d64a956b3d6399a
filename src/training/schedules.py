"""What changes from evaluation to evaluation: the learning rate and the early-stop count.

Defaults keep FuxiCTR's behaviour: every evaluation without improvement counts towards
early_stop_patience and divides the learning rate by 10. The options add a plateau with
any factor and patience, a linear warm-up, a cosine decay to min_lr, and a floor.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..options import LR_SCHEDULES

if TYPE_CHECKING:
    from fuxictr.utils import Monitor

logger = logging.getLogger(__name__)


class LearningRateSchedule:
    """The rate of each training step. lr_scheduler: plateau (the rate times decay_factor
    after `patience` evaluations without improvement), cosine (from the base rate down to
    min_lr over total_steps) or none; all after a linear warm-up of warmup_steps."""

    def __init__(self, base_lr: float, lr_scheduler: str = "plateau", decay_factor: float = 0.1,
                 patience: int = 1, warmup_steps: int = 0, min_lr: float = 1.e-6) -> None:
        self.kind = str(lr_scheduler or "none").lower()
        if self.kind not in LR_SCHEDULES:
            raise ConfigError(f"lr_scheduler={lr_scheduler!r}: use plateau, cosine or none")
        self.base_lr = float(base_lr)
        self.decay_factor, self.patience = float(decay_factor), int(patience)
        self.warmup_steps, self.min_lr = int(warmup_steps or 0), float(min_lr)
        self.plateau_lr = self.base_lr  # the plateau rate, lowered at plateaus
        self.plateau_steps = 0          # evaluations without improvement since the last decay
        self.total_steps = 1            # the run's length, for the cosine; set by the trainer

    def rate(self, step: int) -> float:
        """The learning rate of training step `step` (1-based): linear warm-up over
        warmup_steps, then the plateau rate (decayed at plateaus), a cosine decay to min_lr over
        the whole run, or the base rate."""
        warm = min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0
        if self.kind == "cosine" and step > self.warmup_steps:
            span = max(1, self.total_steps - self.warmup_steps)
            done = min(1.0, (step - self.warmup_steps) / span)
            return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * done))
        base = self.plateau_lr if self.kind == "plateau" else self.base_lr
        return base * warm

    def evaluated(self, improved: bool) -> None:
        """An evaluation happened: a plateau counts towards the decay, an improvement resets."""
        if improved:
            self.plateau_steps = 0
        elif self.kind == "plateau":
            self.plateau_steps += 1
            if self.plateau_steps >= self.patience:
                self.plateau_steps = 0
                self.plateau_lr = max(self.plateau_lr * self.decay_factor, self.min_lr)
                logger.info("Reduce learning rate on plateau: %.6f", self.plateau_lr)


class EarlyStopping:
    """The best monitored value so far and the evaluations since it improved; stop once they
    reach patience. monitor is FuxiCTR's Monitor (one metric or a weighted sum of several)."""

    def __init__(self, monitor: Monitor, mode: str = "max", patience: int = 2,
                 min_delta: float = 1e-6) -> None:
        self.monitor, self.mode = monitor, mode
        self.patience, self.min_delta = patience, min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.stopping_steps = 0

    def evaluated(self, logs: dict) -> bool:
        """Count this evaluation's metrics; True when the monitored value improved."""
        value = self.monitor.get_value(logs)
        improved = (value > self.best + self.min_delta if self.mode == "max"
                    else value < self.best - self.min_delta)
        if improved:
            self.stopping_steps = 0
            self.best = value
        else:
            self.stopping_steps += 1
            logger.info("Monitor(%s)=%.6f STOP!", self.mode, value)
        return improved

    @property
    def should_stop(self) -> bool:
        return self.stopping_steps >= self.patience
