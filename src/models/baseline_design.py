"""The organisers' data path, re-written from its description as a measuring stick.

Their loader reads a split with pandas into one int64 matrix, and per batch collates rows,
looks up item_info with `iloc` and turns each item column into arrays through Python lists
(`np.array(col.to_list())`), float64 embeddings included; their DIN then embeds every one of
the batch_size * (max_len + 1) item slots. We never train with this: the benchmark measures
it beside our path, and the tests use it to show both paths feed the model the same values
and give the same predictions from the same weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.dataloader import default_collate

from .din import DIN

if TYPE_CHECKING:
    from fuxictr.features import FeatureMap

# what BaselineCollator gives and BaselineDIN takes: (batch_dict, item_dict, mask)
BaselineBatch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]


class BaselineSplit(Dataset):
    """A split as one int64 matrix (list columns expanded), rows served one at a time."""

    def __init__(self, data_path: Path | str) -> None:
        frame = pd.read_parquet(data_path)
        self.column_index, arrays, position = {}, [], 0
        for name in frame.columns:
            if frame[name].dtype == "object":
                array = np.array(frame[name].to_list())
                self.column_index[name] = list(range(position, position + array.shape[1]))
                position += array.shape[1]
            else:
                array = frame[name].to_numpy()
                self.column_index[name] = position
                position += 1
            arrays.append(array)
        self.matrix = np.column_stack(arrays)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.matrix[index, :]

    def __len__(self) -> int:
        return self.matrix.shape[0]


class BaselineCollator:
    """Rows -> (batch_dict, item_dict, mask) with a pandas item_info lookup per batch."""

    def __init__(self, feature_map: FeatureMap, item_info_path: Path | str,
                 column_index: dict[str, int | list[int]], max_len: int = 64) -> None:
        self.item_info = pd.read_parquet(item_info_path)
        self.columns = set(feature_map.features) | set(feature_map.labels)
        self.column_index = column_index
        self.max_len = max_len

    def __call__(self, rows: list[np.ndarray]) -> BaselineBatch:
        batch = default_collate(rows)
        batch_dict = {name: batch[:, index] for name, index in self.column_index.items()
                      if name in self.columns}
        history = batch_dict.pop("item_seq")[:, -self.max_len:]
        mask = (history > 0).float()
        target = batch_dict.pop("item_id").numpy().reshape(-1, 1)
        slots = np.hstack([history.numpy(), target]).flatten()
        item_rows = self.item_info.iloc[slots]
        item_dict = {name: torch.from_numpy(np.array(item_rows[name].to_list()))
                     for name in item_rows.columns if name in self.columns}
        return batch_dict, item_dict, mask


def baseline_loader(feature_map: FeatureMap, data_path: Path | str, item_info_path: Path | str,
                    batch_size: int, shuffle: bool = False, max_len: int = 64) -> DataLoader:
    split = BaselineSplit(data_path)
    return DataLoader(split, batch_size=batch_size, shuffle=shuffle, num_workers=0,
                      collate_fn=BaselineCollator(feature_map, item_info_path,
                                                  split.column_index, max_len))


def to_device(batch: BaselineBatch, device: torch.device) -> BaselineBatch:
    """The baseline moved each tensor, float64 embeddings as they are, to the model's device."""
    batch_dict, item_dict, mask = batch
    return ({k: v.to(device) for k, v in batch_dict.items()},
            {k: v.to(device) for k, v in item_dict.items()}, mask.to(device))


class BaselineDIN(DIN):
    """Our DIN's layers, fed the baseline's way: every item slot of the batch embedded."""

    def forward(self, inputs: BaselineBatch) -> dict[str, torch.Tensor]:
        batch_dict, item_dict, mask = to_device(inputs, self.device)
        emb_list = []
        other = {name: value for name, value in batch_dict.items()
                 if name in self.feature_map.features
                 and self.feature_map.features[name]["type"] != "meta"}
        if other:
            emb_list.append(self.embedding_layer(other, flatten_emb=True))
        item_emb = self.embedding_layer(item_dict, flatten_emb=True)
        item_emb = item_emb.view(mask.shape[0], -1, self.item_dim)
        target_emb, history_emb = item_emb[:, -1], item_emb[:, :-1]
        emb_list += [target_emb, self.attention_layers(target_emb, history_emb, mask)]
        return {"logit": self.dnn(torch.cat(emb_list, dim=-1))}

    def get_labels(self, inputs: BaselineBatch) -> torch.Tensor:
        return inputs[0][self.feature_map.labels[0]].to(self.device).float().view(-1, 1)
