"""Check the dataset files against the dataset config before any training or scoring.

`validate_dataset(params)` reads the split files and item_info named by a FuxiCTR-style
params dict (and any item_file of a task-2 feature) and raises ONE error for the first problem
it finds: a `ConfigError` when the config itself is wrong, a `DataError` naming file, column,
first bad row and the fix when a file is wrong. On success it returns the row count of each
file it read. `vocab_size: auto` is resolved first (src/data/vocab.py), so the sizes checked
are the ones training computes.

Rules (what a file must look like)
----------------------------------
Config (ConfigError):
- every feature_cols entry has a `name` and a `type` in meta, categorical, sequence,
  embedding, numeric; active categorical and sequence features need `vocab_size` (a number
  or `auto`); active embedding features need `pretrain_dim` or `embedding_dim` (the length
  of the stored vectors; pretrain_dim wins when both are given);
- task-2 keys only where they work (src/data/features.py: check_task2_keys): `oov` on
  categorical row features, `item_file` / `from_splits` on source: item features, a
  feature's own `embedding_regularizer` a number >= 0 on an embedded (non-meta) feature;
- every active feature (and the label, when train or valid is checked) names a column of at
  least one checked file; a name found nowhere is a typo in the config;
- the path keys (train_data, valid_data, test_data for the requested splits, item_info) are set.

Columns of the split files (train, valid, test):
- required: item_id, every active feature that is not `source: item`, the column each active
  `from_splits` feature derives from, the label in train and valid, ID in test;
- also allowed: user_id, item_seq, and features switched off with `active: False`;
- anything else is an error. An undeclared column is almost always a mistake: a label left in
  the test file, a column from another release, or a misspelt feature.
- ID should be the first column of test (as in the real release); another position is only a
  warning.
Columns of item_info: item_id and every active `source: item` feature read from item_info
are required; other columns are ignored, since items are looked up by column name and row
number.
Item files (`item_file`): item_id and the feature's column are required, other columns are
ignored; item_id is in [0, rows of item_info - 1] and unique (rows in any order, items may be
missing); the row of item 0, if present, is all zeros; the feature's column follows the
feature's rules (a categorical one: integer, in [0, vocab_size - 1], no nulls). A
`from_splits` feature that also names an item_file is checked in both places.

Dtypes (checked on the parquet schema, before any value is read):
- integer columns (ID, user_id, item_id, categorical features): int32 or int64;
- item_seq and sequence features: lists of int32/int64;
- embedding features: lists of float32/float64; numeric features: integer or float;
- the label: integer or float holding only 0 and 1 (NaN is a missing label); the validation
  file must hold both (its AUC, computed at every evaluation, needs two classes);
- lists may be stored as list, large_list or fixed_size_list (polars' Array type).
Categorical values must be pre-encoded integers (the seed path runs with
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

Row numbers in messages are 0-based positions in the file ("row 0" is the first data row);
in item_info the row number is also the item id.

Files are read in batches of columns through pyarrow, so the 3.6M-row train file with its
64-long item_seq is checked in seconds with bounded memory; no Python loop runs per row.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .features import FROM_SPLITS, ITEM_FILE, check_task2_keys, item_file_column
from .files import as_list_array, first_null_row, is_list_type, iter_batches, open_parquet
from .vocab import column_range, has_auto, resolve_vocab_sizes, vocab_fix
from ..cli import CONFIG_FOLDER_HELP, make_parser
from ..errors import ConfigError, DataError, UserError

logger = logging.getLogger(__name__)

# --- defaults ------------------------------------------------------------------------------
FEATURE_TYPES = ("meta", "categorical", "sequence", "embedding", "numeric")
SPLIT_KEYS = {"train": "train_data", "valid": "valid_data", "test": "test_data"}
# Rows per read batch. 131,072 rows of a 64-long int64 item_seq are ~70 MB: large enough that
# per-batch overhead vanishes, small enough that memory stays flat on the 3.6M-row train file.
BATCH_ROWS = 131_072
# The seed's history length, used when the model part of params sets no max_len.
DEFAULT_MAX_LEN = 64
INT_TYPES = (pa.int32(), pa.int64())
FLOAT_TYPES = (pa.float32(), pa.float64())
# Columns with a fixed meaning in every MicroLens split file, whatever the config says.
ITEM_ID, ITEM_SEQ, USER_ID, TEST_ID = "item_id", "item_seq", "user_id", "ID"


@dataclass
class _Feature:
    """One active or inactive entry of feature_cols, with the keys this module uses."""

    name: str
    type: str
    key: str  # where it sits in the config, e.g. "feature_cols[2]", for messages
    active: bool = True
    source: str = ""
    vocab_size: int = None
    max_len: int = None
    dim: int = None
    oov: bool = False  # values outside the vocabulary share one row: no range check
    item_file: str = None  # item-side column read from another parquet keyed by item_id
    column: str = None  # its column in item_file
    from_splits: str = None  # item-side level derived from this column of the split files


@dataclass
class _Column:
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


# --- config --------------------------------------------------------------------------------
def _positive_int(value, key, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{key}: {what}={value!r} is not a positive integer. "
                          f"Fix: set {what} to a whole number >= 1 in the dataset config")
    return int(value)


def _parse_features(params):
    """Parse feature_cols into _Feature records, raising ConfigError on unusable entries."""
    cols = params.get("feature_cols")
    if not isinstance(cols, list) or not cols:
        raise ConfigError(f"feature_cols={cols!r} is not a non-empty list. "
                          "Fix: list the dataset's features under feature_cols in the dataset config")
    features = []
    for i, spec in enumerate(cols):
        key = f"feature_cols[{i}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{key}={spec!r} has no name. "
                              "Fix: write each entry as {name: ..., type: ..., ...}")
        ftype = spec.get("type")
        if ftype not in FEATURE_TYPES:
            raise ConfigError(f"{key} (name={spec['name']!r}): type={ftype!r} is not one of "
                              f"{', '.join(FEATURE_TYPES)}. Fix: set type to one of these")
        # FuxiCTR lets one entry declare several features that share a spec.
        names = spec["name"] if isinstance(spec["name"], list) else [spec["name"]]
        for name in names:
            f = _Feature(name=str(name), type=ftype, key=key, active=bool(spec.get("active", True)),
                         source=spec.get("source") or "", oov=bool(spec.get("oov")),
                         item_file=spec.get(ITEM_FILE), from_splits=spec.get(FROM_SPLITS))
            if f.active:
                check_task2_keys(dict(spec, name=name), f"{key} (name={name!r})")
                f.column = item_file_column(dict(spec, name=name))
            if f.active and ftype in ("categorical", "sequence"):
                if spec.get("vocab_size") is None:
                    raise ConfigError(f"{key} (name={name!r}): type {ftype} needs vocab_size. "
                                      "Fix: add vocab_size (number of ids incl. padding 0) to the entry")
                f.vocab_size = _positive_int(spec["vocab_size"], key, "vocab_size")
            if f.active and ftype == "sequence" and spec.get("max_len") is not None:
                f.max_len = _positive_int(spec["max_len"], key, "max_len")
            if f.active and ftype == "embedding":
                dim = spec.get("pretrain_dim", spec.get("embedding_dim"))
                if dim is None:
                    raise ConfigError(f"{key} (name={name!r}): embedding feature needs pretrain_dim "
                                      "or embedding_dim. Fix: set it to the stored vector length, e.g. 128")
                f.dim = _positive_int(dim, key, "pretrain_dim/embedding_dim")
            features.append(f)
    return features


def _label_names(params):
    label = params.get("label_col")
    labels = label if isinstance(label, list) else [label]
    names = []
    for spec in labels:
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ConfigError(f"label_col={label!r} has no name. "
                              "Fix: set label_col: {name: label, dtype: float}")
        names.append(str(spec["name"]))
    return names


def _config_path(params, key):
    value = params.get(key)
    if not value:
        raise ConfigError(f"{key}={value!r} is not set. Fix: set {key} to the parquet file "
                          "in the dataset config")
    return Path(value)


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


def _check_schema(path, schema, columns, required, allowed):
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


def _scan(path, pfile, columns):
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


# --- expected columns per file ---------------------------------------------------------------
def _feature_column(f, column=None):
    """The value rules an active feature implies, wherever it is stored (in column, by
    default the feature's name)."""
    column = column or f.name
    why = f"vocab_size={f.vocab_size}" if column == f.name \
        else f"vocab_size={f.vocab_size} of feature {f.name!r}"
    if f.type == "categorical" and f.oov:  # outside values map to the OOV row: no range
        return _Column(column, "int", row_feature=True)
    if f.type == "categorical":
        return _Column(column, "int", 0, f.vocab_size - 1, why, vocab_of=f.name,
                       row_feature=f.source != "item")
    if f.type == "sequence":
        return _Column(column, "int_list", 0, f.vocab_size - 1, why, vocab_of=f.name,
                       length=f.max_len, length_why=f"max_len={f.max_len}",
                       uniform_length=f.max_len is None)
    if f.type == "embedding":
        return _Column(column, "float_list", length=f.dim, length_why=f"embedding dim {f.dim} in config")
    if f.type == "numeric":
        return _Column(column, "number")
    return _Column(column, "any")


def _bound_by(columns, column, f):
    """Column of the split files that the item-side feature f derives from (from_splits):
    an int column whose values must fit f's vocabulary, on top of any rule it has already."""
    rule = _feature_column(f, column)
    current = columns.get(column)
    if current is None or current.kind != "int" or current.high is None \
            or rule.high < current.high:
        if current is not None and current.kind == "int":
            rule.row_feature = current.row_feature
        columns[column] = rule


def _item_id_bound(features, n_items):
    """Largest valid item id and why: item_info rows and item_id's vocab_size both bound it."""
    high, why = n_items - 1, f"item_info has {n_items} rows"
    vocab = next((f.vocab_size for f in features
                  if f.name == ITEM_ID and f.active and f.vocab_size), None)
    if vocab is not None and vocab - 1 < high:
        high, why = vocab - 1, f"item_id vocab_size={vocab}"
    if vocab is not None and vocab != n_items:
        logger.warning("item_id vocab_size=%d differs from item_info's %d rows", vocab, n_items)
    return high, why


def _split_columns(features, labels, split, n_items, max_len):
    """(columns to check, required {name: why}, allowed names) for one split file."""
    high, why = _item_id_bound(features, n_items)
    fix = "map ids to item_info row numbers, or rebuild item_info (and vocab_size) to cover them"
    columns = {
        ITEM_ID: _Column(ITEM_ID, "int", 1, high, why + "; 0 is padding", fix),
        ITEM_SEQ: _Column(ITEM_SEQ, "int_list", 0, high, why, fix, min_length=max_len,
                          uniform_length=True),
        USER_ID: _Column(USER_ID, "int"),
    }
    required = {ITEM_ID: "the target item of every row"}
    allowed = set(columns)
    for f in features:  # features of the split rows
        if f.source == "item":
            continue
        allowed.add(f.name)
        if not f.active:
            continue
        required[f.name] = f.key
        if f.name not in (ITEM_ID, ITEM_SEQ) and not (f.name == USER_ID and f.type == "meta"):
            columns[f.name] = _feature_column(f)
    for f in features:  # item-side features derived from a column of the split rows
        if f.source == "item" and f.from_splits:
            allowed.add(f.from_splits)
            if f.active:
                required[f.from_splits] = f"{f.key} (from_splits)"
                _bound_by(columns, f.from_splits, f)
    if split == "test":
        columns[TEST_ID] = _Column(
            TEST_ID, "int", unique=True,
            unique_fix="give every test row its own ID (the release uses 0..N-1)",
            null_fix="give every test row its ID (the release uses 0..N-1)")
        required[TEST_ID] = "the submission, whose IDs come from the test file"
    else:
        for name in labels:
            columns[name] = _Column(name, "label", both_classes=split == "valid")
            required[name] = "label_col"
    allowed.update(columns)
    return columns, required, allowed


def _from_item_info(f):
    return f.active and f.source == "item" and not f.item_file and not f.from_splits


def _item_info_columns(features):
    vocab = next((f.vocab_size for f in features
                  if f.name == ITEM_ID and f.active and f.vocab_size), None)
    item_id = _Column(ITEM_ID, "int", equals_row=True, zero_at_row0=True,
                      null_fix="fill the value: item_id equals the row number")
    if vocab is not None:
        item_id.low, item_id.high = 0, vocab - 1
        item_id.range_why = f"item_id vocab_size={vocab}"
        item_id.range_fix = "raise item_id's vocab_size to item_info's row count"
    columns = {ITEM_ID: item_id}
    required = {ITEM_ID: "item lookups by id"}
    for f in features:
        if _from_item_info(f) and f.name != ITEM_ID:
            columns[f.name] = _feature_column(f)
            columns[f.name].zero_at_row0 = True
            columns[f.name].null_fix = "fill the row (row 0, the padding item, is all zeros)"
            required[f.name] = f.key
    return columns, required


def _check_item_file(path, key, features, n_items):
    """A parquet keyed by item_id that item-side features read (item_file); returns its rows."""
    pfile = open_parquet(path, key)
    item_id = _Column(ITEM_ID, "int", 0, n_items - 1, f"item_info has {n_items} rows",
                      "use a file of the same release as item_info (or an item_info that covers "
                      "these items)", unique=True, unique_fix="keep one row per item",
                      null_fix="every row needs its item id")
    columns, required = {ITEM_ID: item_id}, {ITEM_ID: "matching rows to items"}
    for f in features:
        rule = _feature_column(f, f.column)
        rule.zero_at_item0 = True
        rule.null_fix = "fill it, or leave the item out of the file (it then gets zeros)"
        columns[f.column] = rule
        required[f.column] = f"{f.key} (item_file, column {f.column!r})"
    _check_schema(path, pfile.schema_arrow, columns, required,
                  allowed=set(pfile.schema_arrow.names))
    return _scan(path, pfile, columns)


# --- entry point ---------------------------------------------------------------------------
def validate_dataset(params, splits=("train", "valid", "test")):
    """Check item_info, the listed split files and any item_file against params; return
    {file: rows} (item files under their path).

    params may still hold `vocab_size: auto`: it is resolved first with
    src.data.vocab.resolve_vocab_sizes (the numbers training would use), and the resolved
    sizes are checked like numbers written in the config. Callers that build a model should
    resolve once themselves and pass the resolved params, so the two agree by construction.
    Raises ConfigError for a config problem and DataError for the first bad file, column or row.
    """
    unknown = [s for s in splits if s not in SPLIT_KEYS]
    if unknown:
        raise ConfigError(f"splits={list(splits)!r}: unknown split {unknown[0]!r}. "
                          f"Fix: use any of {', '.join(SPLIT_KEYS)}")
    if has_auto(params):
        params = resolve_vocab_sizes(params)
    features = _parse_features(params)
    labels = _label_names(params)
    max_len = params.get("max_len")
    max_len = DEFAULT_MAX_LEN if max_len is None else _positive_int(max_len, "model config", "max_len")

    # Every file must exist and be parquet before anything is compared against the config.
    keys = {"item_info": "item_info", **{s: SPLIT_KEYS[s] for s in splits}}
    paths = {name: _config_path(params, key) for name, key in keys.items()}
    files = {name: open_parquet(paths[name], keys[name]) for name in keys}
    schemas = {name: pf.schema_arrow for name, pf in files.items()}

    # A name in no checked file is a mistake in the config, not in the data. Features read
    # from an item_file are looked for in that file below; from_splits names a split column.
    # The test file alone (prediction, after training read the config's names in train and
    # valid): a name it lacks is that file's fault, named with it by the schema check below.
    wanted = [(f.from_splits or f.name, f"{f.key}{' from_splits' if f.from_splits else ''}")
              for f in features if f.active and not f.item_file and tuple(splits) != ("test",)]
    if any(s in ("train", "valid") for s in splits):
        wanted += [(name, "label_col") for name in labels]
    for name, key in wanted:
        if not any(name in schema.names for schema in schemas.values()):
            listed = ", ".join(str(p) for p in paths.values())
            raise ConfigError(f"{key}: name={name!r} is a column of none of the files {listed}. "
                              "Fix: correct the name to a column of the data, add the column to the "
                              "file it belongs in (item_info for source: item), or set active: False")

    summary = {}
    n_items = files["item_info"].metadata.num_rows
    columns, required = _item_info_columns(features)
    _check_schema(paths["item_info"], schemas["item_info"], columns, required,
                  allowed=set(schemas["item_info"].names))
    if n_items < 2:
        raise DataError(paths["item_info"], f"has {n_items} rows; it needs the padding row 0 "
                        "and at least one item", fix="rebuild item_info from the item features")
    summary["item_info"] = _scan(paths["item_info"], files["item_info"], columns)

    item_files = {}
    for f in features:
        if f.active and f.item_file:
            item_files.setdefault(str(f.item_file), []).append(f)
    for path, group in item_files.items():
        summary[path] = _check_item_file(Path(path), f"{group[0].key} item_file", group, n_items)
        logger.info("%s: %d rows OK", path, summary[path])

    for split in splits:
        path, schema = paths[split], schemas[split]
        columns, required, allowed = _split_columns(features, labels, split, n_items, max_len)
        _check_schema(path, schema, columns, required, allowed)
        if split == "test" and schema.names[0] != TEST_ID:
            logger.warning("%s: ID is column %d, not the first column as in the real release",
                           path, schema.names.index(TEST_ID))
        present = {name: spec for name, spec in columns.items() if name in schema.names}
        summary[split] = _scan(path, files[split], present)
        logger.info("%s: %d rows OK", path, summary[split])
    return summary


def main(argv=None):
    parser = make_parser("Check the dataset files of an experiment against its dataset config "
                         "before training or scoring.", [
                             "python -m src.data.checks --config config/DIN_demo_tuner_config "
                             "--expid DIN_MicroLens_demo_x1_001_b4df6352",
                             "python -m src.data.checks --config config/DIN_demo_tuner_config "
                             "--expid DIN_MicroLens_demo_x1_001_b4df6352 --splits test"],
                         prog="python -m src.data.checks")
    parser.add_argument("--config", required=True, help=CONFIG_FOLDER_HELP + ", or any folder "
                        "with model_config.yaml and dataset_config.yaml")
    parser.add_argument("--expid", required=True, help="experiment id in model_config.yaml")
    parser.add_argument("--splits", nargs="+", default=list(SPLIT_KEYS), choices=list(SPLIT_KEYS),
                        help="the splits whose files are checked")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Imported here: fuxictr pulls in torch, which the checks themselves do not need.
    from fuxictr.utils import load_config

    try:
        try:
            params = load_config(args.config, args.expid)
        except (RuntimeError, AssertionError, OSError) as e:
            raise ConfigError(f"cannot load --config {args.config} --expid {args.expid}: {e}. "
                              "Fix: pass the folder holding model_config.yaml and dataset_config.yaml "
                              "and an expid defined in it") from e
        summary = validate_dataset(params, splits=tuple(args.splits))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for name, rows in summary.items():
        where = params.get(SPLIT_KEYS.get(name, name))
        print(f"{name}: {rows:,} rows OK" + (f" ({where})" if where else ""))


if __name__ == "__main__":
    main()
