"""Scores of a model over a whole loader, and the metrics of those scores.

Used by the Trainer at every evaluation, and without one for prediction (src/experiment.py):
a trained model needs no trainer to score.
"""
from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from fuxictr.metrics import evaluate_metrics
from torch import nn

from ..progress import Progress

if TYPE_CHECKING:
    from ..data.loader import MMCTRDataLoader

logger = logging.getLogger(__name__)


@torch.no_grad()
def score_loader(model: nn.Module, loader: MMCTRDataLoader, with_labels: bool,
                 progress_desc: str | None = None,
                 verbose: int = 1) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Click probabilities (float64, in the loader's order) of every batch of loader; with
    labels: (probabilities, labels, group ids or None). The model is put in eval mode.
    verbose=0 writes progress as log lines even on a terminal."""
    model.eval()
    preds, labels, groups = [], [], []
    group_id = model.feature_map.group_id
    progress = Progress(len(loader), progress_desc or "", enabled=bool(progress_desc),
                        interactive=None if verbose else False)
    for batch_data in loader:
        preds.append(model.scores(batch_data)[1].reshape(-1).cpu())
        if with_labels:
            labels.append(model.get_labels(batch_data).reshape(-1).cpu())
            if group_id is not None:
                groups.append(batch_data[group_id].reshape(-1).cpu())
        progress.update(rows=len(preds[-1]))
    progress.close()
    y_pred = torch.cat(preds).double().numpy()
    if not with_labels:
        return y_pred
    y_true = torch.cat(labels).double().numpy()
    return y_pred, y_true, (torch.cat(groups).numpy() if groups else None)


def evaluate(model: nn.Module, loader: MMCTRDataLoader, metrics: list, verbose: int = 1) -> dict:
    """{metric: value} of the model's scores on a labelled loader (FuxiCTR's metrics)."""
    y_pred, y_true, group_id = score_loader(model, loader, with_labels=True, verbose=verbose)
    with warnings.catch_warnings():
        # FuxiCTR passes log_loss(eps=...), which scikit-learn 1.4 flags as deprecated.
        warnings.filterwarnings("ignore", message="Setting the eps parameter",
                                category=FutureWarning)
        val_logs = evaluate_metrics(y_true, y_pred, metrics, group_id)
    logger.info("[Metrics] %s", " - ".join(f"{k}: {v:.6f}" for k, v in val_logs.items()))
    return val_logs


def predict(model: nn.Module, loader: MMCTRDataLoader, progress_desc: str | None = "scoring",
            verbose: int = 1) -> np.ndarray:
    """Click probabilities as float64, in the loader's order (file order for test)."""
    return score_loader(model, loader, with_labels=False, progress_desc=progress_desc,
                        verbose=verbose)
