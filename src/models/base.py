"""Training, evaluation and checkpoints shared by our models, on top of FuxiCTR's BaseModel.

We keep BaseModel's semantics by default (evaluate every `eval_steps` or once per epoch; each
evaluation without improvement counts towards early_stop_patience and divides the learning
rate by 10; best weights saved and reloaded at the end) and its regularisation helpers. We
replace the loops because we need what it lacks:
- a hard stop on a NaN loss; a float32 logit and loss whatever the autocast (see scores());
- checkpoints written atomically with the config and fingerprint of the run that made them,
  and one clear error for a checkpoint that cannot be written or read;
- the training state (weights, optimizer, schedule, epoch and batch, random generators, best
  metric) saved at every evaluation, so a killed run continues where it was;
- learning-rate schedules (plateau with any factor, warm-up, cosine), weight decay, max_steps;
- the run's evaluation history (src/history.py), one row per evaluation, kept across a resume;
- progress lines with rows/s and ETA also where stderr is not a terminal.
Its regularisation penalty is FuxiCTR's, computed by src/models/regularizer.py, which adds a
feature's own `embedding_regularizer` (a key of its feature_cols entry).
"""
import logging
import math
import os
import random
import warnings

import numpy as np
import torch
from fuxictr.metrics import evaluate_metrics
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import get_loss
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, UserError
from ..history import NoHistory
from ..progress import Progress
from .regularizer import PenaltyLoop
from .state_hash import CHECKPOINT_KEY, STATE_KEY, state_hash, verify_weights

logger = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class RunStopped(UserError):
    """Training was asked to stop (its tuner is gone); the training state is kept."""


def make_optimizer(name, parameters, lr, weight_decay=0.0):
    """torch.optim.<name> (FuxiCTR's lower-case "adam" accepted) with a weight decay."""
    name = "Adam" if str(name).lower() == "adam" else str(name)
    optimizer_class = getattr(torch.optim, name, None)
    if not isinstance(optimizer_class, type) or not issubclass(optimizer_class,
                                                               torch.optim.Optimizer):
        raise ConfigError(f"optimizer={name!r} is not an optimizer of torch.optim. Fix: use "
                          f"adam, AdamW, SGD, ...")
    return optimizer_class(parameters, lr=lr, weight_decay=float(weight_decay or 0.0))


def _numpy_state_plain(state):
    """numpy's global generator state as plain values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _numpy_state(plain):
    name, keys, pos, has_gauss, cached = plain
    return (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


def atomic_save(content, path, what="checkpoint"):
    """torch.save to a temporary name in the same folder, then rename: a reader (or a run
    killed mid-save) never sees half a file. A failed save removes its temporary file and
    says which path could not be written."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(folder, exist_ok=True)
        torch.save(content, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise UserError(f"cannot write the {what} {path}: {reason}. Fix: free disk space in "
                        f"{folder} or point model_root at a writable folder with room") from None


def read_checkpoint(path, what="checkpoint"):
    """The content of a file written by atomic_save; one clear error if it is missing or
    unreadable (truncated, corrupt, not a checkpoint)."""
    if not os.path.exists(path):
        raise UserError(f"{what} {path} not found. Fix: train this experiment first "
                        f"(run_expid.py or run_param_tuner.py)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        text = str(err).strip()
        if "Weights only load failed" in text:
            # torch's own advice here (weights_only=False) would run arbitrary code: not ours
            reason = "it holds Python objects a checkpoint of this toolkit never holds"
        else:
            reason = text.splitlines()[0][:160] if text else type(err).__name__
        raise UserError(f"{what} {path} is unreadable (truncated or corrupt: {reason}). Fix: "
                        f"retrain the experiment (rerunning the tuner retrains experiments whose "
                        f"checkpoint is unreadable)") from None
    if not isinstance(saved, dict):
        raise UserError(f"{what} {path} does not hold a checkpoint of this toolkit. Fix: retrain "
                        f"the experiment")
    return saved


class MMCTRModel(PenaltyLoop, BaseModel):
    """BaseModel plus the options of our configs (defaults keep FuxiCTR's behaviour; see
    src/options.py and docs/config_reference.md):
    max_steps: stop training after this many steps (an evaluation and checkpoint come first);
    amp_bf16: run forward passes under bfloat16 autocast (logit and loss stay float32);
    torch_compile: compile the model's dense blocks (see compile_blocks);
    lr_scheduler plateau|cosine|none, lr_decay_factor, lr_patience, warmup_steps, min_lr,
    weight_decay: the learning-rate schedule and the optimizer's weight decay."""

    def __init__(self, feature_map, accumulation_steps=1, max_steps=None, amp_bf16=False,
                 torch_compile=False, lr_scheduler="plateau", lr_decay_factor=0.1,
                 lr_patience=1, warmup_steps=0, min_lr=1.e-6, weight_decay=0, **kwargs):
        kwargs.pop("reduce_lr_on_plateau", None)  # lr_scheduler decides
        super().__init__(feature_map, **kwargs)
        self.accumulation_steps = int(accumulation_steps)
        self.max_steps = int(max_steps) if max_steps else None
        self.amp_bf16 = bool(amp_bf16)
        self.torch_compile = bool(torch_compile)
        self.lr_scheduler = str(lr_scheduler or "none").lower()
        if self.lr_scheduler not in ("plateau", "cosine", "none"):
            raise ConfigError(f"lr_scheduler={lr_scheduler!r}: use plateau, cosine or none")
        self.lr_decay_factor, self.lr_patience = float(lr_decay_factor), int(lr_patience)
        self.warmup_steps, self.min_lr = int(warmup_steps or 0), float(min_lr)
        self.weight_decay = float(weight_decay or 0.0)
        # Saved with every checkpoint; build_model replaces it with the full params.
        self.config = dict(kwargs, accumulation_steps=accumulation_steps, max_steps=max_steps)
        # Set by the experiment (src/experiment.py): what checkpoints record, where the
        # training state goes, a check run every step that may ask training to stop, and
        # where each evaluation is recorded.
        self.run_info = {}
        self.state_path = None
        self.should_stop = None
        self.history = NoHistory()
        # Called with (model, val_logs) after each evaluation's checkpoint and state are saved:
        # how a scheduler (Ray Tune's ASHA, src/tuning/ray_runner.py) watches a run.
        self.on_evaluation = _no_scheduler
        # training counters, also for callers that call train_step without fit (benchmarks)
        self._total_steps = self._batch_index = self._epoch_index = 0
        self._stop_training = False
        # training loss, rows and regularisation penalty (part of the loss) since the last
        # evaluation; the penalty of the latest batch, kept by batch_loss
        self._interval = (None, 0, None)
        self._last_penalty = 0.0
        self._max_gradient_norm = 10.0
        self._schedule_steps = 1
        self.weights_sha256 = None  # of the checkpoint last saved or loaded

    def compile(self, optimizer, loss, lr):
        self.optimizer = make_optimizer(optimizer, self.parameters(), lr, self.weight_decay)
        self.loss_fn = get_loss(loss)
        self._bce_from_logits = self.loss_fn is F.binary_cross_entropy
        self.base_lr = float(lr)
        self._plateau_lr = float(lr)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp_bf16)

    def compile_blocks(self, *modules):
        """Compile dense sub-blocks in place when torch_compile is on. In place (not
        torch.compile(module)) keeps parameter names, so checkpoints stay interchangeable;
        dynamic shapes, because batch and history sizes vary from batch to batch."""
        if self.torch_compile:
            for module in modules:
                module.compile(dynamic=True)

    # ---- training ----
    def fit(self, data_generator, epochs=1, validation_data=None, max_gradient_norm=10.,
            resume=None, **kwargs):
        """Train; resume is a training state saved by an earlier, interrupted run of the same
        experiment (see save_training_state), or None to start from scratch."""
        self.valid_gen = validation_data
        self._max_gradient_norm = max_gradient_norm
        self._best_metric = -np.inf if self._monitor_mode == "max" else np.inf
        self._stopping_steps = self._plateau_steps = 0
        self._steps_per_epoch = len(data_generator)
        self._stop_training = False
        self._total_steps = self._epoch_index = 0
        self._resume_batch = -1  # last batch done in the resumed epoch
        self._last_auc = None
        self._eval_steps = self._eval_steps or self._steps_per_epoch
        if self.max_steps:  # a capped run still ends with an evaluation and a checkpoint
            self._eval_steps = min(self._eval_steps, self.max_steps)
        self._schedule_steps = self.max_steps or epochs * self._steps_per_epoch
        if resume is not None:
            self.restore_training_state(resume)
        logger.info("Start training: %d batches/epoch", self._steps_per_epoch)
        while self._epoch_index < epochs and not self._stop_training:
            logger.info("************ Epoch=%d start ************", self._epoch_index + 1)
            self.train_epoch(data_generator)
            if self._stop_training:
                break
            logger.info("************ Epoch=%d end ************", self._epoch_index + 1)
            self._epoch_index += 1
        self.save_training_state(finished=True)
        logger.info("Training finished. Load best model: %s", self.checkpoint)
        self.load_weights(self.checkpoint)

    def train_epoch(self, data_generator):
        self.train()
        # loss, rows and time since the last evaluation count from the epoch's start
        train_loss, train_penalty, loss_steps, loss_rows = 0.0, 0.0, 0, 0
        self.history.start()
        skip = self._resume_batch + 1
        if skip:  # the resumed epoch: same shuffle as before the interruption, done batches skipped
            np.random.set_state(self._epoch_rng)
            logger.info("Resuming epoch %d at batch %d", self._epoch_index + 1, skip + 1)
        else:
            self._epoch_rng = np.random.get_state()  # the loader shuffles from this state
        self._resume_batch = -1
        progress = Progress(self._steps_per_epoch, f"epoch {self._epoch_index + 1}",
                            interactive=None if self._verbose else False)
        progress.update(skip)
        self.optimizer.zero_grad()
        for batch_index, batch_data in enumerate(data_generator):
            if batch_index < skip:
                continue
            self._batch_index = batch_index
            self._total_steps += 1
            if self.should_stop is not None:
                reason = self.should_stop()
                if reason:
                    raise RunStopped(f"{reason}; the training state at the last evaluation is "
                                     f"kept in {self.state_path}, a rerun continues from it")
            loss = self.train_step(batch_data)
            train_loss += loss
            train_penalty += float(self._last_penalty)
            loss_steps += 1
            rows = len(batch_data[self.feature_map.labels[0]])
            loss_rows += rows
            progress.update(rows=rows, loss=train_loss / loss_steps, lr=f"{self.current_lr():.2e}",
                            last_valid_AUC=self._last_auc)
            if self._total_steps % self._eval_steps == 0:
                logger.info("Train loss: %.6f", train_loss / loss_steps)
                # for the history
                self._interval = (train_loss / loss_steps, loss_rows, train_penalty / loss_steps)
                train_loss, train_penalty, loss_steps, loss_rows = 0.0, 0.0, 0, 0
                self.eval_step()
            if self.max_steps and self._total_steps >= self.max_steps:
                logger.info("Reached max_steps=%d", self.max_steps)
                self._stop_training = True
            if self._stop_training:
                break
        progress.close()

    def current_lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def scheduled_lr(self, step):
        """The learning rate of training step `step` (1-based): linear warm-up over
        warmup_steps, then the plateau rate (decayed at plateaus), a cosine decay to min_lr over
        the whole run, or the base rate."""
        warm = min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0
        if self.lr_scheduler == "cosine" and step > self.warmup_steps:
            span = max(1, self._schedule_steps - self.warmup_steps)
            done = min(1.0, (step - self.warmup_steps) / span)
            return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * done))
        base = self._plateau_lr if self.lr_scheduler == "plateau" else self.base_lr
        return base * warm

    def eval_step(self):
        logger.info("Evaluation @epoch %d - batch %d: ", self._epoch_index + 1,
                    self._batch_index + 1)
        self.history.pause()
        lr = self.current_lr()  # the rate of the steps just done, before a plateau decay
        # AUC and logloss always, for the history, beside what the monitor needs
        metrics = list(dict.fromkeys(self._monitor.get_metrics() + ["AUC", "logloss"]))
        val_logs = self.evaluate(self.valid_gen, metrics=metrics)
        self._last_auc = float(val_logs["AUC"]) if "AUC" in val_logs else None
        self.checkpoint_and_earlystop(val_logs)
        # before the state: a run resumed from this state finds this row on disk
        loss, rows, penalty = self._interval
        self.history.record(self._epoch_index + 1, self._total_steps, loss, rows, val_logs, lr,
                            train_penalty=penalty)
        self.save_training_state()
        self.on_evaluation(self, val_logs)
        self.history.start()
        self.train()

    def checkpoint_and_earlystop(self, logs, min_delta=1e-6):
        value = self._monitor.get_value(logs)
        improved = (value > self._best_metric + min_delta if self._monitor_mode == "max"
                    else value < self._best_metric - min_delta)
        if improved:
            self._stopping_steps = self._plateau_steps = 0
            self._best_metric = value
            if self._save_best_only:
                logger.info("Save best model: monitor(%s)=%.6f", self._monitor_mode, value)
                self.save_weights(self.checkpoint)
        else:
            self._stopping_steps += 1
            logger.info("Monitor(%s)=%.6f STOP!", self._monitor_mode, value)
            if self.lr_scheduler == "plateau":
                self._plateau_steps += 1
                if self._plateau_steps >= self.lr_patience:
                    self._plateau_steps = 0
                    self._plateau_lr = max(self._plateau_lr * self.lr_decay_factor, self.min_lr)
                    logger.info("Reduce learning rate on plateau: %.6f", self._plateau_lr)
        if self._stopping_steps >= self._early_stop_patience:
            self._stop_training = True
            logger.info("********* Epoch=%d early stop *********", self._epoch_index + 1)
        if not self._save_best_only:
            self.save_weights(self.checkpoint)

    # ---- resuming ----
    def save_training_state(self, finished=False):
        """Everything a rerun needs to continue exactly where this evaluation left off."""
        if not self.state_path:
            return
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        weights = self.state_dict()
        state = {"model": weights, STATE_KEY: state_hash(weights),
                 "optimizer": self.optimizer.state_dict(),
                 "epoch": self._epoch_index, "batch": self._batch_index,
                 "total_steps": self._total_steps, "finished": finished,
                 "epoch_rng": _numpy_state_plain(self._epoch_rng) if hasattr(self, "_epoch_rng")
                 else None,
                 "torch_rng": torch.get_rng_state(), "cuda_rng": cuda,
                 "python_rng": random.getstate(),
                 "numpy_rng": _numpy_state_plain(np.random.get_state()),
                 "best_metric": float(self._best_metric), "stopping_steps": self._stopping_steps,
                 "plateau_steps": self._plateau_steps, "plateau_lr": self._plateau_lr,
                 "last_auc": self._last_auc, "run_info": _plain(self.run_info)}
        atomic_save(state, self.state_path, what="training state")

    def restore_training_state(self, state):
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._epoch_index, self._total_steps = state["epoch"], state["total_steps"]
        self._best_metric = state["best_metric"]
        self._stopping_steps, self._plateau_steps = state["stopping_steps"], state["plateau_steps"]
        self._plateau_lr, self._last_auc = state["plateau_lr"], state["last_auc"]
        self._batch_index = state["batch"]
        if state["finished"]:
            self._stop_training = True
        elif state["batch"] + 1 >= self._steps_per_epoch:  # the evaluation ended its epoch
            self._epoch_index += 1
        else:
            self._resume_batch = state["batch"]
            self._epoch_rng = _numpy_state(state["epoch_rng"])
        np.random.set_state(_numpy_state(state["numpy_rng"]))
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        random.setstate(state["python_rng"])
        logger.info("Resumed from the training state of %s: epoch %d, step %d, best %s %.6f",
                    self.state_path, self._epoch_index + 1, self._total_steps,
                    self._monitor.get_metrics(), self._best_metric)

    def output_layer(self):
        """The model's last Linear layer (one Float32Linear by convention, see layers.py)."""
        from .layers import Float32Linear
        heads = [m for m in self.modules() if isinstance(m, Float32Linear)]
        if len(heads) != 1:
            raise TypeError(f"{type(self).__name__} should have exactly one Float32Linear "
                            f"output layer, found {len(heads)}")
        return heads[0]

    def scores(self, batch_data):
        """(logit, probability) of a batch, both float32. The model's forward runs under
        autocast when amp_bf16 is on; its output layer (Float32Linear) and the sigmoid never
        do, so scores keep float32 resolution and confident mistakes keep their gradient."""
        with self.autocast():
            logit = self.forward(batch_data)["logit"]
        logit = logit.float()
        return logit, torch.sigmoid(logit)

    def batch_loss(self, batch_data):
        """The training loss of a batch: binary cross-entropy from the logit (exact where
        log(sigmoid) of a probability rounded to 1.0 would clamp), plus regularisation (its value
        kept in _last_penalty, so the history can show the two apart)."""
        logit, y_pred = self.scores(batch_data)
        y_true = self.get_labels(batch_data)
        if self._bce_from_logits:
            loss = F.binary_cross_entropy_with_logits(logit, y_true)
        else:
            loss = self.loss_fn(y_pred, y_true, reduction="mean")
        penalty = self.regularization_loss()
        self._last_penalty = penalty.detach() if torch.is_tensor(penalty) else penalty
        return loss + penalty

    def train_step(self, batch_data):
        loss = self.batch_loss(batch_data)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss is {loss_value} at epoch {self._epoch_index + 1}, batch "
                f"{self._batch_index + 1}: training diverged. Fix: lower learning_rate, or check "
                f"the inputs for NaN/inf (python -m src.validation)")
        (loss / self.accumulation_steps).backward()
        if (self._batch_index + 1) % self.accumulation_steps == 0:
            lr = self.scheduled_lr(self._total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            nn.utils.clip_grad_norm_(self.parameters(), self._max_gradient_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss_value

    # ---- inference ----
    @torch.no_grad()
    def _scores(self, data_generator, with_labels, progress_desc=None):
        self.eval()
        preds, labels, groups = [], [], []
        progress = Progress(len(data_generator), progress_desc or "", enabled=bool(progress_desc),
                            interactive=None if self._verbose else False)
        for batch_data in data_generator:
            preds.append(self.scores(batch_data)[1].reshape(-1).cpu())
            if with_labels:
                labels.append(self.get_labels(batch_data).reshape(-1).cpu())
                if self.feature_map.group_id is not None:
                    groups.append(batch_data[self.feature_map.group_id].reshape(-1).cpu())
            progress.update(rows=len(preds[-1]))
        progress.close()
        y_pred = torch.cat(preds).double().numpy()
        if not with_labels:
            return y_pred
        y_true = torch.cat(labels).double().numpy()
        group_id = torch.cat(groups).numpy() if groups else None
        return y_pred, y_true, group_id

    def evaluate(self, data_generator, metrics=None):
        y_pred, y_true, group_id = self._scores(data_generator, with_labels=True)
        with warnings.catch_warnings():
            # FuxiCTR passes log_loss(eps=...), which scikit-learn 1.4 flags as deprecated.
            warnings.filterwarnings("ignore", message="Setting the eps parameter",
                                    category=FutureWarning)
            val_logs = evaluate_metrics(y_true, y_pred, metrics or self.validation_metrics,
                                        group_id)
        logger.info("[Metrics] %s", " - ".join(f"{k}: {v:.6f}" for k, v in val_logs.items()))
        return val_logs

    def predict(self, data_generator, progress_desc="scoring"):
        """Click probabilities as float64, in the loader's order (file order for test)."""
        return self._scores(data_generator, with_labels=False, progress_desc=progress_desc)

    # ---- checkpoints ----
    def save_weights(self, checkpoint):
        """The weights with the config and fingerprint of the run that made them and the
        hash of the weights (src/models/state_hash.py), written atomically: a run killed
        mid-save keeps its previous best checkpoint intact."""
        weights = self.state_dict()
        self.weights_sha256 = state_hash(weights)
        atomic_save({"state_dict": weights, "config": _plain(self.config),
                     **_plain(self.run_info), CHECKPOINT_KEY: self.weights_sha256}, checkpoint)

    def load_weights(self, checkpoint):
        """Load weights after checking them against the hash the checkpoint recorded (a
        damaged file is a DamagedCheckpoint naming it); returns what the checkpoint records
        of its run (fingerprint, run_id, weights_sha256: None for a checkpoint written before
        weights were hashed)."""
        saved = read_checkpoint(checkpoint)
        self.to(self.device)
        state_dict = saved["state_dict"] if "state_dict" in saved else saved
        verify_weights(state_dict, saved.get(CHECKPOINT_KEY), checkpoint)
        self.weights_sha256 = saved.get(CHECKPOINT_KEY)
        try:
            self.load_state_dict(state_dict)
        except RuntimeError as err:
            raise UserError(f"checkpoint {checkpoint} does not fit this model ("
                            f"{str(err).splitlines()[0][:200]}). Fix: retrain the experiment, or "
                            f"predict with the config that trained it") from None
        return {CHECKPOINT_KEY: None,
                **{k: v for k, v in saved.items() if k not in ("state_dict", "config")}}


def _no_scheduler(model, val_logs):
    """The default of MMCTRModel.on_evaluation: nobody watches the evaluations."""


def _plain(value):
    """The config as plain Python values, so torch.load(weights_only=True) can read it."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
