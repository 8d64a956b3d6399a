"""The data checks' tests' tiny dataset (test_validation.py, test_validation_values.py): one
good set of MicroLens-shaped parquet files, edits that break one thing, and the assertion that
the DataError names the file, column and row. Their fixtures `params` and `any_layout` are in
conftest.py.
"""
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.data.checks import validate_dataset
from src.errors import ConfigError, DataError

N_ITEMS, TAG_VOCAB, SEQ_LEN, TAG_LEN, EMB_DIM = 50, 20, 64, 5, 128
ROWS = {"train": 300, "valid": 100, "test": 120}


# --- tiny data of the real schema ------------------------------------------------------------
def _list_column(matrix, value_type):
    """A list<value_type> column from a 2-D array, one list per row."""
    matrix = np.asarray(matrix)
    offsets = np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel(), type=value_type))


def _histories(rng, n):
    """Left-padded histories: the last k positions hold item ids, the rest 0."""
    seq = np.zeros((n, SEQ_LEN), dtype=np.int64)
    for i, k in enumerate(rng.integers(1, SEQ_LEN + 1, size=n)):
        seq[i, SEQ_LEN - k:] = rng.integers(1, N_ITEMS, size=k)
    return seq


def make_dataset(root):
    """Write item_info, train, valid, test under root; return params like load_config's."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    tags = rng.integers(1, TAG_VOCAB, size=(N_ITEMS, TAG_LEN))
    tags[:, :2] = 0  # left padding
    tags[0] = 0
    emb = rng.normal(size=(N_ITEMS, EMB_DIM))
    emb[0] = 0.0
    item_info = pa.table({
        "item_id": pa.array(np.arange(N_ITEMS, dtype=np.int64)),
        "item_tags": _list_column(tags, pa.int64()),
        "item_emb_d128": _list_column(emb, pa.float64()),
    })
    pq.write_table(item_info, root / "item_info.parquet")
    for split, n in ROWS.items():
        columns = {}
        if split == "test":
            columns["ID"] = pa.array(np.arange(n, dtype=np.int64))
        columns.update({
            "user_id": pa.array(rng.integers(1, 1000, size=n)),
            "item_seq": _list_column(_histories(rng, n), pa.int64()),
            "item_id": pa.array(rng.integers(1, N_ITEMS, size=n)),
            "likes_level": pa.array(rng.integers(0, 10, size=n)),
            "views_level": pa.array(rng.integers(0, 10, size=n)),
        })
        if split != "test":
            columns["label"] = pa.array(rng.integers(0, 2, size=n))
        pq.write_table(pa.table(columns), root / f"{split}.parquet")
    return {
        "dataset_id": "tiny",
        "max_len": SEQ_LEN,
        "train_data": str(root / "train.parquet"),
        "valid_data": str(root / "valid.parquet"),
        "test_data": str(root / "test.parquet"),
        "item_info": str(root / "item_info.parquet"),
        "feature_cols": [
            {"name": "user_id", "active": True, "dtype": "int", "type": "meta"},
            {"name": "item_seq", "active": True, "dtype": "int", "type": "meta"},
            {"name": "likes_level", "active": True, "dtype": "int", "type": "categorical", "vocab_size": 11},
            {"name": "views_level", "active": True, "dtype": "int", "type": "categorical", "vocab_size": 11},
            {"name": "item_id", "active": True, "dtype": "int", "type": "categorical",
             "vocab_size": N_ITEMS, "source": "item"},
            {"name": "item_tags", "active": True, "dtype": "int", "type": "sequence", "max_len": TAG_LEN,
             "vocab_size": TAG_VOCAB, "source": "item"},
            {"name": "item_emb_d128", "active": True, "dtype": "float", "type": "embedding",
             "source": "item", "embedding_dim": EMB_DIM},
        ],
        "label_col": {"name": "label", "dtype": "float"},
    }


def edit(path, change, types=None):
    """Rewrite a parquet file after change(columns) mutates its columns (a dict of lists)."""
    table = pq.read_table(path)
    columns = table.to_pydict()
    change(columns)
    types = types or {}
    arrays = {}
    for name, values in columns.items():
        typ = types.get(name)
        if typ is None and name in table.schema.names:
            typ = table.schema.field(name).type
        arrays[name] = pa.array(values, type=typ)
    pq.write_table(pa.table(arrays), path)


def set_cell(column, row, value):
    def change(columns):
        columns[column][row] = value
    return change


def set_element(column, row, index, value):
    def change(columns):
        columns[column][row][index] = value
    return change


def assert_names(err, path, column=None, row=None):
    """The message names the file, the column and the row, and the row is the right one."""
    message = str(err.value)
    assert f"file {path}" in message
    if column is not None:
        assert f"column {column!r}" in message
    if row is not None:
        assert err.value.row == row
        assert re.search(rf"\brow {row}:", message), message
    assert "Fix:" in message



def rejected(params, key, change=None, column=None, row=None, types=None,
             splits=("train", "valid", "test")):
    """Edit params[key]'s file with change (when given), then validate_dataset must raise a
    DataError naming that file (and column and row, when given); its message."""
    if change is not None:
        edit(params[key], change, types)
    with pytest.raises(DataError) as err:
        validate_dataset(params, splits=splits)
    assert_names(err, params[key], column, row)
    return str(err.value)


def config_problem(params):
    """validate_dataset(params) must raise a ConfigError; its message."""
    with pytest.raises(ConfigError) as err:
        validate_dataset(params)
    return str(err.value)


# --- readers of the dataset (the task-2 feature tests) ---
def feature(params, name):
    return next(c for c in params["feature_cols"] if c["name"] == name)


def splits(params):
    return pd.concat([pd.read_parquet(params[f"{s}_data"]) for s in ("train", "valid", "test")])


def expected_modes(params, column):
    """Per target item: the most frequent value of column over the three splits, the larger
    value on a tie; computed with pandas, independently of the implementation."""
    counts = splits(params).groupby(["item_id", column]).size().rename("n").reset_index()
    best = counts.sort_values(["item_id", "n", column]).groupby("item_id").tail(1)
    out = np.zeros(N_ITEMS, np.int64)
    out[best.item_id.to_numpy()] = best[column].to_numpy()
    return out, counts
