"""DIN plus multi-head target cross-attention (a public DIN variant of the challenge).

Two views of the history, side by side, into the DNN:
- DIN's pooled interest: the baseline DIN's attention (attention.SplitDINAttention) over the
  real history positions;
- target cross-attention: cross_attention_layers blocks, each
      q = q + Dropout(MHA(RMSNorm(q), RMSNorm(history)))      (pre-norm, residual)
      q = q + Dropout(FFN(RMSNorm(q)))
  with q starting as the target item vector and keys/values the real history items
  (cross_attention_heads heads, softmax over each row's real positions; a row with no
  history gets no attention term). attention.SparseTargetAttention computes keys and values
  once per distinct item and one score per real position; padding is never seen.
DNN input: [row features, target, DIN pooled, cross-attention output].

The variant's other parts are data: a user_id embedding and the items' likes/views levels as
item-side features come from the dataset config (user_id as a categorical row feature,
levels as `source: item` columns of item_info); this model just uses the feature map.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fuxictr.pytorch.layers import MLP_Block
from torch import nn

from .attention import SparseTargetAttention
from .items import ItemSequenceModel, check_divisible
from .layers import logit_mlp
from .pooling import DINPooling

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from fuxictr.features import FeatureMap


class CrossAttentionBlock(nn.Module):
    """One pre-norm residual block of target cross-attention plus feed-forward."""

    def __init__(self, dim: int, attention_dim: int | None, num_heads: int, ffn_dim: int,
                 dropout: float = 0.) -> None:
        super().__init__()
        self.query_norm = nn.RMSNorm(dim)
        self.item_norm = nn.RMSNorm(dim)
        self.attention = SparseTargetAttention(dim, attention_dim, num_heads, scores="softmax")
        self.ffn_norm = nn.RMSNorm(dim)
        self.ffn = MLP_Block(input_dim=dim, hidden_units=[ffn_dim], hidden_activations="ReLU",
                             output_dim=dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, item_emb: torch.Tensor, history_slot: torch.Tensor,
                history_row: torch.Tensor) -> torch.Tensor:
        keys_values = self.attention.keys_values(self.item_norm(item_emb))
        query = query + self.dropout(self.attention.attend(
            self.query_norm(query), None, history_slot, history_row, keys_values))
        return query + self.dropout(self.ffn(self.ffn_norm(query)))


class DINCrossAttention(DINPooling, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "DINCrossAttention",
                 gpu: int = -1,
                 embedding_dim: int = 64,
                 dnn_hidden_units: Sequence[int] = (1024, 512, 256),
                 dnn_activations: str | Sequence[str] = "ReLU",
                 attention_hidden_units: Sequence[int] = (512, 256),
                 attention_hidden_activations: str | Sequence[str] = "ReLU",
                 attention_output_activation: str | None = None,
                 attention_dropout: float = 0,
                 cross_attention_layers: int = 2,
                 cross_attention_heads: int = 4,
                 cross_attention_dim: int | None = None,
                 cross_attention_ffn_dim: int = 512,
                 cross_attention_dropout: float = 0,
                 net_dropout: float = 0,
                 batch_norm: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         **kwargs)
        self.build_din_attention(attention_hidden_units, attention_hidden_activations,
                                 attention_output_activation, attention_dropout)
        cross_attention_dim = int(cross_attention_dim or self.item_dim)
        check_divisible("cross_attention_heads", cross_attention_heads, cross_attention_dim,
                        "cross_attention_dim (default: the item vector)")
        self.cross_blocks = nn.ModuleList(
            CrossAttentionBlock(self.item_dim, cross_attention_dim, int(cross_attention_heads),
                                int(cross_attention_ffn_dim), cross_attention_dropout)
            for _ in range(int(cross_attention_layers)))
        self.dnn = logit_mlp(self.row_dim + 3 * self.item_dim,
                             dnn_hidden_units, dnn_activations, net_dropout, batch_norm)
        self.finish_building(self.attention_layers, *self.cross_blocks, self.dnn)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs)
        item_emb, target_emb = self.embed_item_batch(batch)
        pooled = self.din_pooled(batch, item_emb, target_emb)
        query = target_emb
        for block in self.cross_blocks:
            query = block(query, item_emb, batch["history_slot"], batch["history_row"])
        return {"logit": self.dnn(self.dnn_input(inputs, target_emb, pooled, query))}
