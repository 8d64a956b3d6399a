"""Item-side feature columns that do not come from item_info, as arrays with one row per item.

item_info is positional (row i holds item i). The task-2 features add two other origins
(keys of a feature_cols entry, see docs/task2_features.md):

- `item_file: PATH` (+ optional `column`): a column of another parquet holding an item_id
  column, rows in any order, e.g. the organisers' item_emb.parquet (items 1..N, no padding
  row) or a task-1 item_info file. Rows are matched by item_id; item 0 (padding) and items
  absent from the file get zeros. An id beyond item_info's rows, a repeated id, or a
  non-zero row for item 0 (a sign of ids shifted by one) is a DataError naming the row.
- `from_splits: COLUMN`: the value of item i is the most frequent value of COLUMN over the
  rows of train, valid and test whose target (item_id) is i; ties go to the larger value;
  items never seen as a target get 0. For likes_level / views_level this gives every
  history item the popularity level its own impressions carry.
- both: the item_file's value for every item that has a row there (the release's
  item_feature.parquet has every item's likes_level / views_level), the splits' for the rest
  (fill_from_splits).

Everything is vectorised: one read per file, then numpy indexing, np.unique and lexsort.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .files import list_column_to_2d, open_parquet, read_table, scalar_column
from .vocab import vocab_fix
from ..errors import DataError

logger = logging.getLogger(__name__)

ITEM_ID = "item_id"


def item_rows(path: Path | str, ids: np.ndarray, n_items: int) -> np.ndarray:
    """Check the item_id column of a keyed file against item_info's n_items rows; ids must be
    in [0, n_items - 1] and appear once."""
    bad = (ids < 0) | (ids >= n_items)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(path, f"value {ids[row]} is outside [0, {n_items - 1}] (item_info has "
                        f"{n_items} rows, one per item id)", column=ITEM_ID, row=row,
                        fix="use a file of the same release as item_info (or an item_info "
                            "that covers these items)")
    order = np.argsort(ids, kind="stable")
    repeat = np.zeros(ids.size, bool)
    repeat[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    if repeat.any():
        row = int(np.flatnonzero(repeat)[0])
        raise DataError(path, f"item_id {ids[row]} appears more than once", column=ITEM_ID,
                        row=row, fix="keep one row per item")


def _read_values(path, column, spec, table):
    """The column's values as a numpy array (one row per file row), checked."""
    ftype = spec["type"]
    if ftype in ("embedding", "sequence"):
        dtype = np.float32 if ftype == "embedding" else np.int32
        values = list_column_to_2d(table.column(column), path, column, dtype,
                                   null_fix="fill the row (an item without a value can be "
                                            "left out of the file: it gets zeros)")
        if ftype == "embedding":
            width, what = spec.get("pretrain_dim", spec.get("embedding_dim")), "embedding dim"
        else:
            width, what = spec["max_len"], "max_len"
        if width is not None and len(values) and values.shape[1] != int(width):
            raise DataError(path, f"lists hold {values.shape[1]} values, expected {width} "
                            f"(the feature's {what})",
                            column=column, row=0,
                            fix="point item_file/column at the right column, or fix the dim in "
                                "the config")
    else:
        if ftype == "categorical" and not pa.types.is_integer(table.schema.field(column).type):
            # ids must be integers: a float column would be truncated silently
            raise DataError(path, f"has type {table.schema.field(column).type}, expected "
                            "int64 ids (int32 accepted)", column=column,
                            fix="cast the column to int64 before writing the parquet file")
        dtype = np.float32 if ftype == "numeric" else np.int64
        values = scalar_column(table.column(column), path, column, dtype,
                               null_fix="fill the value, or leave the item out of the file (it "
                                        "then gets 0)")
    if values.dtype.kind == "f":
        finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise DataError(path, "holds NaN or inf", column=column, row=row,
                            fix="recompute that item's values, or leave the item out of the file")
    return values


def read_item_file(path: Path | str, features: dict[str, dict[str, Any]],
                   n_items: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({feature name: array with n_items rows}, covered) for features = {name: spec} that all
    read the same item_file; spec["column"] names the column of each; covered (n_items,
    bool) marks the items that have a row in the file."""
    pfile = open_parquet(path, "item_file")
    columns = [ITEM_ID] + [spec["column"] for spec in features.values()]
    missing = [c for c in columns if c not in pfile.schema_arrow.names]
    if missing:
        raise DataError(path, f"missing column; found {pfile.schema_arrow.names}",
                        column=missing[0], fix="fix item_file or column in the feature's entry")
    table = read_table(pfile, path, list(dict.fromkeys(columns)))
    ids = scalar_column(table.column(ITEM_ID), path, ITEM_ID, np.int64,
                        null_fix="every row needs its item id")
    item_rows(path, ids, n_items)
    arrays = {}
    for name, spec in features.items():
        values = _read_values(path, spec["column"], spec, table)
        padding = np.flatnonzero(ids == 0)
        if padding.size and np.any(values[padding[0]] != 0):
            raise DataError(path, "the row of item_id 0 (padding) is not all zeros",
                            column=spec["column"], row=int(padding[0]),
                            fix="item ids start at 1 (0 is padding): if the file numbers its "
                                "first item 0, add 1 to every item_id; else zero that row or "
                                "drop it")
        out = np.zeros((n_items, *values.shape[1:]), values.dtype)
        out[ids] = values
        arrays[name] = out
    covered = np.zeros(n_items, bool)
    covered[ids] = True
    absent = n_items - 1 - int(np.count_nonzero(covered[1:]))
    filled = [n for n, spec in features.items() if "from_splits" in spec]
    if absent and len(filled) < len(features):
        logger.warning("%s: %d of %d items have no row; their %s are zeros", path, absent,
                       n_items - 1, ", ".join(n for n in features if n not in filled))
    return arrays, covered


def fill_from_splits(name: str, path: Path | str, from_file: np.ndarray, covered: np.ndarray,
                     spec: dict[str, Any]) -> np.ndarray:
    """The item_file's values where the file has the item's row, the splits' mode elsewhere
    (the splits are read only when some item needs them); logs how many came from each."""
    missing = ~covered
    missing[0] = False  # the padding item stays 0
    n_missing = int(np.count_nonzero(missing))
    if n_missing:
        from_splits = mode_per_item(spec["split_files"], spec["from_splits"], len(covered),
                                    spec["vocab_size"])
        from_file = np.where(missing, from_splits, from_file)
    logger.info("%s: %d items from %s (column %s), %d from the splits (%s)", name,
                len(covered) - 1 - n_missing, path, spec["column"], n_missing,
                spec["from_splits"])
    return from_file


def mode_per_item(split_files: Iterable[Path | str], column: str, n_items: int,
                  vocab_size: int) -> np.ndarray:
    """(n_items,) int64: per item, the most frequent value of column over the split rows
    whose target is that item (ties: the larger value); 0 for items never a target."""
    items, values = [], []
    for path in split_files:
        pfile = open_parquet(path, "train_data/valid_data/test_data")
        missing = [c for c in (ITEM_ID, column) if c not in pfile.schema_arrow.names]
        if missing:
            raise DataError(path, f"missing column (from_splits: {column} reads it from every "
                            "split file)", column=missing[0],
                            fix="add the column, or fix from_splits in the dataset config")
        table = read_table(pfile, path, [ITEM_ID, column])
        item = scalar_column(table.column(ITEM_ID), path, ITEM_ID, np.int64)
        value = scalar_column(table.column(column), path, column, np.int64,
                              null_fix="fill the value (0 is the padding level) or drop the row")
        bad = (item < 1) | (item >= n_items)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"item_id {item[row]} is outside 1..{n_items - 1}",
                            column=ITEM_ID, row=row,
                            fix="use split files of the same release as item_info")
        bad = (value < 0) | (value >= vocab_size)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"value {value[row]} is outside [0, {vocab_size - 1}] "
                            f"(vocab_size={vocab_size}); the largest value in this column is "
                            f"{value.max()}", column=column, row=row,
                            fix=vocab_fix(int(value.max())))
        items.append(item)
        values.append(value)
    item, value = np.concatenate(items), np.concatenate(values)
    # count each (item, value) pair, then per item keep the pair with the highest count,
    # the larger value on a tie: sort by item, count, value and take each item's last pair
    pairs, counts = np.unique(item * vocab_size + value, return_counts=True)
    pair_item, pair_value = pairs // vocab_size, pairs % vocab_size
    order = np.lexsort((pair_value, counts, pair_item))
    last = np.ones(order.size, bool)
    last[:-1] = pair_item[order[1:]] != pair_item[order[:-1]]
    out = np.zeros(n_items, np.int64)
    out[pair_item[order[last]]] = pair_value[order[last]]
    logger.info("from_splits %s: levels of %d of %d items from %d split rows", column,
                int(np.count_nonzero(last)), n_items - 1, item.size)
    return out
