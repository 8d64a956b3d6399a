"""The Transformer encoder over packed histories, shared by TransformerDCN and
TransformerConcatDCN.

Rows arrive in the dense layout of items.py (real items packed to the right). The encoder is
a stack of nn.TransformerEncoderLayer (post-norm, torch's default; batch first).
Mask convention: its src_key_padding_mask is True where a key is IGNORED, so we pass True for
padding (`key_padding_mask`; the 1st-place code passed "1 = real item" and so attended to
padding only).
Speed: with length_buckets > 1, rows are sorted by history length and encoded in that many
groups of equal size, each only as wide as its longest history; rows never interact in the
encoder, so results do not depend on it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# encode(cells, real, target): what in_length_buckets runs on each group of rows
Encode = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def in_length_buckets(encode: Encode, cells: torch.Tensor, real: torch.Tensor,
                      target: torch.Tensor, buckets: int) -> torch.Tensor:
    """encode(cells, real, target) of packed histories (rows, width, d), their real cells and
    target vectors, with the rows sorted by history length and encoded in `buckets` groups,
    each only as wide as its longest history; results back in row order. Rows never interact
    in an encoder, so the results equal one call on all rows (faster on a CPU)."""
    if buckets == 1:
        return encode(cells, real, target)
    lengths = real.sum(1)
    order = torch.argsort(lengths, stable=True)
    parts = []
    for group in order.tensor_split(buckets):
        if len(group) == 0:
            continue
        width = max(int(lengths[group[-1]]), 1)  # sorted: the last row is the longest
        parts.append(encode(cells[group, -width:], real[group, -width:], target[group]))
    return torch.cat(parts).index_select(0, torch.argsort(order))


def max_over_real(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(rows, d) maxima of x (rows, width, d) over the positions where real (rows, width) is
    True; -inf for a row without any."""
    return x.masked_fill(~real.unsqueeze(-1), -torch.inf).max(dim=1).values


class HistoryEncoder:
    """For a model with the encoder. Its layers are the model's attribute encoder_layers, so
    checkpoint keys name them directly (encoder_layers.0. ...)."""

    def build_encoder(self, width: int, heads: int, layers: int, ffn_dim: int, dropout: float,
                      length_buckets: int) -> None:
        """encoder_layers: `layers` encoder layers over positions `width` wide."""
        self.length_buckets = int(length_buckets)
        self.encoder_layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, int(heads), dim_feedforward=int(ffn_dim),
                                       dropout=dropout, batch_first=True)
            for _ in range(int(layers)))

    @staticmethod
    def key_padding_mask(real: torch.Tensor) -> torch.Tensor:
        """src_key_padding_mask for the encoder: True = padding (ignored as a key)."""
        return ~real

    def run_encoder(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs for positions x (rows, width, d), keys masked by padding."""
        for layer in self.encoder_layers:
            x = layer(x, src_key_padding_mask=padding)
        return x

    def encode_in_buckets(self, encode: Encode, cells: torch.Tensor, real: torch.Tensor,
                          target: torch.Tensor) -> torch.Tensor:
        """encode(cells, real, target) run in length_buckets groups (in_length_buckets)."""
        return in_length_buckets(encode, cells, real, target, self.length_buckets)
