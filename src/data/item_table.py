"""The item-side features of item_info, loaded once and looked up by item id.

Item lookups in the seed are positional: the features of item `i` are row `i` of item_info,
row 0 being the all-zero padding row. We keep each item-side feature as one tensor with a
row per item, so a lookup is a tensor index, on whatever device the table lives on.
"""
import numpy as np
import torch
from torch import nn

from .files import check_ids_are_row_numbers, read_columns
from .features import item_features


def load_item_arrays(item_info_path, feature_map):
    """{feature: numpy array with one row per item} for the item-side features of the map."""
    names = item_features(feature_map)
    specs = feature_map.features
    # float32 is what the model computes in; int32 ids halve the bytes each lookup gathers
    list_dtypes = {n: (np.float32 if specs[n]["type"] == "embedding" else np.int32)
                   for n in names if specs[n]["type"] in ("sequence", "embedding")}
    keep_last = {n: specs[n]["max_len"] for n in names if specs[n]["type"] == "sequence"}
    columns = list(dict.fromkeys(["item_id"] + names))
    arrays = read_columns(item_info_path, columns, list_dtypes, keep_last=keep_last)
    check_ids_are_row_numbers(arrays["item_id"], item_info_path)
    return {name: arrays[name] for name in names}


class ItemTable(nn.Module):
    """Item-side feature tensors as buffers, so they follow the model to its device.

    The buffers are not saved in checkpoints: they come from item_info, which may be rebuilt
    (task 1 swaps item embeddings) without retraining anything else.
    """

    def __init__(self, arrays):
        super().__init__()
        self.names = list(arrays)
        self.num_items = len(next(iter(arrays.values()))) if arrays else 0
        for name, array in arrays.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(array)),
                                 persistent=False)

    @classmethod
    def from_parquet(cls, item_info_path, feature_map):
        return cls(load_item_arrays(item_info_path, feature_map))

    def lookup(self, item_ids):
        """{feature: rows of the table for item_ids}; item_ids is a LongTensor of any shape."""
        flat = item_ids.reshape(-1)
        # index_select: 3x faster than tensor[ids] for row gathers on the CPU
        return {name: getattr(self, name).index_select(0, flat)
                .reshape(*item_ids.shape, *getattr(self, name).shape[1:])
                for name in self.names}
