"""Sequence Transformer + DCNv2: the 1st-place design of the challenge (arXiv:2505.03543).

The history items and the target form ONE sequence, [h_1 .. h_n, target] (most recent history
item next to the target), projected to transformer_dim, plus learned position embeddings by
recency (target 0, most recent history item 1, ..., up to max_len), through a stack of
transformer_layers nn.TransformerEncoderLayer (post-norm, as torch's default). From its
outputs: the last_k_outputs most recent positions (the target and the last_k_outputs - 1
most recent history items; cells a short history does not fill are 0) and a max-pool over
the real positions (the target included, so it is never empty). Those, the row features and
the target's item vector feed a DCNv2 cross network (FuxiCTR's CrossNetV2) beside an MLP;
their concatenated outputs go through the head MLP to the Float32Linear logit.

Mask and speed: the encoder of encoder.py (True = padding in the key padding mask; rows in
length_buckets groups). The target is never padding, so every query has at least one key and
rows with no history give no NaN; tests/test_model_parts.py shows that the 1st place's
inverted mask breaks padding invariance.
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


class TransformerDCN(HistoryEncoder, ParallelDCN, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "TransformerDCN",
                 gpu: int = -1,
                 embedding_dim: int = 64,
                 transformer_dim: int = 128,
                 transformer_heads: int = 1,
                 transformer_layers: int = 2,
                 transformer_ffn_dim: int = 256,
                 transformer_dropout: float = 0.1,
                 last_k_outputs: int = 16,
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
        check_divisible("transformer_heads", transformer_heads, int(transformer_dim),
                        "transformer_dim")
        for key, value in (("last_k_outputs", last_k_outputs), ("length_buckets", length_buckets),
                           ("transformer_layers", transformer_layers)):
            check_at_least(key, value, 1)
        self.last_k = int(last_k_outputs)
        self.input_projection = nn.Linear(self.item_dim, int(transformer_dim))
        # recency 0 (the target) .. max_len (the oldest history item kept)
        self.position_emb = nn.Embedding(self.max_len + 1, int(transformer_dim))
        self.build_encoder(int(transformer_dim), transformer_heads, transformer_layers,
                           transformer_ffn_dim, transformer_dropout, length_buckets)
        cross_dim = (self.row_dim + self.item_dim + (self.last_k + 1) * int(transformer_dim))
        dcn_dim = self.build_dcn(cross_dim, dcn_cross_layers, dnn_hidden_units, dnn_activations,
                                 net_dropout, batch_norm)
        self.head = logit_mlp(dcn_dim, head_hidden_units, dnn_activations, net_dropout,
                              batch_norm)
        self.finish_building(*self.encoder_layers, self.cross_net, self.parallel_dnn, self.head)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # nn.Embedding's default N(0, 1) would drown the projected item vectors
        nn.init.normal_(self.position_emb.weight, std=0.02)

    def encode(self, cells: torch.Tensor, real: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(last-k outputs flattened, max-pool) for rows whose packed history vectors are
        cells (rows, width, d) with real (rows, width), and target vectors (rows, d)."""
        rows, width, _ = cells.shape
        sequence = torch.cat([cells, target.unsqueeze(1)], dim=1)
        sequence_real = torch.cat([real, real.new_ones(rows, 1)], dim=1)
        recency = torch.arange(width, -1, -1, device=cells.device)
        x = sequence + self.position_emb(recency)
        x = self.run_encoder(x, self.key_padding_mask(sequence_real))
        pooled = max_over_real(x, sequence_real)
        last = (x * sequence_real.unsqueeze(-1).to(x.dtype))[:, -self.last_k:]
        if last.shape[1] < self.last_k:  # fewer cells than last_k: the oldest ones are empty
            last = torch.cat([last.new_zeros(rows, self.last_k - last.shape[1], last.shape[2]),
                              last], dim=1)
        return torch.cat([last.reshape(rows, -1), pooled], dim=-1)

    def sequence_features(self, item_emb: torch.Tensor, target_emb: torch.Tensor,
                          batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, (last_k + 1) * transformer_dim) encoder features of every row, encoded in
        length_buckets groups of rows of similar history length."""
        projected = self.input_projection(item_emb)  # once per distinct item
        target = self.input_projection(target_emb)
        real = batch["dense_real"]
        cells = self.dense_history(projected, batch)
        return self.encode_in_buckets(self.encode, cells, real, target)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs, dense=True)
        item_emb, target_emb = self.embed_item_batch(batch)
        x = self.dnn_input(inputs, target_emb, self.sequence_features(item_emb, target_emb, batch))
        return {"logit": self.head(self.dcn(x))}
