"""The regularisation penalty of our models: FuxiCTR's, in one loop, with per-feature weights.

FuxiCTR's BaseModel.regularization_loss adds, for every trainable parameter and every
(p, w) of get_regularizer(reg), (w / p) * ||param||_p^p: a float reg is an L2 weight w, so
the term is w / 2 * (sum of squared entries); 'l1(w)', 'l2(w)', 'l1_l2(a, b)' are strings of
the same pairs. `embedding_regularizer` applies to the parameters inside FuxiCTR's
FeatureEmbeddingDict modules (the embedding tables), `net_regularizer` to all others.

Beyond that, a feature_cols entry may carry its own `embedding_regularizer: W` (a number; the
feature map keeps it, src/data/features.py): that feature's embedding module is penalised
with (2, W) instead of the model's embedding_regularizer, e.g. a large user_id table whose
rows see only a few training rows each. A model may route other parameters elsewhere by
overriding penalty_of (InterestRegularized, src/models/interest.py): one loop sums them all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from fuxictr.pytorch.layers import FeatureEmbeddingDict
from fuxictr.pytorch.torch_utils import get_regularizer

from ..data.feature_cols import FEATURE_REGULARIZER

if TYPE_CHECKING:
    from torch import nn

_TABLES = "embedding_layers."  # FeatureEmbeddingDict's ModuleDict: one entry per feature


def embedding_parameters(model: nn.Module) -> dict[str, str | None]:
    """{parameter name: feature name or None} of the parameters inside FeatureEmbeddingDict
    modules, named as model.named_parameters() names them; the feature is the one whose
    embedding module holds the parameter (None for the dict's feature encoders)."""
    owners = {}
    for prefix, module in model.named_modules():
        if isinstance(module, FeatureEmbeddingDict):
            for name, _ in module.named_parameters():
                feature = name.split(".")[1] if name.startswith(_TABLES) else None
                owners[f"{prefix}.{name}" if prefix else name] = feature
    return owners


class PenaltyLoop:
    """regularization_loss as FuxiCTR computes it, plus per-feature embedding weights.

    Subclasses choose the (power, weight) pairs of a parameter with penalty_of; the pairs
    of the model's two keys come from FuxiCTR's own get_regularizer, so their meaning
    ('l2(1.e-5)', a float, None) is FuxiCTR's."""

    def penalty_of(self, name: str, feature: str | None,
                   is_embedding: bool) -> list[tuple[int, float]]:
        """(power, weight) pairs for parameter `name`; feature is its embedding's feature
        (None outside an embedding table), is_embedding whether FuxiCTR counts it as one."""
        if feature is not None:
            weight = self.feature_map.features.get(feature, {}).get(FEATURE_REGULARIZER)
            if weight is not None:
                return [(2, float(weight))]
        return get_regularizer(self._embedding_regularizer if is_embedding
                               else self._net_regularizer)

    def regularization_loss(self) -> torch.Tensor | float:
        owners = embedding_parameters(self)
        total = 0
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            for power, weight in self.penalty_of(name, owners.get(name), name in owners):
                total = total + (weight / power) * torch.norm(param, power) ** power
        return total
