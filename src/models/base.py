"""The base of our models: scores, loss and regularisation, on top of FuxiCTR's BaseModel.

A model is an nn.Module that scores batches; training it is the job of src/training (the
Trainer: optimizer, loop, schedules, early stopping, checkpoints, evaluation). We keep
FuxiCTR's BaseModel for its embedding and regularisation helpers (get_inputs, get_labels,
reset_parameters, device) and the config keys it reads; its own loop, evaluation and
checkpoint methods are refused here, so nothing trains a model behind the Trainer's back.
What a model adds to this base: forward(batch) -> {"logit": ...} with exactly one
Float32Linear output layer (see output_layer), built in __init__ (ItemSequenceModel,
src/models/items.py, does the rest: loss, initialisation, device, compile_blocks).
Its regularisation penalty is FuxiCTR's, computed by src/models/regularizer.py, which adds a
feature's own `embedding_regularizer` (a key of its feature_cols entry).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import get_loss
from torch import nn
from torch.nn import functional as F

from .layers import Float32Linear
from .regularizer import PenaltyLoop

if TYPE_CHECKING:
    from fuxictr.features import FeatureMap

logger = logging.getLogger(__name__)


class MMCTRModel(PenaltyLoop, BaseModel):
    """BaseModel plus the options of our configs that change how a model computes (defaults
    keep FuxiCTR's behaviour; see src/options.py and docs/config_reference.md):
    amp_bf16: run forward passes under bfloat16 autocast (logit and loss stay float32);
    torch_compile: compile the model's dense blocks (see compile_blocks).
    The training options (max_steps, lr_scheduler, ...) are the Trainer's
    (src/training/options.py); the model accepts and ignores them, as it is built from the
    whole params of an experiment."""

    # torch's nn.Module.compile, not BaseModel.compile(optimizer, loss, lr): see configure
    compile = nn.Module.compile

    def __init__(self, feature_map: FeatureMap, amp_bf16: bool = False,
                 torch_compile: bool = False, **kwargs: Any) -> None:
        super().__init__(feature_map, **kwargs)
        self.amp_bf16 = bool(amp_bf16)
        self.torch_compile = bool(torch_compile)
        # The params that built the model, recorded in every checkpoint; build_model
        # (src/experiment.py) replaces it with the experiment's full params.
        self.config = dict(kwargs)
        self.last_penalty = 0.0  # the regularisation penalty of the latest batch_loss

    def configure(self, loss: str) -> None:
        """The loss the model computes in batch_loss (a FuxiCTR loss name). The optimizer and
        learning rate are the Trainer's."""
        self.loss_fn = get_loss(loss)
        self._bce_from_logits = self.loss_fn is F.binary_cross_entropy

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp_bf16)

    def compile_blocks(self, *modules: nn.Module) -> None:
        """Compile dense sub-blocks in place when torch_compile is on. In place (not
        torch.compile(module)) keeps parameter names, so checkpoints stay interchangeable;
        dynamic shapes, because batch and history sizes vary from batch to batch."""
        if self.torch_compile:
            for module in modules:
                module.compile(dynamic=True)

    def output_layer(self) -> Float32Linear:
        """The model's last Linear layer (one Float32Linear by convention, see layers.py)."""
        heads = [m for m in self.modules() if isinstance(m, Float32Linear)]
        if len(heads) != 1:
            raise TypeError(f"{type(self).__name__} should have exactly one Float32Linear "
                            f"output layer, found {len(heads)}")
        return heads[0]

    def scores(self, batch_data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit, probability) of a batch, both float32. The model's forward runs under
        autocast when amp_bf16 is on; its output layer (Float32Linear) and the sigmoid never
        do, so scores keep float32 resolution and confident mistakes keep their gradient."""
        with self.autocast():
            logit = self.forward(batch_data)["logit"]
        logit = logit.float()
        return logit, torch.sigmoid(logit)

    def batch_loss(self, batch_data: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of a batch: binary cross-entropy from the logit (exact where
        log(sigmoid) of a probability rounded to 1.0 would clamp), plus regularisation (its value
        kept in last_penalty, so the trainer's history can show the two apart)."""
        logit, y_pred = self.scores(batch_data)
        y_true = self.get_labels(batch_data)
        if self._bce_from_logits:
            loss = F.binary_cross_entropy_with_logits(logit, y_true)
        else:
            loss = self.loss_fn(y_pred, y_true, reduction="mean")
        penalty = self.regularization_loss()
        self.last_penalty = penalty.detach() if torch.is_tensor(penalty) else penalty
        return loss + penalty

    def _trainer_job(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__}: FuxiCTR's training, evaluation and checkpoint "
                        f"methods are not used by this toolkit. Fix: use src.training (Trainer, "
                        f"evaluation.predict/evaluate, checkpoints.load_weights/save_weights)")

    # BaseModel's loop would train without our checkpoints, states and schedules
    fit = train_epoch = train_step = eval_step = checkpoint_and_earlystop = lr_decay = \
        evaluate = predict = save_weights = load_weights = _trainer_job
