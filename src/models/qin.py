"""QIN-style model: ReLU target attention + a quadratic interaction network over fields.

After the 2nd-place team's QIN; our own design, layer by layer:

1. Target attention (attention.SparseTargetAttention, scores "relu"): per head, each real
   history position gets the weight relu(q . k / sqrt(head_dim)) with q from the target and
   k, v from the history item; weights are not normalised (no softmax), so how much of the
   history matches the target, not only which part, reaches the model. The interest vector is
   target + W_o(sum of weighted values): a residual around the attention, so a row with no
   history has interest = target. Keys and values are computed once per distinct item.
2. Fields: each row feature, each item-side feature of the target and each item-side part
   of the interest vector is one field; fields are brought to a common width e
   (embedding_dim) by a linear projection where their width differs (one projection per
   item-side feature, shared by target and interest). X_0: (batch, F, e).
3. Quadratic interaction network, qin_layers layers, each pre-norm and residual:
       Z = RMSNorm(X_l)
       A = U Z,  B = V Z             U, V: (K, F) mix the F fields into K = qin_heads fields
       P = (A W) * B                 W: (e, e); the element-wise product is the quadratic term
       X_{l+1} = X_l + Dropout(M P)  M: (F, K) maps the K products back onto the fields
   Each layer multiplies two learned linear combinations of fields, so layer l reaches
   interactions of degree up to 2^l; the residual keeps every lower degree, the norm keeps
   the products' scale in check.
4. The flattened X_L (F * e) goes through the MLP to the Float32Linear logit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .items import ItemSequenceModel, check_at_least, check_divisible
from .layers import logit_mlp
from .pooling import TargetInterest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fuxictr.features import FeatureMap


class QuadraticInteractionLayer(nn.Module):
    """One residual layer of the quadratic interaction network (module docstring, step 3)."""

    def __init__(self, num_fields: int, dim: int, num_products: int, dropout: float = 0.) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(dim)
        self.left_fields = nn.Linear(num_fields, num_products, bias=False)   # U
        self.right_fields = nn.Linear(num_fields, num_products, bias=False)  # V
        self.left_dims = nn.Linear(dim, dim, bias=False)                     # W
        self.back_to_fields = nn.Linear(num_products, num_fields, bias=False)  # M
        self.dropout = nn.Dropout(dropout)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:  # (batch, F, e)
        z = self.norm(fields).transpose(1, 2)  # (batch, e, F): mix along the field axis
        left = self.left_dims(self.left_fields(z).transpose(1, 2))  # (batch, K, e)
        right = self.right_fields(z).transpose(1, 2)
        products = (left * right).transpose(1, 2)  # (batch, e, K)
        return fields + self.dropout(self.back_to_fields(products).transpose(1, 2))


class QIN(TargetInterest, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "QIN",
                 gpu: int = -1,
                 embedding_dim: int = 64,
                 attention_dim: int | None = None,
                 attention_heads: int = 4,
                 attention_dropout: float = 0,
                 qin_layers: int = 3,
                 qin_heads: int = 16,
                 qin_dropout: float = 0,
                 dnn_hidden_units: Sequence[int] = (1024, 512, 256),
                 dnn_activations: str | Sequence[str] = "ReLU",
                 net_dropout: float = 0,
                 batch_norm: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         **kwargs)
        check_at_least("qin_heads", qin_heads, 1)
        check_at_least("qin_layers", qin_layers, 0)
        attention_dim = int(attention_dim or self.item_dim)
        check_divisible("attention_heads", attention_heads, attention_dim,
                        "attention_dim (default: the item vector)")
        self.build_target_attention(attention_dim, attention_heads, attention_dropout)
        self.field_dim = int(embedding_dim)
        # one projection per field whose embedding is not field_dim wide
        names = self.row_feature_names + self.item_feature_names
        dims = self.row_field_dims + self.item_field_dims
        self.field_projections = nn.ModuleDict({
            name: nn.Linear(dim, self.field_dim, bias=False)
            for name, dim in zip(names, dims) if dim != self.field_dim})
        num_fields = len(self.row_feature_names) + 2 * len(self.item_feature_names)
        self.interaction_layers = nn.Sequential(*(
            QuadraticInteractionLayer(num_fields, self.field_dim, int(qin_heads), qin_dropout)
            for _ in range(int(qin_layers))))
        self.dnn = logit_mlp(num_fields * self.field_dim, dnn_hidden_units, dnn_activations,
                             net_dropout, batch_norm)
        self.finish_building(self.interaction_layers, self.dnn)

    def fields(self, vector: torch.Tensor, names: Sequence[str],
               dims: Sequence[int]) -> list[torch.Tensor]:
        """[(batch, field_dim)] one per feature of a concatenated embedding vector."""
        return [self.field_projections[name](part) if name in self.field_projections else part
                for name, part in zip(names, vector.split(dims, dim=-1))]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs)
        item_emb, target_emb = self.embed_item_batch(batch)
        interest = self.target_interest(batch, item_emb, target_emb)
        fields = []
        row_emb = self.embed_rows(inputs)
        if row_emb is not None:
            fields += self.fields(row_emb, self.row_feature_names, self.row_field_dims)
        for vector in (target_emb, interest):
            fields += self.fields(vector, self.item_feature_names, self.item_field_dims)
        x = self.interaction_layers(torch.stack(fields, dim=1))
        return {"logit": self.dnn(x.flatten(start_dim=1))}
