"""Transformer over [history item, target] pairs + DCNv2: the 1st place's layout of the challenge
(team momo, arXiv:2505.03543, github.com/yinzm/WWW2025_MMCTR_rk1), with a correct mask.

1. Every real history position is its item vector concatenated with the target's item vector
   (2 x item_dim wide, no position embeddings), so attention and feed-forward see each
   history item beside the target it is scored for.
2. transformer_layers nn.TransformerEncoderLayer (post-norm, torch's default) over the
   positions of the dense layout of items.py (real items packed to the right), padded cells
   masked as keys.
3. A max-pool of the outputs over the real positions, through a Linear layer; a row with no
   history gets the pooled vector 0.
4. DCNv2: FuxiCTR's CrossNetV2 beside an MLP over [row features, target item vector, pooled
   vector]; their outputs, concatenated, go through the head MLP to the Float32Linear logit.

Mask and speed: the encoder of encoder.py (True = padding in the key padding mask; rows in
length_buckets groups); tests/test_model_parts.py shows that the 1st place's inverted mask
breaks padding invariance here too. A query with every key masked would give NaN, so a row with
no unmasked key (no history) keeps its last cell (a zero item beside its target) as a key; its
outputs are never pooled.

item_projection_dim (null as published) projects each item vector to that width before the
concatenation (positions 2 x item_projection_dim wide): the _cpu block's way to a CPU-sized
Transformer, since the item vector is at least as wide as its 128-wide content embedding.

Left out of the published layout: the last 16 encoder outputs, which the 1st place also fed
to the cross network (16 x 2 x item_dim more inputs: a cross network of about 250M weights
at their sizes). TransformerDCN (transformer_dcn.py) keeps them, on a projected width.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .dcn import ParallelDCN
from .encoder import HistoryEncoder, max_over_real
from .items import ItemSequenceModel, check_at_least, check_divisible
from .layers import logit_mlp

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fuxictr.features import FeatureMap


class TransformerConcatDCN(HistoryEncoder, ParallelDCN, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "TransformerConcatDCN",
                 gpu: int = -1,
                 embedding_dim: int = 64,
                 item_projection_dim: int | None = None,
                 transformer_heads: int = 1,
                 transformer_layers: int = 2,
                 transformer_ffn_dim: int = 256,
                 transformer_dropout: float = 0.1,
                 length_buckets: int = 1,
                 dcn_cross_layers: int = 3,
                 dnn_hidden_units: Sequence[int] = (1024, 512, 256),
                 dnn_activations: str | Sequence[str] = "ReLU",
                 head_hidden_units: Sequence[int] = (64, 32),
                 net_dropout: float = 0,
                 batch_norm: bool = False,
                 max_len: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         max_len=max_len, **kwargs)
        # once per distinct item; None: the item vectors themselves, as published
        self.item_projection = (nn.Linear(self.item_dim, int(item_projection_dim), bias=False)
                                if item_projection_dim else None)
        width = 2 * int(item_projection_dim or self.item_dim)
        check_divisible("transformer_heads", transformer_heads, width,
                        "a position (history item beside target: 2 x item_projection_dim, "
                        "default the item vector)")
        for key, value in (("transformer_layers", transformer_layers),
                           ("length_buckets", length_buckets)):
            check_at_least(key, value, 1)
        self.build_encoder(width, transformer_heads, transformer_layers, transformer_ffn_dim,
                           transformer_dropout, length_buckets)
        self.pool_projection = nn.Linear(width, width)
        cross_dim = self.row_dim + self.item_dim + width
        dcn_dim = self.build_dcn(cross_dim, dcn_cross_layers, dnn_hidden_units, dnn_activations,
                                 net_dropout, batch_norm)
        # the published head has neither dropout nor batch norm
        self.head = logit_mlp(dcn_dim, head_hidden_units, dnn_activations, 0, False)
        self.finish_building(*self.encoder_layers, self.cross_net, self.parallel_dnn, self.head)

    def encoder_outputs(self, cells: torch.Tensor, real: torch.Tensor,
                        target: torch.Tensor) -> torch.Tensor:
        """(rows, width, 2 d) encoder outputs for packed history vectors cells (rows, width, d),
        real (rows, width) and target vectors (rows, d); d: the (projected) item width."""
        x = torch.cat([cells, target.unsqueeze(1).expand_as(cells)], dim=-1)
        padding = self.key_padding_mask(real)
        no_key = padding.all(dim=1, keepdim=True)
        last = torch.arange(padding.shape[1], device=padding.device) == padding.shape[1] - 1
        return self.run_encoder(x, padding & ~(no_key & last))

    def pooled(self, outputs: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """(rows, 2 d): Linear(max over the real positions), 0 for rows without any."""
        has_history = real.any(dim=1, keepdim=True)
        pooled = max_over_real(outputs, real)
        # no -inf may reach the Linear: its weight gradient would be 0 * inf = NaN
        pooled = torch.where(has_history, pooled, 0)
        return self.pool_projection(pooled) * has_history.to(pooled.dtype)

    def sequence_features(self, cells: torch.Tensor, real: torch.Tensor,
                          target: torch.Tensor) -> torch.Tensor:
        """(rows, 2 d) pooled vectors of every row, encoded in length_buckets groups of rows
        of similar history length."""
        return self.encode_in_buckets(
            lambda c, r, t: self.pooled(self.encoder_outputs(c, r, t), r), cells, real, target)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs, dense=True)
        item_emb, target_emb = self.embed_item_batch(batch)
        real = batch["dense_real"]
        projected = item_emb if self.item_projection is None else self.item_projection(item_emb)
        pooled = self.sequence_features(self.dense_history(projected, batch), real,
                                        projected.index_select(0, batch["target_slot"]))
        x = self.dnn_input(inputs, target_emb, pooled)
        return {"logit": self.head(self.dcn(x))}
