"""Scanning one parquet file against the columns it must hold: its schema first, then its
values in batches of rows, with the first bad row named. src/data/checks.py decides which
columns each file must hold (Column); this module checks a file against them.

Dtypes (checked on the parquet schema, before any value is read):
- integer columns (ID, user_id, item_id, categorical features): int32 or int64;
- item_seq and sequence features: lists of int32/int64;
- embedding features: lists of float32/float64; numeric features: integer or float;
- the label: integer or float holding only 0 and 1 (NaN is a missing label); the validation
  file must hold both (its AUC, computed at every evaluation, needs two classes);
- lists may be stored as list, large_list or fixed_size_list (polars' Array type).
Categorical values must be pre-encoded integers (the baseline path runs with
rebuild_dataset: False, so nothing re-encodes strings).

Values:
- no nulls anywhere (neither a missing row value nor a missing element inside a list); the
  fix named depends on the column (a missing label, an id, an embedding);
- no NaN or inf in embeddings or numeric columns;
- list lengths: item_seq has the same length on every row of a file, at least the model's
  max_len (the model keeps the last max_len items; the real data has exactly 64); a sequence
  feature has exactly its max_len (or, without max_len, one common length); an embedding has
  exactly its pretrain_dim / embedding_dim;
- ids: item_id of a split row is in [1, n - 1] and item_seq ids in [0, n - 1], where n is the
  smaller of item_info's row count and item_id's vocab_size (0 is padding); categorical values
  are in [0, vocab_size - 1]; sequence elements (item_tags) likewise; an error names the
  vocab_size that would hold the column's largest value. Features with `oov: True` have no
  range (values outside it map to the OOV row); a `from_splits` source column must fit the
  item-side feature's vocab_size;
- item_info: item_id equals the row number 0..N-1 (lookups are positional), and row 0 is the
  padding row: item_id 0 and every item feature all zeros;
- test: ID values are unique.

Files are read in batches of rows through pyarrow, so the 3.6M-row train file with its 64-long
item_seq is checked in seconds with bounded memory; no Python loop runs per row.
"""
from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from .files import as_list_array, first_null_row, is_list_type, iter_batches
from .vocab import column_range, vocab_fix

if TYPE_CHECKING:
    import pyarrow.parquet as pq

# Rows per read batch. 131,072 rows of a 64-long int64 item_seq are ~70 MB: large enough that
# per-batch overhead vanishes, small enough that memory stays flat on the 3.6M-row train file.
BATCH_ROWS = 131_072
INT_TYPES = (pa.int32(), pa.int64())
FLOAT_TYPES = (pa.float32(), pa.float64())
# Columns with a fixed meaning in every MicroLens split file, whatever the config says.
ITEM_ID, ITEM_SEQ, USER_ID, TEST_ID = "item_id", "item_seq", "user_id", "ID"


@dataclass
class Column:
    """What one column of one file must hold."""

    name: str
    kind: str  # int | number | label | int_list | float_list | any
    low: int = None
    high: int = None
    range_why: str = ""  # where the bounds come from, for the message
    range_fix: str = ""
    length: int = None  # exact list length
    length_why: str = ""
    min_length: int = None  # lists of one common length, at least this (item_seq)
    uniform_length: bool = False
    equals_row: bool = False  # item_info.item_id == row number
    zero_at_row0: bool = False  # item_info padding row
    zero_at_item0: bool = False  # keyed item files: the row of item_id 0, if any, is zeros
    unique: bool = False  # test ID, item_id of a keyed item file
    unique_fix: str = ""
    vocab_of: str = None  # the feature whose vocab_size sets `high` (errors name the size needed)
    row_feature: bool = False  # a feature of the split rows (oov: True is then an option)
    null_fix: str = ""  # how to fix a null in this column; "" = by kind (_null_fix)
    both_classes: bool = False  # a label that must hold 0 and 1 (valid: AUC needs both)
    collected: list = field(default_factory=list)  # per-batch lengths or ids for file-wide checks


# --- files and schemas ---------------------------------------------------------------------
def _type_ok(kind, typ):
    is_list = is_list_type(typ)
    if kind == "int":
        return typ in INT_TYPES
    if kind in ("number", "label"):
        return typ in INT_TYPES or typ in FLOAT_TYPES
    if kind == "int_list":
        return is_list and typ.value_type in INT_TYPES
    if kind == "float_list":
        return is_list and typ.value_type in FLOAT_TYPES
    return True


_EXPECTED_TYPE = {
    "int": ("int64 (int32 accepted)", "int64"),
    "number": ("int or float", "float64"),
    "label": ("int or float holding 0/1", "int64"),
    "int_list": ("list<int64> (list<int32>, fixed-size lists accepted)", "a list of int64"),
    "float_list": ("list<float32> or list<float64> (fixed-size lists accepted)",
                   "a list of float32"),
}


def check_schema(path: Path | str, schema: pa.Schema, columns: Mapping[str, Column],
                 required: Mapping[str, str], allowed: Container[str]) -> None:
    """Missing, unexpected and mistyped columns, from the schema alone."""
    present = schema.names
    for name, why in required.items():
        if name not in present:
            raise DataError(path, f"missing column (required by {why})", column=name,
                            fix=f"add the column {name!r} to the file, or fix the name in the config")
    for name in present:
        if name not in allowed:
            fix = (f"drop the column from the file, or declare it in feature_cols "
                   f"(active: False keeps it unused); allowed here: {', '.join(sorted(allowed))}")
            raise DataError(path, "unexpected column", column=name, fix=fix)
    for name in present:
        spec = columns.get(name)
        if spec is None or spec.kind == "any":
            continue
        typ = schema.field(name).type
        if not _type_ok(spec.kind, typ):
            expected, cast = _EXPECTED_TYPE[spec.kind]
            raise DataError(path, f"has type {typ}, expected {expected}", column=name,
                            fix=f"cast the column to {cast} before writing the parquet file")


# --- values --------------------------------------------------------------------------------
def _first(mask):
    return int(np.flatnonzero(mask)[0])


def _row_of_element(lengths, flat_index):
    """Row holding element flat_index of a flattened list column (nulls already excluded)."""
    return int(np.searchsorted(np.cumsum(lengths), flat_index, side="right"))


def _null_fix(spec, inside_list):
    """(problem, fix) for a null in spec's column: the fix depends on what the column holds."""
    if spec.kind == "label":
        return ("label is missing (null/NaN), expected 0 or 1",
                "drop the rows without a label or fill them")
    if spec.kind == "float_list":
        if inside_list:
            return ("empty (null) element inside the embedding",
                    spec.null_fix or "recompute the embedding of that row (every element a number)")
        return "empty (null) embedding", spec.null_fix or "recompute the embedding of that row"
    if spec.kind == "number":
        return ("empty (null) value",
                spec.null_fix or "fill the value (e.g. with the column mean) or drop the row")
    if inside_list:
        return "empty (null) element inside the list", "fill missing elements with 0 (padding)"
    return ("empty (null) value",
            spec.null_fix or "fill the value (0 is the padding id/level) or drop the row")


def _range_error(path, spec, value, row):
    """The DataError of a value outside [low, high]; when a vocab_size sets high, a second scan
    of the whole column finds the largest value, so the fix can name the size needed."""
    problem = f"value {value} is outside [{spec.low}, {spec.high}] ({spec.range_why})"
    fix = spec.range_fix
    if spec.vocab_of is not None:
        if value < spec.low:
            fix = "ids must be >= 0 (0 is padding): re-encode the column"
        else:
            largest = column_range(path, spec.name, negatives_ok=True)[1]
            problem += f"; the largest value in this column is {largest}"
            fix = vocab_fix(largest, spec.row_feature)
            if spec.vocab_of != spec.name:
                fix = f"in feature {spec.vocab_of!r}, {fix}"
    return DataError(path, problem, column=spec.name, row=row, fix=fix)


def _check_array(path, spec, arr, offset):
    """Check one batch of one column; offset is the file row of the batch's first row."""
    name = spec.name
    if arr.null_count:
        problem, fix = _null_fix(spec, inside_list=False)
        raise DataError(path, problem, column=name, row=offset + first_null_row(arr), fix=fix)
    if spec.kind == "any":
        return
    lengths = None
    if spec.kind.endswith("_list"):
        arr = as_list_array(arr, path, name)  # fixed-size lists become plain lists
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if spec.length is not None and (lengths != spec.length).any():
            i = _first(lengths != spec.length)
            raise DataError(path, f"list has length {lengths[i]}, expected {spec.length} "
                            f"({spec.length_why})", column=name, row=offset + i,
                            fix=f"pad with 0 or cut every list to {spec.length} elements, "
                                "or fix the length in the config")
        if spec.min_length is not None and (lengths < spec.min_length).any():
            i = _first(lengths < spec.min_length)
            raise DataError(path, f"list has length {lengths[i]}, shorter than max_len="
                            f"{spec.min_length}", column=name, row=offset + i,
                            fix=f"left-pad every history with 0 to at least {spec.min_length} items, "
                                "or lower max_len in the model config")
        if spec.uniform_length:
            spec.collected.append(lengths)
        arr = arr.flatten()
        if arr.null_count:
            problem, fix = _null_fix(spec, inside_list=True)
            raise DataError(path, problem, column=name,
                            row=offset + _row_of_element(lengths, first_null_row(arr)), fix=fix)

    def row_at(i):
        return offset + (i if lengths is None else _row_of_element(lengths, i))

    values = arr.to_numpy(zero_copy_only=False)
    if spec.kind == "label" and values.dtype.kind == "f" and np.isnan(values).any():
        problem, fix = _null_fix(spec, inside_list=False)  # a NaN label is a missing label
        raise DataError(path, problem, column=name, row=row_at(_first(np.isnan(values))), fix=fix)
    if spec.kind in ("float_list", "number") and values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            i = _first(~finite)
            what = "NaN" if np.isnan(values[i]) else "inf"
            raise DataError(path, f"holds {what}", column=name, row=row_at(i),
                            fix="recompute those values or replace NaN/inf (e.g. with 0) before training")
    if spec.kind == "label":
        bad = (values != 0) & (values != 1)
        if bad.any():
            i = _first(bad)
            raise DataError(path, f"label is {values[i]}, expected 0 or 1", column=name, row=row_at(i),
                            fix="map the labels to 0 (no click) and 1 (click)")
    # min/max first: two fast passes without temporaries over the 230M item_seq values.
    if spec.low is not None and values.size and (values.min() < spec.low or values.max() > spec.high):
        bad = (values < spec.low) | (values > spec.high)
        if bad.any():
            i = _first(bad)
            raise _range_error(path, spec, values[i], row_at(i))
    if spec.equals_row:
        expected = np.arange(offset, offset + len(values))
        if (values != expected).any():
            i = _first(values != expected)
            raise DataError(path, f"item_id is {values[i]}, expected the row number {offset + i} "
                            "(items are looked up by row)", column=name, row=offset + i,
                            fix="sort item_info by item_id and make the ids 0..N-1 with no gaps, "
                                "row 0 being the padding item")
    if spec.zero_at_row0 and offset == 0:
        row0 = values[: 1 if lengths is None else lengths[0]]
        if (row0 != 0).any():
            raise DataError(path, "row 0 is not the padding row: it must be all zeros", column=name,
                            row=0, fix="insert an all-zero padding row (item_id 0) at the top of item_info")
    if spec.unique or spec.both_classes:
        spec.collected.append(np.unique(values) if spec.both_classes else values)


def _check_padding_item(path, columns, batch, names, offset):
    """In a file keyed by item_id: the row of item 0 (padding), if present, must be zeros
    elsewhere. A non-zero row there usually means ids that start at 0 for the first item."""
    ids = batch.column(names.index(ITEM_ID)).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(ids == 0)
    if not rows.size:
        return
    for j, name in enumerate(names):
        if not columns[name].zero_at_item0:
            continue
        value = batch.column(j).slice(int(rows[0]), 1)
        if is_list_type(value.type):
            value = as_list_array(value, path, name).flatten()
        if (value.to_numpy(zero_copy_only=False) != 0).any():
            raise DataError(path, "the row of item_id 0 (padding) is not all zeros", column=name,
                            row=offset + int(rows[0]),
                            fix="item ids start at 1 (0 is padding): if the file numbers its "
                                "first item 0, add 1 to every item_id; else zero that row or drop it")


def _finish(path, spec):
    """File-wide checks that need every batch: one common list length, unique IDs."""
    if spec.uniform_length and spec.collected:
        lengths = np.concatenate(spec.collected)
        common = int(np.bincount(lengths).argmax())
        if (lengths != common).any():
            i = _first(lengths != common)
            raise DataError(path, f"list has length {lengths[i]}, while most rows have {common}; "
                            "every row needs the same length", column=spec.name, row=i,
                            fix=f"left-pad (with 0) or cut every list to {common} elements")
    if spec.unique and spec.collected:
        ids = np.concatenate(spec.collected)
        order = np.argsort(ids, kind="stable")
        dup = ids[order[1:]] == ids[order[:-1]]
        if dup.any():
            # Stable sort: of two equal ids the later row comes second, so it is the repeat.
            row = int(order[1:][dup].min())
            raise DataError(path, f"{spec.name} {ids[row]} appears more than once",
                            column=spec.name, row=row, fix=spec.unique_fix)
    if spec.both_classes:
        seen = np.unique(np.concatenate(spec.collected)) if spec.collected else np.array([])
        if len(seen) < 2:
            only = f"only the label {seen[0]:g}" if len(seen) else "no rows"
            raise DataError(path, f"holds {only}: the validation AUC needs both classes (0 and 1)",
                            column=spec.name, fix="use a validation file with clicks and "
                            "non-clicks (e.g. a random sample of the training period)")
    spec.collected.clear()


def scan_file(path: Path | str, pfile: pq.ParquetFile, columns: Mapping[str, Column]) -> int:
    """Stream the listed columns batch by batch and check their values; returns the row count."""
    names = list(columns)
    keyed = any(spec.zero_at_item0 for spec in columns.values())
    offset = 0
    for batch in iter_batches(pfile, path, names, BATCH_ROWS):
        for j, name in enumerate(names):
            _check_array(path, columns[name], batch.column(j), offset)
        if keyed:
            _check_padding_item(path, columns, batch, names, offset)
        offset += batch.num_rows
    for spec in columns.values():
        _finish(path, spec)
    return offset
