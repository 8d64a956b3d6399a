"""The interest tower shared by DINInterest and CosineInterest: the cosine between a target
item's content and the content of the row's history, and a content bias.

Given each item's content vector c (the item vector's columns of `interest_features`; by
default the item-side features of type embedding: the multimodal vectors, frozen, through
FuxiCTR's linear projection) and one projection P (content -> interest_dim):
    taste(row)  = normalise(sum over the row's real history items h of P c_h)
    match(row)  = scale * normalise(P c_target) * taste(row)          (elementwise)
    score(row)  = sum(match) + w . c_target + b
sum(match) is scale times the cosine between the target's and the history's projected
content: "the click rate rises with how close the item is to the user's taste", a product
that ReLU layers fed with concatenated vectors learn poorly. One projection for both sides and
normalised vectors make it a cosine in a learned space, whatever the history's length (3
items or 60) and the content vectors' norms; scale (a learned number) sets its strength. A
row without history has taste 0 and match 0. The tower reads content, not ids, so it cannot
memorise single items or users and needs little regularisation: models using it penalise its
weights with interest_regularizer instead of net_regularizer (InterestRegularized).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from fuxictr.pytorch.torch_utils import get_regularizer
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .attention import sum_by_row

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .items import ItemSequenceModel

INITIAL_SCALE = 5.0  # about the strength of a strong taste effect, in logit units


def content_columns(model: ItemSequenceModel, names: Sequence[str] | None) -> torch.Tensor:
    """Indexes of the item vector's columns that hold the item-side features `names` (None:
    those of type embedding), for a model built on items.ItemSequenceModel."""
    specs = model.feature_map.features
    if names is None:
        names = [n for n in model.item_feature_names if specs[n]["type"] == "embedding"]
        if not names:
            raise ConfigError("interest_features: null takes the item-side features of type "
                              "embedding, and there are none. Fix: declare one "
                              "(item_emb_d128, source: item) or list the features to use")
    unknown = [n for n in names if n not in model.item_feature_names]
    if unknown:
        raise ConfigError(f"interest_features: {', '.join(map(str, unknown))} is not an "
                          f"item-side feature. Fix: choose among "
                          f"{', '.join(model.item_feature_names)}")
    columns, start = [], 0
    for name, dim in zip(model.item_feature_names, model.item_field_dims):
        if name in names:
            columns += range(start, start + dim)
        start += dim
    return torch.tensor(columns, dtype=torch.long)


class InterestTower(nn.Module):
    def __init__(self, columns: torch.Tensor, interest_dim: int) -> None:
        super().__init__()
        self.register_buffer("columns", columns, persistent=False)
        self.projection = nn.Linear(len(columns), int(interest_dim), bias=False)
        self.content_score = nn.Linear(len(columns), 1)
        self.scale = nn.Parameter(torch.tensor(INITIAL_SCALE))

    def forward(self, item_emb: torch.Tensor,
                batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(match (batch, interest_dim), score (batch, 1)) for the distinct item vectors
        item_emb of a batch prepared by items.ItemSequenceModel.prepare_items (targets among
        them). Computed in float32 also under bfloat16 autocast: the score is part of the
        logit (see layers.py)."""
        with torch.autocast(item_emb.device.type, enabled=False):
            return self._match_and_score(item_emb.float(), batch)

    def _match_and_score(self, item_emb, batch):
        # each distinct item (targets included) is projected once
        content = item_emb.index_select(1, self.columns)
        projected = self.projection(content)
        target_slot = batch["target_slot"]
        taste = sum_by_row(projected.index_select(0, batch["history_slot"]),
                           batch["history_row"], target_slot.shape[0])
        target = F.normalize(projected.index_select(0, target_slot), dim=-1)
        match = self.scale * target * F.normalize(taste, dim=-1)
        score = match.sum(-1, keepdim=True) + self.content_score(
            content.index_select(0, target_slot))
        return match, score


class InterestRegularized:
    """For a model with an `interest` tower (built by build_interest): its weights take the
    model's interest_regularizer instead of net_regularizer. The rest is the penalty of every
    model (src/models/regularizer.py: FuxiCTR's embedding_regularizer and net_regularizer, and
    any feature's own embedding_regularizer), summed in that one loop."""

    def build_interest(self, interest_dim: int, interest_features: Sequence[str] | None,
                       interest_regularizer: float | str) -> None:
        """The tower `interest` over the content columns of interest_features."""
        self.interest_regularizer = interest_regularizer
        self.interest = InterestTower(content_columns(self, interest_features), interest_dim)

    def penalty_of(self, name: str, feature: str | None,
                   is_embedding: bool) -> list[tuple[int, float]]:
        if name.startswith("interest."):
            return get_regularizer(self.interest_regularizer)
        return super().penalty_of(name, feature, is_embedding)
