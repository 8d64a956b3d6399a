"""Target attention over the real history positions of a batch (the sparse layout of items.py).

Inputs, for a batch of B rows and N real history positions in all:
  query / target vectors (B, d); distinct item vectors (n_distinct, d);
  history_slot (N,): each position's item among the distinct ones;
  history_row (N,): each position's batch row.
A row with no real history pools to 0. Padding is never seen, so no mask is needed.

SplitDINAttention is FuxiCTR's DIN_Attention (same parameters, same state_dict keys) with a
faster sparse path. Its MLP's first Linear acts on [t, h, t - h, t * h]; with W = [W1 W2 W3 W4]
split by input block,
    W [t, h, t - h, t * h] = (W1 + W3) t + (W2 - W3) h + W4 (t * h),
so the target part is computed once per batch row, the item part once per distinct item, and
only the product part (a quarter of the first layer) once per real position.

SparseTargetAttention is FuxiCTR's MultiHeadTargetAttention (same parameters: W_q, W_k, W_v,
W_o) computed on the sparse layout: keys and values once per distinct item, one dot product
per real position and head, then either a softmax over each row's positions ("softmax") or
ReLU scores used as weights without normalisation ("relu", the QIN design). Its dense
forward, FuxiCTR's, stays available and is what the tests compare against.
"""
from __future__ import annotations

from typing import Any

import torch
from fuxictr.pytorch.layers import DIN_Attention, MultiHeadTargetAttention
from torch.nn import functional as F


def sum_by_row(values: torch.Tensor, history_row: torch.Tensor,
               num_rows: int) -> torch.Tensor:
    """(num_rows, ...) sums of values (N, ...) grouped by history_row."""
    return values.new_zeros(num_rows, *values.shape[1:]).index_add(0, history_row, values)


class SplitDINAttention(DIN_Attention):
    """DIN attention with a per-row / per-item / per-position split of its first layer."""

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """torch_compile: the dense forward and the sparse path's MLP after its first layer."""
        super().compile(*args, **kwargs)
        self._tail = torch.compile(self._tail, *args, **kwargs)

    def _tail(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.attention_layer.mlp[1:]:
            hidden = layer(hidden)
        return hidden

    def weights(self, target_emb: torch.Tensor, item_emb: torch.Tensor,
                history_slot: torch.Tensor, history_row: torch.Tensor,
                split: bool = True) -> torch.Tensor:
        """(N, 1) attention weights of the real positions; split=False runs the attention MLP
        on the concatenation [t, h, t - h, t * h], as FuxiCTR does."""
        target_rows = target_emb.index_select(0, history_row)
        history_emb = item_emb.index_select(0, history_slot)
        if not split:
            return self.attention_layer(torch.cat(
                [target_rows, history_emb, target_rows - history_emb, target_rows * history_emb],
                dim=-1))
        first = self.attention_layer.mlp[0]
        w_target, w_item, w_diff, w_product = first.weight.split(self.embedding_dim, dim=1)
        hidden = (F.linear(target_emb, w_target + w_diff, first.bias).index_select(0, history_row)
                  + F.linear(item_emb, w_item - w_diff).index_select(0, history_slot)
                  + F.linear(target_rows * history_emb, w_product))
        return self._tail(hidden)

    def pool(self, target_emb: torch.Tensor, item_emb: torch.Tensor, history_slot: torch.Tensor,
             history_row: torch.Tensor, split: bool = True) -> torch.Tensor:
        """(B, d) sums of the real history vectors weighted by their attention weights."""
        weights = self.weights(target_emb, item_emb, history_slot, history_row, split)
        history_emb = item_emb.index_select(0, history_slot)
        return sum_by_row(weights * history_emb, history_row, target_emb.shape[0])


class SparseTargetAttention(MultiHeadTargetAttention):
    """Multi-head target attention on the real positions only; scores "softmax" or "relu"."""

    SCORES = ("softmax", "relu")

    def __init__(self, input_dim: int, attention_dim: int, num_heads: int,
                 scores: str = "softmax", dropout_rate: float = 0.) -> None:
        if scores not in self.SCORES:
            raise ValueError(f"scores={scores!r}: expected one of {self.SCORES}")
        if int(num_heads) < 1 or attention_dim % int(num_heads):  # models check their keys first
            raise ValueError(f"num_heads={num_heads} does not divide attention_dim={attention_dim}")
        super().__init__(input_dim, attention_dim, int(num_heads), dropout_rate, use_scale=True,
                         use_qkvo=True)
        self.scores = scores

    def keys_values(self, item_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the distinct items, (n_distinct, heads, head_dim) each."""
        shape = (item_emb.shape[0], self.num_heads, self.head_dim)
        return self.W_k(item_emb).view(shape), self.W_v(item_emb).view(shape)

    def attend(self, query: torch.Tensor, item_emb: torch.Tensor, history_slot: torch.Tensor,
               history_row: torch.Tensor,
               keys_values: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """(B, input_dim) attention output for query (B, input_dim) over the real history
        positions; keys_values may pass precomputed keys_values(item_emb)."""
        keys, values = keys_values if keys_values is not None else self.keys_values(item_emb)
        batch_size = query.shape[0]
        q = self.W_q(query).view(batch_size, self.num_heads, self.head_dim)
        k = keys.index_select(0, history_slot)
        scores = (q.index_select(0, history_row) * k).sum(-1) / self.scale  # (N, heads)
        if self.scores == "relu":
            weights = torch.relu(scores)
        else:
            # the row maximum only keeps exp() in range; it cancels in the ratio
            row_max = scores.new_full((batch_size, self.num_heads), -torch.inf).scatter_reduce(
                0, history_row.unsqueeze(1).expand_as(scores), scores, "amax")
            weights = torch.exp(scores - row_max.detach().index_select(0, history_row))
            weights = weights / sum_by_row(weights, history_row, batch_size).index_select(
                0, history_row)
        if self.dot_attention.dropout is not None:
            weights = self.dot_attention.dropout(weights)
        v = values.index_select(0, history_slot)
        pooled = sum_by_row(weights.unsqueeze(-1) * v, history_row, batch_size)
        return self.W_o(pooled.reshape(batch_size, self.num_heads * self.head_dim))
