"""MMCTRDataLoader: batches of a train/valid/test split as tensors, by slicing arrays.

The split is read once into numpy arrays (item_seq as int32 to halve its memory); a batch is a
slice of a permutation and one gather per column, with no pandas and no per-row Python.
Item-side features are not looked up here: the model looks them up in its ItemTable, on its
device, for the distinct items of the batch only.

A categorical feature with `oov: True` (feature map key `oov_idx`, the last row of its
vocabulary) is mapped as it is read: values outside [0, oov_idx - 1] (ids of users never seen
when the vocabulary was sized, or beyond a vocab_size set smaller than the ids) become
oov_idx, so they share one embedding row instead of raising an index error. The mapped value
is what the batch carries under the feature's name, also when it is the group_id (user_id):
group metrics then put all OOV users in one group, as FuxiCTR's own encoders do.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .files import read_columns
from ..errors import DataError

if TYPE_CHECKING:
    from fuxictr.features import FeatureMap

logger = logging.getLogger(__name__)

HISTORY = "item_seq"
TARGET = "item_id"
TEST_ID = "ID"


def split_columns(feature_map: FeatureMap, split: str) -> list[str]:
    """The columns of a split file the model needs: non-item features, history, target, ids."""
    columns = [name for name, spec in feature_map.features.items()
               if spec["type"] != "meta" and spec.get("source") != "item"]
    columns += [TARGET, HISTORY]
    if feature_map.group_id:
        columns.append(feature_map.group_id)
    if split == "test":
        columns.append(TEST_ID)
    else:
        columns += feature_map.labels
    return list(dict.fromkeys(columns))


class MMCTRDataLoader:
    """Iterable of batch dicts {column: tensor}, built like FuxiCTR's data loaders.

    FuxiCTR's RankDataLoader calls it as
    `MMCTRDataLoader(feature_map, data_path, split=..., batch_size=..., shuffle=..., **params)`.
    Batches hold the split's columns (item_seq cut to its last max_len items), labels as
    float32, and for the test split the ID column. Shuffling draws a fresh permutation each
    epoch from numpy's global generator, which run_expid seeds.
    """

    def __init__(self, feature_map: FeatureMap, data_path: Path | str, split: str = "train",
                 batch_size: int = 32, shuffle: bool = False, max_len: int = 64,
                 device: str | torch.device = "cpu", **kwargs: Any) -> None:
        if not str(data_path).endswith(".parquet"):
            data_path = f"{data_path}.parquet"
        self.data_path = str(data_path)
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.max_len = int(max_len)
        self.labels = [] if split == "test" else list(feature_map.labels)
        self.columns = split_columns(feature_map, split)
        oov = {name: spec["oov_idx"] for name, spec in feature_map.features.items()
               if "oov_idx" in spec and name in self.columns}
        # int32 storage halves the memory of a full-size split; batches widen as needed. OOV
        # columns are read as int64, so any id (even one beyond int32) maps to the OOV row.
        arrays = read_columns(self.data_path, self.columns, {HISTORY: np.int32},
                              scalar_dtype=np.int32, keep_last={HISTORY: self.max_len},
                              scalar_dtypes={name: np.int64 for name in oov},
                              null_fixes={label: "drop the rows without a label or fill them"
                                          for label in self.labels})
        for name, oov_idx in oov.items():
            arrays[name] = map_oov(arrays[name], oov_idx, self.data_path, name)
        if arrays[HISTORY].shape[1] < self.max_len:
            raise DataError(self.data_path, f"histories hold {arrays[HISTORY].shape[1]} items, "
                            f"fewer than max_len={self.max_len}", column=HISTORY,
                            fix="lower max_len in the model config or left-pad item_seq")
        self.tensors = {name: torch.from_numpy(array).to(device) for name, array in arrays.items()}
        for label in self.labels:
            self.tensors[label] = self.tensors[label].float()
        self.num_samples = len(arrays[TARGET])
        self.num_blocks = 1
        self.num_batches = (self.num_samples + self.batch_size - 1) // self.batch_size
        logger.info("Loaded %s: %d rows, %d batches of %d", self.data_path, self.num_samples,
                    self.num_batches, self.batch_size)

    def __len__(self):
        return self.num_batches

    def __iter__(self):
        device = next(iter(self.tensors.values())).device
        if self.shuffle:
            order = torch.from_numpy(np.random.permutation(self.num_samples)).to(device)
        for start in range(0, self.num_samples, self.batch_size):
            if self.shuffle:
                index = order[start:start + self.batch_size]
                yield {name: _gather(tensor, index) for name, tensor in self.tensors.items()}
            else:  # file order: a plain slice, no copy
                yield {name: tensor[start:start + self.batch_size]
                       for name, tensor in self.tensors.items()}


def map_oov(values: np.ndarray, oov_idx: int, path: Path | str, name: str) -> np.ndarray:
    """values with everything outside [0, oov_idx - 1] replaced by oov_idx, as int32."""
    outside = (values < 0) | (values >= oov_idx)
    count = int(np.count_nonzero(outside))
    if count:
        logger.info("%s: %d of %d %s values are outside [0, %d]: mapped to the OOV row %d",
                    path, count, len(values), name, oov_idx - 1, oov_idx)
    return np.where(outside, oov_idx, values).astype(np.int32)


def _gather(tensor, index):
    """tensor[index] along rows. On the CPU numpy's take is used: for batch-sized gathers
    torch's threaded index_select was 100x slower on our 2-core machine."""
    if tensor.device.type == "cpu":
        return torch.from_numpy(np.take(tensor.numpy(), index.numpy(), axis=0))
    return tensor.index_select(0, index)
