"""Parquet columns to numpy arrays without per-row Python work.

pandas turns a list column into an object array of Python lists, and `np.array(col.to_list())`
then copies every row through Python: that is where the baseline loader spent its time and memory.
pyarrow hands out a list column as one flat values buffer plus offsets, which becomes a 2-D
array with a reshape whenever every row has the same length.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError

if TYPE_CHECKING:
    import numpy.typing as npt


def open_parquet(path: Path | str, key: str | None = None) -> pq.ParquetFile:
    """pq.ParquetFile of path; a missing or unreadable file is a DataError naming the config
    key it came from (key may be None for files found by convention)."""
    path = Path(path)
    where = f"config key {key}" if key else "no config key"
    if not path.is_file():
        relative = "" if path.is_absolute() else f", relative to {os.getcwd()}"
        raise DataError(path, f"file not found ({where}{relative})",
                        fix=f"point {key or 'the path'} at the parquet file, or generate/download "
                            "the data first")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, f"not a readable parquet file ({e})",
                        fix=f"write the file with pandas.to_parquet or pyarrow, or fix "
                            f"{key or 'the path'}") from e


def _first_null_row_by_polars(path, name):
    """Row of the first null of a column, read by polars; None if polars cannot tell."""
    try:
        import polars as pl  # installed with fuxictr; only needed on this error path
    except ImportError:
        return None
    try:
        rows = pl.read_parquet(path, columns=[name])[name].is_null().arg_true()
    except (pl.exceptions.PolarsError, OSError):
        return None
    return int(rows[0]) if len(rows) else None


def undecodable(path: Path | str, columns: Sequence[str], err: Exception) -> DataError:
    """The DataError for columns pyarrow fails to decode, naming the column that fails.

    The case met in practice: polars writes a null row of a fixed-size list (its Array type)
    as an empty list, which pyarrow 17 refuses to read ("Expected all lists to be of
    size=..."). polars then finds the row for the message.
    """
    for name in columns:
        try:
            pq.ParquetFile(path).read(columns=[name])
        except pa.ArrowException as column_err:
            row = _first_null_row_by_polars(path, name)
            if row is not None:
                return DataError(path, "null (missing) row in a fixed-size list column, which "
                                 "pyarrow cannot read", column=name, row=row,
                                 fix="fill or drop the rows without a list before writing "
                                     f"(polars: df.filter(pl.col({name!r}).is_not_null())), "
                                     "or write the column as a plain list")
            return DataError(path, f"pyarrow cannot decode this column ({column_err})",
                             column=name, fix="rewrite the file with pyarrow or pandas")
    return DataError(path, f"pyarrow cannot read the file ({err})",
                     fix="rewrite the file with pyarrow or pandas")


def iter_batches(pfile: pq.ParquetFile, path: Path | str, columns: Sequence[str],
                 batch_size: int) -> Iterator[pa.RecordBatch]:
    """pfile.iter_batches, with decoding failures turned into one DataError (undecodable)."""
    try:
        yield from pfile.iter_batches(batch_size=batch_size, columns=columns)
    except pa.ArrowException as err:
        raise undecodable(path, columns, err) from None


def read_table(pfile: pq.ParquetFile, path: Path | str, columns: Sequence[str]) -> pa.Table:
    """pfile.read(columns), with decoding failures turned into one DataError (undecodable)."""
    try:
        return pfile.read(columns=columns)
    except pa.ArrowException as err:
        raise undecodable(path, columns, err) from None


def is_list_type(typ: pa.DataType) -> bool:
    """list, large_list or fixed_size_list (what polars' Array type writes): one list per row."""
    return pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)


def as_list_array(column: pa.Array | pa.ChunkedArray, path: Path | str,
                  name: str) -> pa.ListArray | pa.LargeListArray:
    """A list column as one ListArray or LargeListArray, whichever of the three list layouts
    it was stored in.

    A fixed_size_list is cast to a plain list: arrow computes the offsets and keeps the
    values buffer, so the rest of the code handles one layout. A null row stays null (with
    its slots skipped by flatten()), so null checks behave the same for both layouts.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not is_list_type(column.type):
        raise DataError(path, f"expected a list column, found type {column.type}", column=name,
                        fix="write this column as a list of numbers per row")
    if pa.types.is_fixed_size_list(column.type):
        column = column.cast(pa.list_(column.type.value_field))
    return column


def first_null_row(column: pa.Array) -> int:
    """Row of the first null entry of an arrow array (call only when null_count > 0)."""
    return int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])


def list_column_to_2d(column: pa.Array | pa.ChunkedArray, path: Path | str, name: str,
                      dtype: npt.DTypeLike, keep_last: int | None = None, row_offset: int = 0,
                      null_fix: str | None = None) -> np.ndarray:
    """A list column (list, large_list or fixed_size_list) of equal-length rows as a
    (rows, length) array of dtype.

    keep_last keeps only the last positions of each row (histories are left-padded, so the
    most recent items are at the end). row_offset is added to row numbers in errors when the
    column is one batch of a larger file. null_fix is the fix named for a null row or element
    (by default one that fits ids or, for a float dtype, embeddings).
    """
    if null_fix is None:
        null_fix = ("recompute the vector of that row" if np.dtype(dtype).kind == "f"
                    else "replace nulls by 0 (padding)")
    column = as_list_array(column, path, name)
    if column.null_count:
        raise DataError(path, "null (missing) list", column=name,
                        row=row_offset + first_null_row(column), fix=null_fix)
    offsets = column.offsets.to_numpy()
    lengths = np.diff(offsets)
    width = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and (lengths != width).any():
        row = int(np.flatnonzero(lengths != width)[0])
        raise DataError(path, f"list length {lengths[row]} differs from row 0's length {width}",
                        column=name, row=row_offset + row, fix="pad every row to the same length")
    values = column.flatten()
    if values.null_count:
        first = first_null_row(values)
        raise DataError(path, "null (missing) element inside a list", column=name,
                        row=row_offset + first // max(width, 1), fix=null_fix)
    flat = values.to_numpy(zero_copy_only=False)
    matrix = flat.reshape(len(lengths), width)
    if keep_last is not None and keep_last < width:
        matrix = matrix[:, width - keep_last:]
    return np.array(matrix, dtype=dtype, order="C")  # a writable copy, owned by numpy


def scalar_column(column: pa.Array | pa.ChunkedArray, path: Path | str, name: str,
                  dtype: npt.DTypeLike, row_offset: int = 0,
                  null_fix: str = "fill the value or drop the row") -> np.ndarray:
    """A scalar number column as a 1-D array of dtype; nulls are an error naming the first row."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    typ = column.type
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
        raise DataError(path, f"expected a number per row, found type {typ}", column=name,
                        fix="write this column as int64 (ids, levels) or float")
    if column.null_count:
        raise DataError(path, "null (missing) value", column=name,
                        row=row_offset + first_null_row(column), fix=null_fix)
    values = column.to_numpy(zero_copy_only=False)
    if np.dtype(dtype).kind == "i" and values.dtype.kind in "iu" and len(values):
        info = np.iinfo(dtype)  # narrowing must not wrap around silently
        bad = (values < info.min) | (values > info.max)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"value {values[row]} does not fit in {np.dtype(dtype).name}",
                            column=name, row=row_offset + row, fix="ids must be below 2**31")
    return np.array(values, dtype=dtype)  # a writable copy, owned by numpy


def read_columns(path: Path | str, columns: Sequence[str], list_dtypes: Mapping[str, npt.DTypeLike],
                 scalar_dtype: npt.DTypeLike = np.int64, keep_last: Mapping[str, int] | None = None,
                 batch_rows: int = 65_536, scalar_dtypes: Mapping[str, npt.DTypeLike] | None = None,
                 null_fixes: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Read columns of a parquet file into numpy, a row group batch at a time.

    Reading in batches and converting each batch at once keeps the peak memory near the size of
    the final arrays instead of arrow's int64 copy plus numpy's copy of a whole list column.
    list_dtypes maps list column names to their numpy dtype; other columns get scalar_dtype,
    or their entry in scalar_dtypes. keep_last maps list column names to how many trailing
    positions to keep. null_fixes maps column names to the fix a null in them names.
    """
    keep_last = keep_last or {}
    scalar_dtypes = scalar_dtypes or {}
    null_fixes = null_fixes or {}
    parquet = open_parquet(path)
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {parquet.schema_arrow.names}",
                        column=missing[0], fix="check the file against the dataset config")
    num_rows = parquet.metadata.num_rows
    arrays = {}  # filled in place: no second copy from concatenating per-batch chunks
    start = 0
    for batch in iter_batches(parquet, path, columns, batch_rows):
        for name in columns:
            col = batch.column(batch.schema.get_field_index(name))
            if name in list_dtypes:
                part = list_column_to_2d(col, path, name, list_dtypes[name], keep_last.get(name),
                                         row_offset=start, null_fix=null_fixes.get(name))
            else:
                part = scalar_column(col, path, name, scalar_dtypes.get(name, scalar_dtype),
                                     row_offset=start, null_fix=null_fixes.get(
                                         name, "fill the value (0 is the padding id/level) or "
                                               "drop the row"))
            if name not in arrays:
                arrays[name] = np.empty((num_rows, *part.shape[1:]), dtype=part.dtype)
            elif part.shape[1:] != arrays[name].shape[1:]:
                raise DataError(path, f"list length {part.shape[1]} differs from earlier rows' "
                                f"{arrays[name].shape[1]}", column=name, row=start,
                                fix="pad every row to the same length")
            arrays[name][start:start + batch.num_rows] = part
        start += batch.num_rows
    pa.default_memory_pool().release_unused()  # hand arrow's freed buffers back to the OS
    for name in columns:
        if name not in arrays:  # an empty file
            arrays[name] = np.zeros((0,), dtype=list_dtypes.get(
                name, scalar_dtypes.get(name, scalar_dtype)))
    return arrays


def check_ids_are_row_numbers(ids: np.ndarray, path: Path | str) -> None:
    """item_info lookups are positional: item i must sit in row i (row 0 the padding row)."""
    wrong = ids != np.arange(len(ids))
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise DataError(path, f"item_id {ids[row]} != row number {row}", column="item_id", row=row,
                        fix="item_info must hold one row per item id, sorted by item_id 0..N, "
                            "starting with the padding row 0")
