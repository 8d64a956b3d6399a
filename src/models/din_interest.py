"""DIN plus the interest tower (interest.py): the baseline DIN's design with an explicit
cosine between the target's content and the content of the row's history.

A DIN compares the target with the history only through its attention MLP and its DNN,
which must learn a product of two vectors from their concatenation. Here the tower's match
vector joins the DNN's input, [row features, target, DIN pooled, match], and the tower's
score (the scaled cosine plus a content bias) is added to the DNN's logit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .interest import InterestRegularized
from .items import ItemSequenceModel
from .layers import logit_mlp
from .pooling import DINPooling

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from fuxictr.features import FeatureMap


class DINInterest(InterestRegularized, DINPooling, ItemSequenceModel):
    # Arguments taken at one value only: DIN's key, which blocks copied from a DIN block
    # (YAML <<) carry; its attention pools without a softmax. Checked before any run.
    FIXED_ARGUMENTS = {"din_use_softmax": False}

    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "DINInterest",
                 gpu: int = -1,
                 embedding_dim: int = 64,
                 dnn_hidden_units: Sequence[int] = (1024, 512, 256),
                 dnn_activations: str | Sequence[str] = "ReLU",
                 attention_hidden_units: Sequence[int] = (512, 256),
                 attention_hidden_activations: str | Sequence[str] = "ReLU",
                 attention_output_activation: str | None = None,
                 attention_dropout: float = 0,
                 interest_dim: int = 64,
                 interest_features: Sequence[str] | None = None,
                 interest_regularizer: float | str = 0,
                 din_use_softmax: bool = False,
                 net_dropout: float = 0,
                 batch_norm: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         **kwargs)
        self.build_din_attention(attention_hidden_units, attention_hidden_activations,
                                 attention_output_activation, attention_dropout)
        if din_use_softmax:
            raise ConfigError("din_use_softmax: True: DINInterest's attention pools without a "
                              "softmax. Fix: set din_use_softmax: False for DINInterest")
        self.build_interest(interest_dim, interest_features, interest_regularizer)
        self.dnn = logit_mlp(self.row_dim + 2 * self.item_dim + int(interest_dim),
                             dnn_hidden_units, dnn_activations, net_dropout, batch_norm)
        self.finish_building(self.attention_layers, self.dnn)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = self.prepare_items(inputs)
        item_emb, target_emb = self.embed_item_batch(batch)
        pooled = self.din_pooled(batch, item_emb, target_emb)
        match, score = self.interest(item_emb, batch)
        return {"logit": self.dnn(self.dnn_input(inputs, target_emb, pooled, match)) + score}
