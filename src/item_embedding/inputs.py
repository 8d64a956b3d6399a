"""Reading the raw MicroLens files an item embedding is built from, checked and aligned.

Every array returned here has one row per item id, row 0 being the padding item, whatever
order the rows had in the file: item_feature and item_emb are joined on item_id, never by
position. Problems raise src.errors.DataError naming file, column and row.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.files import (as_list_array, check_ids_are_row_numbers, first_null_row,
                          list_column_to_2d, read_table, scalar_column)
from ..errors import DataError

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)

ITEM_FEATURE = "item_feature.parquet"
ITEM_EMB = "item_emb.parquet"
ITEM_SEQ = "item_seq.parquet"
ITEM_INFO = Path("MicroLens_1M_x1") / "item_info.parquet"
TEXT, IMAGE = "txt_emb_BERT", "img_emb_CLIPRN50"
ITEM_EMB_COLUMNS = {"item_emb_v1": "item_emb_d128_v1", "item_emb_v2": "item_emb_d128_v2",
                    "item_emb_v3": "item_emb_d128_v3", "item_emb_e4": "item_emb_d128_e4"}


def data_path(data_dir: Path | str, name: Path | str) -> Path:
    path = Path(data_dir) / name
    if not path.is_file():
        raise DataError(path, "file not found",
                        fix="pass --data-dir the folder holding item_feature.parquet, "
                            "item_emb.parquet, item_seq.parquet and "
                            "MicroLens_1M_x1/item_info.parquet")
    return path


def read_parquet(path: Path | str, columns: Sequence[str]) -> pa.Table:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(path, f"not a readable parquet file ({err})") from None
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise DataError(path, f"missing column; found {parquet.schema_arrow.names}",
                        column=missing[0], fix="use the challenge's release of this file")
    return read_table(parquet, path, columns)


def num_items(data_dir: Path | str) -> int:
    """N, the largest item id: item_info holds N + 1 rows (row 0 is padding)."""
    path = data_path(data_dir, ITEM_INFO)
    return pq.ParquetFile(path).metadata.num_rows - 1


def item_order(path: Path | str, ids: np.ndarray, n_items: int) -> np.ndarray:
    """Row of each item id 1..n_items in a file whose item_id column is ids, any order."""
    if ids.size and (ids.min() < 1 or ids.max() > n_items):
        row = int(np.flatnonzero((ids < 1) | (ids > n_items))[0])
        raise DataError(path, f"item_id {ids[row]} is outside 1..{n_items} (item_info has "
                        f"{n_items + 1} rows)", column="item_id", row=row,
                        fix="use item_feature/item_emb and item_info of the same release")
    row_of = np.full(n_items + 1, -1, np.int64)
    seen_twice = np.zeros(ids.size, bool)
    order = np.argsort(ids, kind="stable")
    seen_twice[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    if seen_twice.any():
        row = int(np.flatnonzero(seen_twice)[0])
        raise DataError(path, f"item_id {ids[row]} appears more than once", column="item_id",
                        row=row, fix="keep one row per item")
    row_of[ids] = np.arange(ids.size)
    missing = np.flatnonzero(row_of[1:] < 0) + 1
    if missing.size:
        raise DataError(path, f"item_id {missing[0]} is missing ({missing.size} of 1..{n_items} "
                        f"missing); every item of item_info needs a row", column="item_id",
                        fix="use item_feature/item_emb and item_info of the same release")
    return row_of[1:]


def aligned_matrix(path: Path | str, table: pa.Table, column: str, order: np.ndarray,
                   dtype: npt.DTypeLike) -> np.ndarray:
    """(N + 1, dim) array of a list column, rows aligned by item id, row 0 zeros; NaN/inf
    is an error naming the file row it sits on."""
    values = list_column_to_2d(table.column(column), path, column, dtype,
                               null_fix="recompute the embedding of that item")
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "NaN" if np.isnan(values[row]).any() else "inf"
        raise DataError(path, f"embedding holds {what}", column=column, row=row,
                        fix="recompute the embedding of that item or fill it before building")
    out = np.zeros((len(order) + 1, values.shape[1]), dtype)
    out[1:] = values[order]
    return out


def load_modalities(data_dir: Path | str, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(text, image): float32 (N + 1, 768) and (N + 1, 1024) arrays, aligned by item id."""
    path = data_path(data_dir, ITEM_FEATURE)
    table = read_parquet(path, ["item_id", TEXT, IMAGE])
    ids = scalar_column(table.column("item_id"), path, "item_id", np.int64)
    order = item_order(path, ids, n_items)
    return (aligned_matrix(path, table, TEXT, order, np.float32),
            aligned_matrix(path, table, IMAGE, order, np.float32))


def load_item_emb(data_dir: Path | str, column: str, n_items: int) -> np.ndarray:
    """One column of item_emb.parquet as float64 (N + 1, dim), aligned by item id."""
    path = data_path(data_dir, ITEM_EMB)
    table = read_parquet(path, ["item_id", column])
    ids = scalar_column(table.column("item_id"), path, "item_id", np.int64)
    return aligned_matrix(path, table, column, item_order(path, ids, n_items), np.float64)


def load_item_tags(data_dir: Path | str) -> pa.Array:
    """The item_tags column of the existing item_info, as stored (an arrow array), after
    checking that its item_id is the row number."""
    path = data_path(data_dir, ITEM_INFO)
    table = read_parquet(path, ["item_id", "item_tags"])
    ids = scalar_column(table.column("item_id"), path, "item_id", np.int64)
    check_ids_are_row_numbers(ids, path)
    return table.column("item_tags").combine_chunks()


def load_histories(data_dir: Path | str, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_ids, offsets, items): the full histories of item_seq.parquet as one flat int64
    array; user u's history is items[offsets[u]:offsets[u + 1]], oldest first."""
    path = data_path(data_dir, ITEM_SEQ)
    table = read_parquet(path, ["user_id", "item_seq"])
    users = scalar_column(table.column("user_id"), path, "user_id", np.int64)
    column = as_list_array(table.column("item_seq"), path, "item_seq")
    if column.null_count:
        raise DataError(path, "null (missing) history", column="item_seq",
                        row=first_null_row(column), fix="drop the user's row or give it a history")
    offsets = column.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    values = column.flatten()
    if values.null_count:
        i = first_null_row(values)
        row = int(np.searchsorted(offsets, i, side="right") - 1)
        raise DataError(path, "null (missing) item inside a history", column="item_seq", row=row,
                        fix="drop the missing items from the history (full histories hold real "
                            "item ids only)")
    items = values.to_numpy(zero_copy_only=False).astype(np.int64)
    bad = (items < 1) | (items > n_items)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(offsets, i, side="right") - 1)
        raise DataError(path, f"item id {items[i]} is outside 1..{n_items}", column="item_seq",
                        row=row, fix="full histories hold real item ids only (no 0 padding), "
                                     "from the same release as item_info")
    return users, offsets, items
