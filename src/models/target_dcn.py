"""History-blind DCNv2: what a model gets from a row and its target item alone.

x = [row feature embeddings, target item vector] (the target's item-side features looked up
in the item table), then FuxiCTR's DCNv2 in its parallel form: CrossNetV2 beside an MLP,
their outputs concatenated into one Float32Linear logit. The history (item_seq) is never
read, so nothing of it is embedded either: scores are bit-identical under any change of the
history. Beside the history models its scores measure what the history adds; the anchors
suggest much of the real data's signal sits in the target's item-side features.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..data.loader import TARGET
from .dcn import ParallelDCN
from .items import ItemSequenceModel
from .layers import Float32Linear

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from fuxictr.features import FeatureMap


class TargetDCN(ParallelDCN, ItemSequenceModel):
    def __init__(self,
                 feature_map: FeatureMap,
                 model_id: str = "TargetDCN",
                 gpu: int = -1,
                 embedding_dim: int = 64,
                 dcn_cross_layers: int = 3,
                 dnn_hidden_units: Sequence[int] = (1024, 512, 256),
                 dnn_activations: str | Sequence[str] = "ReLU",
                 net_dropout: float = 0,
                 batch_norm: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_dim=embedding_dim,
                         **kwargs)
        input_dim = self.row_dim + self.item_dim
        dcn_dim = self.build_dcn(input_dim, dcn_cross_layers, dnn_hidden_units, dnn_activations,
                                 net_dropout, batch_norm)
        self.output = Float32Linear(dcn_dim, 1)
        self.finish_building(self.cross_net, self.parallel_dnn)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = inputs[TARGET].to(self.device).long()
        x = self.dnn_input(inputs, self.embed_items(target))
        return {"logit": self.output(self.dcn(x))}
