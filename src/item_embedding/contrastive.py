"""A projection of the text + image vectors trained so that items watched one after the
other land close together (InfoNCE with in-batch negatives).

Why this helps the DIN: its attention compares the target with each history item, so an
item embedding in which "watched together" means "nearby" hands it the content directions
that drive clicks and drops the modality-specific nuisance that PCA keeps for its variance.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..errors import UserError
from .linear import pca, standardise_modalities

logger = logging.getLogger(__name__)


@dataclass
class ContrastiveOptions:
    # A linear map already separates content from nuisance in linear views; `mlp` adds one
    # hidden layer for encoders whose content is not linear in the raw vectors.
    encoder: str = "linear"
    hidden: int = 512            # width of the mlp's hidden layer
    dims: int = 128
    # The encoder reads the top input_dims principal axes of the standardised modalities
    # (0: all 1,792 raw dims). 256 axes keep every direction that carries signal above the
    # isotropic noise in 768 + 1024-d encoder outputs, and cut the cost of a step ~7x.
    input_dims: int = 256
    epochs: int = 4
    # In-batch negatives: more per batch = harder contrast, but the logits cost grows with
    # batch_size squared; 1024 keeps a CPU step well under a tenth of a second.
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    temperature: float = 0.1     # softmax temperature of cosine similarities
    window: int = 1              # pairs up to this many positions apart in a history
    device: str = "cpu"
    # torch CPU threads while training. Steps are small matmuls that gain little from more
    # threads and lose several-fold when the cores are shared (threads spin-wait); one
    # thread also makes the result independent of the machine's core count.
    threads: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Encoder(nn.Module):
    def __init__(self, in_dim: int, opts: ContrastiveOptions) -> None:
        super().__init__()
        if opts.encoder == "linear":
            self.net = nn.Linear(in_dim, opts.dims)
        elif opts.encoder == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, opts.hidden), nn.GELU(),
                                     nn.Linear(opts.hidden, opts.dims))
        else:
            raise UserError(f"--encoder {opts.encoder!r}: expected linear or mlp")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(x), dim=-1)


def info_nce(anchor_vec: torch.Tensor, positive_vec: torch.Tensor, positive_ids: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over a batch: each anchor must pick its positive among the batch's
    positives, and each positive its anchor among the anchors.

    Pairs whose positives are the same item are not each other's negatives, in both
    directions: a copy of the right positive is the right answer (popular items repeat
    inside a batch), and an anchor that was also followed by my positive is a true
    co-occurrence of it, not a negative."""
    logits = anchor_vec @ positive_vec.T / temperature
    same = positive_ids[:, None] == positive_ids[None, :]
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (nn.functional.cross_entropy(logits, labels)
                  + nn.functional.cross_entropy(logits.T, labels))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's CPU threads set to `threads` inside the block (0: leave torch's default),
    restored after."""
    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
    return torch.device(name)


def train_contrastive(blocks: list[np.ndarray], anchors: np.ndarray, positives: np.ndarray,
                      seed: int, opts: ContrastiveOptions,
                      progress: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the encoder on (anchor, positive) item pairs; return ((N + 1, dims) float64
    unit-norm item vectors with row 0 zero, training facts for the metadata)."""
    with torch_threads(opts.threads):
        return _train(blocks, anchors, positives, seed, opts, progress)


def _train(blocks, anchors, positives, seed, opts, progress):
    if anchors.size == 0:
        raise UserError("contrastive: no training pairs (every history is held out or has one "
                        "item); check item_seq.parquet")
    device = resolve_device(opts.device)
    torch.manual_seed(seed)
    features = standardise_modalities(*blocks)
    if 0 < opts.input_dims < features.shape[1]:
        features = pca(features, opts.input_dims)[0].astype(np.float32)
    features = torch.from_numpy(features).to(device)
    encoder = Encoder(features.shape[1], opts).to(device)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=opts.learning_rate,
                                 weight_decay=opts.weight_decay)
    shuffler = torch.Generator().manual_seed(seed)  # CPU generator: same order on any device
    anchors_t = torch.from_numpy(anchors).to(device)
    positives_t = torch.from_numpy(positives).to(device)
    n_pairs = len(anchors)
    batch = min(opts.batch_size, n_pairs)
    steps_per_epoch = n_pairs // batch  # drop the ragged last batch: fewer negatives in it
    bar = tqdm(total=opts.epochs * steps_per_epoch, desc="contrastive", unit="step",
               disable=not progress)
    losses = []
    for epoch in range(opts.epochs):
        order = torch.randperm(n_pairs, generator=shuffler).to(device)
        epoch_loss = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch:(step + 1) * batch]
            a, p = anchors_t[index], positives_t[index]
            loss = info_nce(encoder(features[a]), encoder(features[p]), p, opts.temperature)
            if not torch.isfinite(loss):
                raise UserError(f"contrastive: loss became {loss.item()} at epoch {epoch + 1}, "
                                f"step {step + 1}; lower --learning-rate or raise --temperature")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            epoch_loss += loss.item()
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        losses.append(epoch_loss / max(steps_per_epoch, 1))
        logger.info("contrastive epoch %d/%d: mean loss %.4f", epoch + 1, opts.epochs, losses[-1])
    bar.close()
    encoder.eval()
    out = np.zeros((features.shape[0], opts.dims))
    with torch.no_grad():
        for lo in range(1, features.shape[0], 65_536):
            out[lo:lo + 65_536] = encoder(features[lo:lo + 65_536]).double().cpu().numpy()
    return out, {"pairs": int(n_pairs), "steps": int(opts.epochs * steps_per_epoch),
                 "epoch_loss": [round(x, 5) for x in losses]}
