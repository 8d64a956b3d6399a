"""The organisers' DIN (challenge task 1 fixes it; see docs/baseline_din.md).

Per row: the row features (likes_level and views_level in the baseline config; any others the
dataset config declares) are embedded; the target item and each of the last max_len history
items are represented by their item-side features from item_info (item_id, item_tags,
item_emb_d128 with the baseline config: 64 + 64 + 128 = 256 dims; any others declared with
source: item are added); DIN target attention pools the history (padded positions weigh 0);
[row features, target, pooled] go through the DNN. Embedding, attention and MLP layers are
FuxiCTR's own classes, so the parameters and arithmetic are the baseline's.

Three differences in how, not what (tests/test_baseline_design.py checks the outputs match the
baseline's design, tests/test_model_parts.py the split against the concatenation):
- the baseline embedded all batch_size * (max_len + 1) item slots; we embed each distinct item of
  the batch once and gather (src/models/items.py);
- the baseline ran the attention MLP on every history position and then multiplied padded
  positions' weights by 0; we run it on real positions only and sum their weighted vectors;
- the attention MLP's first layer is split into a per-row, a per-item and a per-position part
  (src/models/attention.py), a quarter of its work per position; split_attention=False runs it
  on the concatenation instead (same parameters, same results within float32 rounding).
Only with din_use_softmax (weights normalised over all max_len positions, padding included)
do we use FuxiCTR's dense layer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .items import ItemSequenceModel
from .layers import logit_mlp
from .pooling import DINPooling

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fuxictr.features import FeatureMap

    from ..data.item_table import ItemTable


class DIN(DINPooling, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "DIN",
                 gpu: int = -1,
                 dnn_hidden_units: Sequence[int] = (512, 128, 64),
                 dnn_activations: str | Sequence[str] = "ReLU",
                 attention_hidden_units: Sequence[int] = (64,),
                 attention_hidden_activations: str | Sequence[str] = "Dice",
                 attention_output_activation: str | None = None,
                 attention_dropout: float = 0,
                 learning_rate: float = 1e-3,
                 embedding_dim: int = 10,
                 net_dropout: float = 0,
                 batch_norm: bool = False,
                 din_use_softmax: bool = False,
                 embedding_regularizer: float | str | None = None,
                 net_regularizer: float | str | None = None,
                 item_info: str | None = None,
                 item_table: ItemTable | None = None,
                 max_len: int = 64,
                 split_attention: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         item_info=item_info, item_table=item_table, max_len=max_len,
                         learning_rate=learning_rate,
                         embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        self.split_attention = bool(split_attention)
        self.build_din_attention(attention_hidden_units, attention_hidden_activations,
                                 attention_output_activation, attention_dropout, din_use_softmax)
        # the logit comes out in float32; the base model applies the sigmoid (see layers.py)
        self.dnn = logit_mlp(self.row_dim + 2 * self.item_dim,
                             dnn_hidden_units, dnn_activations, net_dropout, batch_norm)
        self.finish_building(self.attention_layers, self.dnn)

    def pooled_and_target(self,
                          inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.attention_layers.use_softmax:  # weights normalised over all max_len positions
            history, target = self.history_and_target(inputs)
            history = history.long()
            item_vectors = self.item_embedder(torch.cat([history.reshape(-1), target]))
            target_emb = item_vectors(target)
            pooled = self.attention_layers(target_emb, item_vectors(history),
                                           self.is_real(history).float())
            return pooled, target_emb
        batch = self.prepare_items(inputs)
        item_emb, target_emb = self.embed_item_batch(batch)
        return self.din_pooled(batch, item_emb, target_emb), target_emb

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pooled_emb, target_emb = self.pooled_and_target(inputs)
        return {"logit": self.dnn(self.dnn_input(inputs, target_emb, pooled_emb))}
