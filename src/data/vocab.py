"""`vocab_size: auto`: vocabulary sizes of categorical and sequence features, from the data.

    params = resolve_vocab_sizes(params)   # before validate_dataset / build_feature_map

returns a copy of params whose feature_cols hold a number wherever an active categorical or
sequence entry said `vocab_size: auto` (an entry naming several features is split into one
entry per feature, since their sizes may differ). Inactive entries are left as they are. One
log line per resolved size, e.g. "vocab_size auto: item_id = 2001 (item_info rows)".

Where each size comes from (ids are pre-encoded integers, 0 is padding):
- item_id: the row count of item_info (lookups are positional, so every row needs an id);
- other item-side features: largest value + 1 of their column in item_info, or in their
  item_file, or (from_splits) of the split column over train, valid and test (both, for a
  from_splits feature that also names an item_file);
- row features of the split files (user_id, likes_level, ...): largest value + 1 over
  train, valid and test, so training and prediction compute the same size; with `oov: True`
  one more, for the shared out-of-vocabulary row.

Only min/max of the named columns are read (batch by batch, through pyarrow), so the 3.6M-row
train file takes about a second. Negative values and non-integer columns are a DataError
naming file, column and row. The entries are read through src/data/feature_cols.py, so an entry
it cannot size (e.g. `auto` on a type without a vocabulary) is the ConfigError the feature
map and the data checks give.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .feature_cols import SPLIT_KEYS, FeatureSpec, is_auto, parse_feature_cols
from .files import as_list_array, is_list_type, iter_batches, open_parquet
from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

ITEM_ID = "item_id"
BATCH_ROWS = 1 << 20  # rows per read: bounded memory, few batches on the 3.6M-row train file


def _first_negative_row(array):
    """Row of the first negative value of one batch (a scalar or list column)."""
    if is_list_type(array.type):
        lists = as_list_array(array, "", "")
        values = lists.flatten().to_numpy(zero_copy_only=False)
        offsets = lists.offsets.to_numpy() - lists.offsets.to_numpy()[0]
        i = int(np.flatnonzero(values < 0)[0])
        return int(np.searchsorted(offsets, i, side="right") - 1)
    values = array.to_numpy(zero_copy_only=False)
    return int(np.flatnonzero(values < 0)[0])


def column_range(path: Path | str, column: str, key: str | None = None,
                 negatives_ok: bool = False) -> tuple[int | None, int | None]:
    """(smallest, largest) value of an integer column or list column of a parquet file, nulls
    ignored; (None, None) when it holds no values. A negative value is a DataError naming its
    row unless negatives_ok. key is the config key of path, for messages."""
    pfile = open_parquet(path, key)
    if column not in pfile.schema_arrow.names:
        raise DataError(path, f"missing column; found {pfile.schema_arrow.names}", column=column,
                        fix="add the column, or fix the feature's name in the dataset config")
    typ = pfile.schema_arrow.field(column).type
    value_type = typ.value_type if is_list_type(typ) else typ
    if not pa.types.is_integer(value_type):
        raise DataError(path, f"has type {typ}; a vocabulary needs integer ids", column=column,
                        fix="write the ids as int64 (pre-encoded, 0 = padding)")
    low = high = None
    offset = 0
    for batch in iter_batches(pfile, path, [column], BATCH_ROWS):
        array = batch.column(0)
        values = as_list_array(array, path, column).flatten() if is_list_type(array.type) \
            else array
        stats = pc.min_max(values).as_py()
        if stats["min"] is not None:
            if stats["min"] < 0 and not negatives_ok:
                raise DataError(path, f"negative id {stats['min']}", column=column,
                                row=offset + _first_negative_row(array),
                                fix="ids must be 0 (padding) or positive: re-encode the column")
            low = stats["min"] if low is None else min(low, stats["min"])
            high = stats["max"] if high is None else max(high, stats["max"])
        offset += batch.num_rows
    return low, high


def _sources(feature, params):
    """[(path, column, config key of path)] whose largest value sets the feature's size."""
    if feature.source == "item":
        sources = []
        if feature.item_file is not None:
            sources.append((feature.item_file, feature.column, f"{feature.key} item_file"))
        if feature.from_splits is not None:  # with an item_file too: the splits fill its gaps
            sources += [(params[k], feature.from_splits, k) for k in SPLIT_KEYS.values()
                        if params.get(k)]
        return sources or [(params.get("item_info"), feature.name, "item_info")]
    return [(params[k], feature.name, k) for k in SPLIT_KEYS.values() if params.get(k)]


def _auto_size(feature: FeatureSpec, params, ranges):
    """(vocab_size, why) of one active feature with vocab_size: auto."""
    if feature.name == ITEM_ID and feature.item_file is None and feature.from_splits is None:
        if not params.get("item_info"):
            raise ConfigError("item_info is not set; vocab_size: auto of item_id is its row "
                              "count. Fix: set item_info to the item table's parquet file")
        return open_parquet(params["item_info"], "item_info").metadata.num_rows, "item_info rows"
    sources = _sources(feature, params)
    if not sources or any(not path for path, _, _ in sources):
        missing = "item_info" if feature.source == "item" else ", ".join(SPLIT_KEYS.values())
        raise ConfigError(f"{feature.where}: vocab_size: auto reads {missing}, which is "
                          "not set. Fix: set the path(s) in the dataset config")
    largest = None
    for path, column, path_key in sources:
        if (str(path), column) not in ranges:
            ranges[(str(path), column)] = column_range(path, column, path_key)
        high = ranges[(str(path), column)][1]
        if high is not None:
            largest = high if largest is None else max(largest, high)
    largest = 0 if largest is None else largest  # no values at all: only the padding id
    where = ", ".join(path_key for _, _, path_key in sources)
    column = sources[0][1]
    size, why = largest + 1, f"largest value {largest} of column {column!r} in {where}, + 1"
    if feature.oov:
        size, why = size + 1, why + ", + 1 for the OOV row"
    return size, why


def resolve_vocab_sizes(params: dict) -> dict:
    """params with every `vocab_size: auto` of an active feature replaced by its number (see
    the module docstring); the input is not modified. Deterministic for the same files."""
    cols = params.get("feature_cols")
    if not has_auto(params):  # nothing to read from the data: a copy, checked where it is read
        return {**params, "feature_cols": copy.deepcopy(cols)} if isinstance(cols, list) \
            else dict(params)
    pending = {}  # entry index -> its features whose size is read from the data
    for feature in parse_feature_cols(params, allow_auto=True):
        if feature.vocab_auto:
            pending.setdefault(feature.index, []).append(feature)
    ranges = {}  # (path, column) -> (min, max): each column is scanned once
    resolved = []
    for i, col in enumerate(cols):
        if i not in pending:
            resolved.append(copy.deepcopy(col))
            continue
        for feature in pending[i]:  # one entry per name: their sizes may differ
            entry = dict(copy.deepcopy(col), name=feature.name)
            entry["vocab_size"], why = _auto_size(feature, params, ranges)
            logger.info("vocab_size auto: %s = %d (%s)", feature.name, entry["vocab_size"], why)
            resolved.append(entry)
    return {**params, "feature_cols": resolved}


def has_auto(params: dict) -> bool:
    """Whether any active feature_cols entry still says vocab_size: auto."""
    cols = params.get("feature_cols")
    return isinstance(cols, list) and any(
        isinstance(c, dict) and c.get("active", True) and is_auto(c.get("vocab_size"))
        for c in cols)


def vocab_fix(largest: int, row_feature: bool = False) -> str:
    """The fix of an id beyond vocab_size: the size that holds the largest value."""
    fix = f"set vocab_size: {largest + 1} (or vocab_size: auto)"
    if row_feature:
        fix += "; or oov: True to map values outside the vocabulary to one shared row"
    return fix


def dataset_vocab_sizes(item_info: str | Path, train_data: str | Path, valid_data: str | Path,
                        test_data: str | Path) -> dict[str, int]:
    """The sizes `vocab_size: auto` gives the release's five vocabulary features
    ({name: size} for item_id, item_tags, user_id, likes_level, views_level, without oov)."""
    params = {"item_info": str(item_info), "train_data": str(train_data),
              "valid_data": str(valid_data), "test_data": str(test_data), "feature_cols": [
                  {"name": ITEM_ID, "type": "categorical", "source": "item", "vocab_size": "auto"},
                  # max_len: every sequence entry has one; the size does not depend on it
                  {"name": "item_tags", "type": "sequence", "source": "item", "max_len": 5,
                   "vocab_size": "auto"},
                  {"name": ["user_id", "likes_level", "views_level"], "type": "categorical",
                   "vocab_size": "auto"}]}
    return {c["name"]: c["vocab_size"] for c in resolve_vocab_sizes(params)["feature_cols"]}
