"""Flat QIN: the 2nd place's model of the challenge as published (team DISCO.AHU,
github.com/salmon1802/QIN, QIN_variety_v9), written here on our item layout.

1. Target attention (attention.SparseTargetAttention, scores "relu"): ONE head, as wide as
   twice the item vector; each real history position gets the weight
   relu(q . k / sqrt(2 item_dim)) (no softmax), and interest = target + W_o(sum of weighted
   values): the target is a residual, so a row with no history has interest = target.
2. One flat vector x = [row feature embeddings, target item vector, interest vector], D wide.
3. qin_layers flat quadratic layers, each residual:
       h = sum_r Dropout(W_r x + b_r),  r = 1..qin_rank   (W_r: D x D; one Linear D -> R*D)
       x <- x + Dropout(PReLU(BN(x * h)))
   The element-wise product with a linear map of x makes each layer quadratic, so layer l
   reaches feature interactions of degree up to 2^l; the residual keeps the lower degrees.
   Without dropout the R maps add up to one D x D map: qin_rank changes the initial scale of
   h and the dropout's noise (each W_r x is dropped on its own), as in the published layer,
   whose best config has 3 (its README: 4 scored best but trained unstably on some machines).
4. One Float32Linear from x to the logit: no MLP.

Unlike QIN (qin.py: per-field interaction layers, then an MLP), nothing here is per field,
and nothing bounds x before a product (QIN normalises each layer's input): only batch norm,
after it. So the model relies on batch norm's statistics: untrained, in eval mode (initial
statistics), its logits on generated data reach 1e31; training mode uses the batch's.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from .items import ItemSequenceModel, check_at_least
from .layers import Float32Linear
from .pooling import TargetInterest

if TYPE_CHECKING:
    import torch
    from fuxictr.features import FeatureMap


class FlatQuadraticLayer(nn.Module):
    """x + Dropout(PReLU(BN(x * sum_r Dropout(W_r x + b_r)))) (module docstring, step 3)."""

    def __init__(self, dim: int, rank: int, dropout: float = 0., batch_norm: bool = True) -> None:
        super().__init__()
        self.rank = rank
        self.maps = nn.Linear(dim, rank * dim)  # the rank maps W_r, b_r stacked
        self.map_dropout = nn.Dropout(dropout)
        self.norm = nn.BatchNorm1d(dim) if batch_norm else nn.Identity()
        self.activation = nn.PReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, D)
        h = self.map_dropout(self.maps(x)).view(x.shape[0], self.rank, -1).sum(1)
        return x + self.dropout(self.activation(self.norm(x * h)))


class FlatQIN(TargetInterest, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "FlatQIN",
                 gpu: int = -1,
                 embedding_dim: int = 128,
                 attention_dropout: float = 0,
                 qin_layers: int = 4,
                 qin_rank: int = 3,
                 net_dropout: float = 0.1,
                 batch_norm: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         **kwargs)
        check_at_least("qin_rank", qin_rank, 1)
        check_at_least("qin_layers", qin_layers, 0)
        # one head twice as wide as the item vector, as published
        self.build_target_attention(2 * self.item_dim, 1, attention_dropout)
        width = self.row_dim + 2 * self.item_dim
        self.interaction_layers = nn.Sequential(*(
            FlatQuadraticLayer(width, int(qin_rank), net_dropout, batch_norm)
            for _ in range(int(qin_layers))))
        self.output = Float32Linear(width, 1)
        self.finish_building(self.interaction_layers)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs)
        item_emb, target_emb = self.embed_item_batch(batch)
        interest = self.target_interest(batch, item_emb, target_emb)
        x = self.interaction_layers(self.dnn_input(inputs, target_emb, interest))
        return {"logit": self.output(x)}
