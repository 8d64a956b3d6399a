"""What a Trainer is told: the training options of a config, and the context of one run.

TrainingOptions are the config keys about training (the loop, the schedule, early stopping,
evaluation); the model ignores them. RunContext is what one run of an experiment adds: where
its checkpoint and training state go, what its checkpoints record, its evaluation history,
a check that may stop it, and the callbacks that watch its evaluations (a scheduler's
reporter, src/tuning/ray_trial.py). Defaults keep FuxiCTR's behaviour and are those of
src/options.py, which fills them into every run's params (a test keeps both in step).
"""
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..history import NoHistory


@dataclass
class TrainingOptions:
    epochs: int = 1
    max_steps: int | None = None      # stop after this many steps (an evaluation comes first)
    eval_steps: int | None = None     # evaluate every eval_steps steps; None: once per epoch
    accumulation_steps: int = 1       # batches whose gradients make one optimizer step
    max_gradient_norm: float = 10.0
    optimizer: str = "adam"
    learning_rate: float = 1.e-3
    weight_decay: float = 0.0
    lr_scheduler: str = "plateau"     # plateau|cosine|none, see schedules.LearningRateSchedule
    lr_decay_factor: float = 0.1
    lr_patience: int = 1
    warmup_steps: int = 0
    min_lr: float = 1.e-6
    monitor: Any = "AUC"              # a metric name or {metric: weight}, as FuxiCTR's Monitor
    monitor_mode: str = "max"
    early_stop_patience: int = 2
    save_best_only: bool = True
    metrics: list = field(default_factory=lambda: ["AUC", "logloss"])  # of the final evaluation
    verbose: int = 1                  # 0: progress as log lines even on a terminal

    @classmethod
    def from_params(cls, params: dict) -> "TrainingOptions":
        """The options of an experiment's params (load_params); other keys are the model's."""
        known = {k: params[k] for k in cls.__dataclass_fields__ if params.get(k) is not None}
        options = cls(**known)
        options.max_steps = int(options.max_steps) if options.max_steps else None
        options.accumulation_steps = int(options.accumulation_steps)
        options.weight_decay = float(options.weight_decay or 0.0)
        return options


@dataclass
class RunContext:
    """One run's files and watchers, handed to the Trainer whole (nothing is set on it from
    outside afterwards)."""
    checkpoint: str                   # the best weights (or the last, save_best_only False)
    state_path: str | None = None     # the training state of the last evaluation; None: kept
                                      # nowhere, a killed run cannot resume
    run_info: dict = field(default_factory=dict)  # fingerprint, run_id, fingerprint_record:
                                                  # recorded in every checkpoint and state
    history: Any = field(default_factory=NoHistory)  # src/history.RunHistory of the run
    should_stop: Callable[[], str | None] | None = None  # a reason to stop now, or None;
                                                          # asked before each step
    callbacks: list = field(default_factory=list)  # callback(trainer, val_logs) after each
                                                    # evaluation's checkpoint and state are saved

    @property
    def run_id(self) -> str | None:
        return self.run_info.get("run_id")
