"""The interest tower (interest.py) with a linear part beside it: a two-tower model over item
content, the smallest model here.

logit = tower score (scale * cosine(target content, history content) + content bias)
      + w . [row features, target item vector] + b
The linear part (wide, as in wide & deep) carries what the tower does not see: row features
(user_id, likes/views levels) and the target's id embeddings (an item's own appeal). There
is no DNN and no attention: a row's history enters only through its projected, summed,
normalised content.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .interest import InterestRegularized
from .items import ItemSequenceModel
from .layers import Float32Linear

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from fuxictr.features import FeatureMap


class CosineInterest(InterestRegularized, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "CosineInterest",
                 gpu: int = -1,
                 embedding_dim: int = 16,
                 interest_dim: int = 32,
                 interest_features: Sequence[str] | None = None,
                 interest_regularizer: float | str = 0,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         **kwargs)
        self.build_interest(interest_dim, interest_features, interest_regularizer)
        self.wide = Float32Linear(self.row_dim + self.item_dim, 1)
        self.finish_building()

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs)
        item_emb, target_emb = self.embed_item_batch(batch)
        _, score = self.interest(item_emb, batch)
        return {"logit": self.wide(self.dnn_input(inputs, target_emb)) + score}
