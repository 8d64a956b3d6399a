"""Training, evaluation and checkpoints shared by our models, on top of FuxiCTR's BaseModel.

We keep BaseModel's semantics (evaluate every `eval_steps` or once per epoch; each evaluation
without improvement counts towards early_stop_patience and divides the learning rate by 10;
best weights saved and reloaded at the end) and its regularisation and optimiser helpers.
We replace the loops because we need what it lacks: a hard stop on a NaN loss, checkpoints
written atomically with the config that made them, a `max_steps` cap, and predictions
gathered as tensors rather than Python lists.
"""
import logging
import math
import os
import sys
import warnings

import numpy as np
import torch
from fuxictr.metrics import evaluate_metrics
from fuxictr.pytorch.models import BaseModel
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from ..errors import UserError

logger = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class MMCTRModel(BaseModel):
    """BaseModel plus the options of our configs (all off by default):
    max_steps: stop training after this many steps (an evaluation and checkpoint come first);
    amp_bf16: run forward passes under bfloat16 autocast (the loss stays float32);
    torch_compile: compile the model's dense blocks (see compile_blocks)."""

    def __init__(self, feature_map, accumulation_steps=1, max_steps=None, amp_bf16=False,
                 torch_compile=False, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.accumulation_steps = int(accumulation_steps)
        self.max_steps = int(max_steps) if max_steps else None
        self.amp_bf16 = bool(amp_bf16)
        self.torch_compile = bool(torch_compile)
        # Saved with every checkpoint; build_model replaces it with the full params.
        self.config = dict(kwargs, accumulation_steps=accumulation_steps, max_steps=max_steps)

    def compile(self, optimizer, loss, lr):
        super().compile(optimizer, loss, lr)
        self._bce_from_logits = self.loss_fn is F.binary_cross_entropy

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
            **kwargs):
        self.valid_gen = validation_data
        self._max_gradient_norm = max_gradient_norm
        self._best_metric = -np.inf if self._monitor_mode == "max" else np.inf
        self._stopping_steps = 0
        self._steps_per_epoch = len(data_generator)
        self._stop_training = False
        self._total_steps = 0
        self._eval_steps = self._eval_steps or self._steps_per_epoch
        if self.max_steps:  # a capped run still ends with an evaluation and a checkpoint
            self._eval_steps = min(self._eval_steps, self.max_steps)
        logger.info("Start training: %d batches/epoch", self._steps_per_epoch)
        for epoch in range(epochs):
            self._epoch_index = epoch
            logger.info("************ Epoch=%d start ************", epoch + 1)
            self.train_epoch(data_generator)
            if self._stop_training:
                break
            logger.info("************ Epoch=%d end ************", epoch + 1)
        logger.info("Training finished. Load best model: %s", self.checkpoint)
        self.load_weights(self.checkpoint)

    def train_epoch(self, data_generator):
        self.train()
        train_loss, loss_steps = 0.0, 0
        batches = tqdm(data_generator, disable=self._verbose == 0, file=sys.stdout,
                       desc=f"epoch {self._epoch_index + 1}")
        self.optimizer.zero_grad()
        for batch_index, batch_data in enumerate(batches):
            self._batch_index = batch_index
            self._total_steps += 1
            loss = self.train_step(batch_data)
            train_loss += loss
            loss_steps += 1
            if self._total_steps % self._eval_steps == 0:
                logger.info("Train loss: %.6f", train_loss / loss_steps)
                train_loss, loss_steps = 0.0, 0
                self.eval_step()
            if self.max_steps and self._total_steps >= self.max_steps:
                logger.info("Reached max_steps=%d", self.max_steps)
                self._stop_training = True
            if self._stop_training:
                break

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
        log(sigmoid) of a probability rounded to 1.0 would clamp), plus regularisation."""
        logit, y_pred = self.scores(batch_data)
        y_true = self.get_labels(batch_data)
        if self._bce_from_logits:
            loss = F.binary_cross_entropy_with_logits(logit, y_true)
        else:
            loss = self.loss_fn(y_pred, y_true, reduction="mean")
        return loss + self.regularization_loss()

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
            nn.utils.clip_grad_norm_(self.parameters(), self._max_gradient_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss_value

    # ---- inference ----
    @torch.no_grad()
    def _scores(self, data_generator, with_labels):
        self.eval()
        preds, labels, groups = [], [], []
        for batch_data in tqdm(data_generator, disable=self._verbose == 0, file=sys.stdout,
                               desc="scoring"):
            preds.append(self.scores(batch_data)[1].reshape(-1).cpu())
            if with_labels:
                labels.append(self.get_labels(batch_data).reshape(-1).cpu())
                if self.feature_map.group_id is not None:
                    groups.append(batch_data[self.feature_map.group_id].reshape(-1).cpu())
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

    def predict(self, data_generator):
        """Click probabilities as float64, in the loader's order (file order for test)."""
        return self._scores(data_generator, with_labels=False)

    # ---- checkpoints ----
    def save_weights(self, checkpoint):
        """Write the checkpoint under a temporary name, then rename: a run killed mid-save
        keeps its previous best checkpoint intact."""
        os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
        tmp = f"{checkpoint}.tmp{os.getpid()}"
        torch.save({"state_dict": self.state_dict(), "config": _plain(self.config)}, tmp)
        os.replace(tmp, checkpoint)

    def load_weights(self, checkpoint):
        if not os.path.exists(checkpoint):
            raise UserError(f"checkpoint {checkpoint} not found. Fix: train this experiment "
                            f"first (run_expid.py or run_param_tuner.py)")
        self.to(self.device)
        saved = torch.load(checkpoint, map_location="cpu")
        state_dict = saved["state_dict"] if "state_dict" in saved else saved
        self.load_state_dict(state_dict)


def _plain(value):
    """The config as plain Python values, so torch.load(weights_only=True) can read it."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
