"""Items as every model here sees them: looked up in the item table, embedded once per batch.

A batch row holds a target item (`item_id`) and a history (`item_seq`: item ids, LEFT-padded
with 0, most recent last; the last `max_len` are used). An item is represented by its
item-side features (`source: item` in the dataset config), looked up by id in the ItemTable
and embedded by FuxiCTR's FeatureEmbedding: the item vector, `item_dim` wide, is their
concatenation in feature-map order. All other non-meta features of a row (likes_level,
views_level, user_id, ...) are "row features", embedded by the same FeatureEmbedding.
No feature name is hard-coded beyond item_id and item_seq: whatever the dataset config
declares is used.

Mask convention: a history position is real when its id is > 0 (`is_real`); id 0 is padding.
Padding never reaches a model's output: it is left out (sparse layout) or zeroed and masked
(dense layout), so neither the contents of item-table row 0 nor the number or place of
padded positions change a score.

Each distinct item of a batch (targets and real history items) is embedded once; positions
refer to it by its slot among the distinct items. Two layouts of the history:
- sparse (always): one entry per real position, `history_slot` (its item's slot) and
  `history_row` (its batch row), flattened over the batch. Attention that scores each
  position on its own (DIN, QIN) runs on these entries only.
- dense (prepare_items(..., dense=True)): the real items of each row packed to the right of a
  (batch, width) grid, most recent last, width = the longest real history of the batch (at
  least 1), `dense_slot` (slot of each cell; anything in padded cells) and `dense_real`
  (True = a real item). Packing makes "the k most recent items" the last k cells of every
  row, wherever the padding was; dropping the columns that are padding in every row changes
  nothing once padding is masked.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from fuxictr.pytorch.layers import FeatureEmbedding

from ..data.features import item_features
from ..data.item_table import ItemTable
from ..data.loader import HISTORY, TARGET
from ..errors import ConfigError
from .base import MMCTRModel

if TYPE_CHECKING:
    from pathlib import Path

    from fuxictr.features import FeatureMap
    from torch import nn

logger = logging.getLogger(__name__)


def field_dim(spec: dict[str, Any], default_dim: int) -> int:
    """Output width of one feature's embedding, as FuxiCTR's FeatureEmbedding makes it."""
    return int(spec.get("emb_output_dim", spec.get("embedding_dim", default_dim)))


def row_features(feature_map: FeatureMap) -> list[str]:
    """Names of the non-item, non-meta features (one value per batch row), in map order."""
    return [name for name, spec in feature_map.features.items()
            if spec["type"] != "meta" and spec.get("source") != "item"]


def check_divisible(key: str, value: int | str, dim: int, what: str) -> None:
    """ConfigError unless the head count `key=value` divides `dim`, the width of `what`."""
    if int(value) < 1 or dim % int(value):
        divisors = ", ".join(str(d) for d in (1, 2, 4, 8, 16) if dim % d == 0)
        raise ConfigError(f"{key}={value}: the heads must split {what}, {dim} wide, evenly. "
                          f"Fix: set {key} to a divisor of {dim} ({divisors}) or make the "
                          f"width a multiple of {value}")


def check_at_least(key: str, value: int | str, minimum: int) -> None:
    """ConfigError unless the count `key=value` is at least `minimum`."""
    if int(value) < minimum:
        raise ConfigError(f"{key}={value}: must be at least {minimum}. Fix: set {key} >= "
                          f"{minimum}")


class ItemSequenceModel(MMCTRModel):
    """MMCTRModel plus the item table, the shared FeatureEmbedding and the item lookups.

    Subclasses build their layers after calling this __init__, then call finish_building."""

    def __init__(self, feature_map: FeatureMap, embedding_dim: int = 10,
                 item_info: Path | str | None = None, item_table: ItemTable | None = None,
                 max_len: int = 64, loss: str = "binary_crossentropy", **kwargs: Any) -> None:
        super().__init__(feature_map, **kwargs)
        self.max_len = int(max_len)
        self._loss = loss
        specs = feature_map.features
        self.item_feature_names = item_features(feature_map)
        if not self.item_feature_names:
            raise ConfigError("feature_cols: no feature has source: item. Fix: mark the "
                              "item-side features (at least item_id) with source: item")
        self.item_field_dims = [field_dim(specs[n], embedding_dim) for n in self.item_feature_names]
        self.item_dim = sum(self.item_field_dims)
        self.row_feature_names = row_features(feature_map)
        self.row_field_dims = [field_dim(specs[n], embedding_dim) for n in self.row_feature_names]
        self.row_dim = sum(self.row_field_dims)
        # The table is data, not weights: built from item_info unless the caller passes one.
        self.item_table = item_table or ItemTable.from_parquet(item_info, feature_map)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        logger.info("%s: item vector %d dims (%s), row features %d dims (%s)",
                    type(self).__name__, self.item_dim, ", ".join(self.item_feature_names),
                    self.row_dim, ", ".join(self.row_feature_names) or "none")

    def finish_building(self, *compiled_blocks: nn.Module) -> None:
        """Loss, FuxiCTR's initialisation, device; then torch_compile's blocks."""
        self.configure(self._loss)
        self.reset_parameters()
        self.model_to_device()
        self.compile_blocks(*compiled_blocks)

    # ---- row features ----
    def get_inputs(self, inputs: dict[str, torch.Tensor],
                   feature_source: str | list[str] | None = None) -> dict[str, torch.Tensor]:
        """Row features of the batch on the model's device."""
        return {name: inputs[name].to(self.device) for name in self.row_feature_names
                if name in inputs}

    def embed_rows(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(batch, row_dim) embeddings of the row features, or None when there are none."""
        features = self.get_inputs(inputs)
        return self.embedding_layer(features, flatten_emb=True) if features else None

    def dnn_input(self, inputs: dict[str, torch.Tensor], *parts: torch.Tensor) -> torch.Tensor:
        """The row features' embeddings (when the dataset declares any) followed by parts,
        concatenated along the last dimension: the input of a model's DNN or linear part."""
        row_emb = self.embed_rows(inputs)
        return torch.cat(([row_emb] if row_emb is not None else []) + list(parts), dim=-1)

    # ---- items ----
    @staticmethod
    def is_real(history: torch.Tensor) -> torch.Tensor:
        """True where a history position holds an item, False where it is padding (id 0)."""
        return history > 0

    def distinct_items(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct ids among item_ids, slot_of: a table-sized map from id to its row among
        them). A scatter into a marker the size of the item table instead of torch.unique's
        sort: linear time, on any device."""
        num_items, device = self.item_table.num_items, item_ids.device
        seen = torch.zeros(num_items, dtype=torch.bool, device=device)
        seen[item_ids] = True
        distinct = seen.nonzero().reshape(-1)
        slot_of = torch.zeros(num_items, dtype=torch.long, device=device)
        slot_of[distinct] = torch.arange(len(distinct), device=device)
        return distinct, slot_of

    def item_embedder(self, item_ids: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """A function giving the item vectors of ids drawn from item_ids (any shape); each
        distinct item is embedded once."""
        distinct, slot_of = self.distinct_items(item_ids.reshape(-1))
        distinct_emb = self.embedding_layer(self.item_table.lookup(distinct), flatten_emb=True)
        return lambda ids: distinct_emb[slot_of[ids]]

    def embed_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Item vectors (..., item_dim) for a LongTensor of item ids of any shape."""
        return self.item_embedder(item_ids)(item_ids)

    def history_and_target(self,
                           inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The last max_len history ids (batch, width) and the target ids, on the device."""
        history = inputs[HISTORY][:, -self.max_len:].to(self.device)
        return history, inputs[TARGET].to(self.device).long()

    def prepare_items(self, inputs: dict[str, torch.Tensor],
                      dense: bool = False) -> dict[str, torch.Tensor]:
        """The item-side inputs of a batch (see the module docstring for the layouts): the
        features of its distinct items ("items"), "target_slot", the sparse "history_slot"
        and "history_row", and with dense=True "dense_slot" and "dense_real"."""
        history, target = self.history_and_target(inputs)
        real = self.is_real(history)
        # real positions as flat indexes; flat index_select is several times cheaper on the
        # CPU than 2-D advanced indexing
        positions = real.reshape(-1).nonzero().reshape(-1)
        rows = positions // history.shape[1]
        history_ids = history.reshape(-1).index_select(0, positions).long()
        distinct, slot_of = self.distinct_items(torch.cat([history_ids, target]))
        batch = {"items": self.item_table.lookup(distinct),
                 "target_slot": slot_of.index_select(0, target),
                 "history_slot": slot_of.index_select(0, history_ids), "history_row": rows}
        if dense:
            batch.update(self._pack_right(real, positions, rows, batch["history_slot"]))
        return batch

    @staticmethod
    def _pack_right(real: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor,
                    history_slot: torch.Tensor) -> dict[str, torch.Tensor]:
        """The dense layout: each row's real items in its last cells, in their order."""
        # recency of a real position: 1 for the most recent real item of its row, 2 for the
        # one before, ... (padding anywhere in the row does not count)
        recency = real.flip(1).cumsum(1).flip(1).reshape(-1).index_select(0, positions)
        width = max(int(real.sum(1).max()) if real.numel() else 0, 1)
        cells = rows * width + (width - recency)
        dense_slot = history_slot.new_zeros(real.shape[0] * width).index_copy(0, cells,
                                                                             history_slot)
        dense_real = torch.zeros(real.shape[0] * width, dtype=torch.bool, device=real.device)
        dense_real[cells] = True
        return {"dense_slot": dense_slot.view(-1, width), "dense_real": dense_real.view(-1, width)}

    def embed_item_batch(self,
                         batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct item vectors (n_distinct, item_dim), target vectors (batch, item_dim))."""
        item_emb = self.embedding_layer(batch["items"], flatten_emb=True)
        return item_emb, item_emb.index_select(0, batch["target_slot"])

    @staticmethod
    def dense_history(item_emb: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, width, item_dim) history vectors in the dense layout, padded cells zero."""
        cells = item_emb.index_select(0, batch["dense_slot"].reshape(-1))
        cells = cells.view(*batch["dense_slot"].shape, -1)
        return cells * batch["dense_real"].unsqueeze(-1).to(cells.dtype)
