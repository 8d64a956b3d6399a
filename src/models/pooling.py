"""Target attention pooling of a row's history, on the sparse layout of items.py, as the
sequence models share it:
- DINPooling: the baseline DIN's attention (attention.SplitDINAttention), in DIN, DINInterest and
  DINCrossAttention;
- TargetInterest: ReLU multi-head target attention with the target as a residual
  (attention.SparseTargetAttention, scores "relu"), in QIN and FlatQIN.
Each layer is the model's own attribute, so checkpoint keys name it directly."""
from __future__ import annotations

import torch

from .attention import SparseTargetAttention, SplitDINAttention


class DINPooling:
    """For an items.ItemSequenceModel pooling its history with DIN attention, kept as
    attention_layers (the baseline DIN's checkpoint keys)."""

    split_attention = True  # DIN's config key; False runs the attention MLP unsplit

    def build_din_attention(self, hidden_units: list[int], activations: str | list,
                            output_activation: str | None, dropout: float,
                            use_softmax: bool = False) -> None:
        self.attention_layers = SplitDINAttention(self.item_dim,
                                                  attention_units=list(hidden_units),
                                                  hidden_activations=activations,
                                                  output_activation=output_activation,
                                                  dropout_rate=dropout,
                                                  use_softmax=use_softmax)

    def din_pooled(self, batch: dict[str, torch.Tensor], item_emb: torch.Tensor,
                   target_emb: torch.Tensor) -> torch.Tensor:
        """(batch, item_dim) attention-weighted sums of each row's real history items, for a
        batch prepared by prepare_items and its embed_item_batch vectors."""
        return self.attention_layers.pool(target_emb, item_emb, batch["history_slot"],
                                          batch["history_row"], split=self.split_attention)


class TargetInterest:
    """For an items.ItemSequenceModel whose interest vector is target + ReLU target attention
    over the history, kept as target_attention: a row with no history has interest = target,
    and the unnormalised weights let how much of the history matches reach the model."""

    def build_target_attention(self, attention_dim: int, heads: int, dropout: float) -> None:
        self.target_attention = SparseTargetAttention(self.item_dim, attention_dim, heads,
                                                      scores="relu", dropout_rate=dropout)

    def target_interest(self, batch: dict[str, torch.Tensor], item_emb: torch.Tensor,
                        target_emb: torch.Tensor) -> torch.Tensor:
        """(batch, item_dim) interest vectors, for a batch prepared by prepare_items and its
        embed_item_batch vectors."""
        return target_emb + self.target_attention.attend(
            target_emb, item_emb, batch["history_slot"], batch["history_row"])
