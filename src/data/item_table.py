"""The item-side features, loaded once and looked up by item id.

Item lookups in the baseline are positional: the features of item `i` are row `i` of item_info,
row 0 being the all-zero padding row. We keep each item-side feature as one tensor with a
row per item, so a lookup is a tensor index, on whatever device the table lives on.

Most item-side features are columns of item_info. Task-2 features may come from another
parquet keyed by item_id (`item_file`) or from the split files (`from_splits`); the feature
map's specs carry the paths (src/data/features.py), src/data/item_columns.py reads them into
the same one-row-per-item layout, so a model sees no difference.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .feature_cols import FROM_SPLITS, ITEM_FILE
from .features import item_features, item_origin
from .files import check_ids_are_row_numbers, read_columns
from .item_columns import fill_from_splits, mode_per_item, read_item_file
from .vocab import vocab_fix
from ..errors import DataError

if TYPE_CHECKING:
    from fuxictr.features import FeatureMap


def _check_vocab(name, spec, array, item_info_path):
    """Ids of a categorical/sequence item feature must index its embedding table."""
    if spec["type"] not in ("categorical", "sequence") or not array.size:
        return
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high < spec["vocab_size"]:
        return
    bad = ((array < 0) | (array >= spec["vocab_size"])).reshape(len(array), -1).any(axis=1)
    item = int(np.flatnonzero(bad)[0])
    source = spec.get(ITEM_FILE) or (f"the split files ({spec[FROM_SPLITS]})"
                                     if FROM_SPLITS in spec else item_info_path)
    raise DataError(source, f"item {item} of feature {name!r} holds an id outside "
                    f"[0, {spec['vocab_size'] - 1}] (vocab_size={spec['vocab_size']}); the "
                    f"largest is {high}", column=spec.get("column", name),
                    fix=vocab_fix(high) if low >= 0 else "ids must be >= 0 (0 is padding)")


def load_item_arrays(item_info_path: Path | str, feature_map: FeatureMap) -> dict[str, np.ndarray]:
    """{feature: numpy array with one row per item} for the item-side features of the map."""
    names = item_features(feature_map)
    specs = feature_map.features
    from_info = [n for n in names if item_origin(specs[n]) == "item_info"]
    # float32 is what the model computes in; int32 ids halve the bytes each lookup gathers
    list_dtypes = {n: (np.float32 if specs[n]["type"] == "embedding" else np.int32)
                   for n in from_info if specs[n]["type"] in ("sequence", "embedding")}
    scalar_dtypes = {n: np.float32 for n in from_info if specs[n]["type"] == "numeric"}
    keep_last = {n: specs[n]["max_len"] for n in from_info if specs[n]["type"] == "sequence"}
    columns = list(dict.fromkeys(["item_id"] + from_info))
    arrays = read_columns(item_info_path, columns, list_dtypes, keep_last=keep_last,
                          scalar_dtypes=scalar_dtypes)
    check_ids_are_row_numbers(arrays["item_id"], item_info_path)
    n_items = len(arrays["item_id"])
    by_file, covered = defaultdict(dict), {}
    for name in names:
        if ITEM_FILE in specs[name]:
            by_file[specs[name][ITEM_FILE]][name] = specs[name]
    for path, features in by_file.items():
        file_arrays, covered[path] = read_item_file(path, features, n_items)
        arrays.update(file_arrays)
    for name in names:
        spec = specs[name]
        if item_origin(spec) == FROM_SPLITS and ITEM_FILE in spec:
            arrays[name] = fill_from_splits(name, spec[ITEM_FILE], arrays[name],
                                            covered[spec[ITEM_FILE]], spec)
        elif item_origin(spec) == FROM_SPLITS:
            arrays[name] = mode_per_item(spec["split_files"], spec[FROM_SPLITS], n_items,
                                         spec["vocab_size"])
    for name in names:
        _check_vocab(name, specs[name], arrays[name], item_info_path)
    return {name: arrays[name] for name in names}


class ItemTable(nn.Module):
    """Item-side feature tensors as buffers, so they follow the model to its device.

    The buffers are not saved in checkpoints: they come from item_info, which may be rebuilt
    (task 1 swaps item embeddings) without retraining anything else.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.names = list(arrays)
        self.num_items = len(next(iter(arrays.values()))) if arrays else 0
        for name, array in arrays.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(array)),
                                 persistent=False)

    @classmethod
    def from_parquet(cls, item_info_path: Path | str, feature_map: FeatureMap) -> ItemTable:
        return cls(load_item_arrays(item_info_path, feature_map))

    def lookup(self, item_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """{feature: rows of the table for item_ids}; item_ids is a LongTensor of any shape."""
        flat = item_ids.reshape(-1)
        # index_select: 3x faster than tensor[ids] for row gathers on the CPU
        return {name: getattr(self, name).index_select(0, flat)
                .reshape(*item_ids.shape, *getattr(self, name).shape[1:])
                for name in self.names}
