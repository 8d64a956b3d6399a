"""The `feature_cols` entries of a dataset config, parsed and checked in one place.

    specs = parse_feature_cols(params)   # one FeatureSpec per feature name, in config order

Every reader of the entries goes through this: the feature map (src/data/features.py), the
data checks (src/data/checks.py) and `vocab_size: auto` (src/data/vocab.py), so a config is
accepted or refused the same way, with the same message, wherever it is read first. An entry
may declare several features that share everything else (`name: [a, b]`, as in FuxiCTR).

Rules (a ConfigError names the file, the entry's key and name, what is wrong and the fix):
- feature_cols is a non-empty list of mappings; every entry, active or not, has a `name` (a
  string or a non-empty list of strings) and a `type` in FEATURE_TYPES; `dtype`, when given,
  is int, float or str (FuxiCTR's names); `source`, when given, a string; `active` True or False;
- active categorical and sequence features: `vocab_size` a positive integer (`auto` until
  src/data/vocab.py resolves it from the data; only these two types have a vocabulary);
  sequence features also `max_len` (ids per row), a positive integer;
- active embedding features: `pretrain_dim` or `embedding_dim`, a positive integer (the
  length of the stored vectors; pretrain_dim wins when both are given);
- the task-2 keys (docs/task2_features.md), each optional, only where they work:
  - `oov: True` (categorical row features, e.g. user_id): values outside [0, vocab_size - 2]
    share the last row, vocab_size - 1 (so vocab_size >= 2);
  - `item_file: PATH` (source: item): the feature is column `column` (default: the feature's
    name) of another parquet, matched to items by its item_id column;
  - `from_splits: COLUMN` (source: item, categorical): the feature of item i is the most
    frequent value of COLUMN over the split rows whose target is i; with an item_file beside
    it, `column` defaults to COLUMN; at least one split path must be set;
  - `embedding_regularizer: W` (an embedded feature): its own L2 weight, a number >= 0.
Inactive entries are checked for name, type, dtype, source and active only: switching a
feature off must not need its other keys to be right. They keep their from_splits, since the
split column it names stays an allowed column of the split files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

FEATURE_TYPES = ("meta", "categorical", "sequence", "embedding", "numeric")
VOCAB_TYPES = ("categorical", "sequence")
DTYPES = ("int", "float", "str")
# A feature's own L2 weight of its embedding table (src/models/regularizer.py reads it).
FEATURE_REGULARIZER = "embedding_regularizer"
# Where an item-side feature comes from besides item_info: another file, the splits.
ITEM_FILE, FROM_SPLITS = "item_file", "from_splits"
# split name -> the config key of its file
SPLIT_KEYS = {"train": "train_data", "valid": "valid_data", "test": "test_data"}
# Keys read into FeatureSpec fields; the others of an entry stay in FeatureSpec.options.
_PARSED_KEYS = ("name", "type", "dtype", "source", "active", "vocab_size", "max_len", "oov",
                FEATURE_REGULARIZER, ITEM_FILE, "column", FROM_SPLITS)
# Where the config's dataset block sits (a tuner config holds it under its dataset_config key).
CONFIG_FILE = "dataset_config.yaml"


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of feature_cols, checked. Fields a type does not use are None."""

    name: str
    type: str
    index: int  # of the entry in feature_cols
    where: str  # file, key and name of the entry, the start of every message about it
    active: bool = True
    source: str = ""
    dtype: str | None = None
    vocab_size: int | None = None  # None while `vocab_size: auto` awaits resolution
    vocab_auto: bool = False
    max_len: int | None = None
    dim: int | None = None  # embedding: the stored vectors' length
    oov: bool = False  # values outside the vocabulary share one row: no range check
    regularizer: float | None = None
    item_file: str | None = None  # item-side column read from another parquet keyed by item_id
    column: str | None = None  # its column in item_file
    from_splits: str | None = None  # item-side level derived from this column of the splits
    # (kept for inactive entries: the split files may still hold that column)
    split_files: tuple[str, ...] = ()  # the split paths from_splits reads
    options: dict[str, Any] = field(default_factory=dict)  # the entry's other keys, as written

    @property
    def key(self) -> str:
        """The entry's key in the dataset config, e.g. feature_cols[2]."""
        return f"feature_cols[{self.index}]"


def is_auto(value: Any) -> bool:
    """vocab_size: auto (any case) asks for the size to be taken from the data."""
    return isinstance(value, str) and value.strip().lower() == "auto"


def regularizer_problem(value: Any) -> str | None:
    """Why value cannot be a feature's embedding_regularizer, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and value >= 0:
        return None
    problem = "is not a number >= 0 (the L2 weight of this feature's embedding table)"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return problem
        # YAML reads 2e-4 (no dot) as a string
        problem += f"; YAML reads {value} without a dot as a string: write {number!r}"
    return problem


def positive_int(value: Any, where: str, what: str) -> int:
    """value as an int, or a ConfigError naming where and what."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{where}: {what}={value!r} is not a positive integer. "
                          f"Fix: set {what} to a whole number >= 1")
    return int(value)


def config_where(params: dict) -> str:
    """The file and dataset block that feature_cols sits in, for messages."""
    dataset_id = params.get("dataset_id")
    return f"{CONFIG_FILE}, {dataset_id}." if dataset_id is not None else f"{CONFIG_FILE}, "


def parse_feature_cols(params: dict, allow_auto: bool = False) -> list[FeatureSpec]:
    """One FeatureSpec per feature name of params["feature_cols"], inactive ones included;
    ConfigError for the first entry that breaks a rule of the module docstring.

    allow_auto: accept `vocab_size: auto` (vocab_size None, vocab_auto True); only
    src/data/vocab.py, which resolves it, asks for that."""
    cols = params.get("feature_cols")
    prefix = config_where(params)
    if not isinstance(cols, list) or not cols:
        raise ConfigError(f"{prefix}feature_cols={cols!r} is not a non-empty list. Fix: list "
                          "the dataset's features under feature_cols in the dataset config")
    specs = []
    for index, entry in enumerate(cols):
        key = f"{prefix}feature_cols[{index}]"
        for name in _entry_names(entry, key):
            specs.append(_parse_entry(entry, name, index, f"{key} (name={name!r})", params,
                                      allow_auto))
    return specs


def _entry_names(entry: Any, key: str) -> list[str]:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"{key}={entry!r} has no name. "
                          "Fix: write each entry as {name: ..., type: ..., ...}")
    names = entry["name"] if isinstance(entry["name"], list) else [entry["name"]]
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigError(f"{key}: name={entry['name']!r} is not a column name or a non-empty "
                          "list of them. Fix: write name: COLUMN (or name: [COLUMN, ...])")
    return names


def _parse_entry(entry: dict, name: str, index: int, where: str, params: dict,
                 allow_auto: bool) -> FeatureSpec:
    ftype = entry.get("type")
    if ftype not in FEATURE_TYPES:
        raise ConfigError(f"{where}: type={ftype!r} is not one of {', '.join(FEATURE_TYPES)}. "
                          "Fix: set type to one of these")
    if entry.get("dtype") is not None and entry["dtype"] not in DTYPES:
        raise ConfigError(f"{where}: dtype={entry['dtype']!r} is not one of {', '.join(DTYPES)}. "
                          "Fix: write dtype: int (ids), float (vectors, numbers) or str")
    source = entry.get("source") or ""
    if not isinstance(source, str):
        raise ConfigError(f"{where}: source={source!r} is not a string. "
                          "Fix: write source: item for an item-side feature, or remove it")
    active = entry.get("active", True)
    if not isinstance(active, (bool, np.bool_)):
        raise ConfigError(f"{where}: active={active!r} is not True or False. "
                          "Fix: write active: True or active: False")
    fields = dict(name=name, type=ftype, index=index, where=where, active=bool(active),
                  source=source, dtype=entry.get("dtype"), from_splits=entry.get(FROM_SPLITS),
                  options={k: v for k, v in entry.items() if k not in _PARSED_KEYS})
    if not active:
        return FeatureSpec(**fields)
    col = dict(entry, name=name)
    _check_task2_keys(col, where)
    fields["oov"] = bool(entry.get("oov"))
    if FEATURE_REGULARIZER in entry:
        fields["regularizer"] = float(entry[FEATURE_REGULARIZER])
    if ITEM_FILE in entry:
        fields.update(item_file=entry[ITEM_FILE],
                      column=str(entry.get("column", entry.get(FROM_SPLITS, name))))
    vocab = entry.get("vocab_size")
    if is_auto(vocab) and ftype not in VOCAB_TYPES:
        raise ConfigError(f"{where}: vocab_size: auto on type {ftype!r}; only categorical and "
                          "sequence features have a vocabulary. Fix: remove vocab_size from "
                          "this entry")
    if ftype in VOCAB_TYPES:
        if vocab is None:
            raise ConfigError(f"{where}: type {ftype} needs vocab_size. Fix: add vocab_size "
                              "(number of ids, padding id 0 included) to the entry, or "
                              "vocab_size: auto")
        if is_auto(vocab) and not allow_auto:
            raise ConfigError(f"{where}: vocab_size: auto must be resolved from the data before "
                              "the feature map is built. Fix (code): params = "
                              "src.data.vocab.resolve_vocab_sizes(params) first")
        fields["vocab_auto"] = is_auto(vocab)
        fields["vocab_size"] = None if is_auto(vocab) else positive_int(vocab, where,
                                                                         "vocab_size")
    if ftype == "sequence":
        if entry.get("max_len") is None:
            raise ConfigError(f"{where}: sequence feature needs max_len. Fix: add max_len "
                              "(ids per row, e.g. 5) to the entry")
        fields["max_len"] = positive_int(entry["max_len"], where, "max_len")
    if ftype == "embedding":
        dim = entry.get("pretrain_dim", entry.get("embedding_dim"))
        if dim is None:
            raise ConfigError(f"{where}: embedding feature needs pretrain_dim or embedding_dim. "
                              "Fix: set it to the stored vector length, e.g. 128")
        fields["dim"] = positive_int(dim, where, "pretrain_dim/embedding_dim")
    if FROM_SPLITS in entry:
        fields["split_files"] = tuple(str(params[k]) for k in SPLIT_KEYS.values()
                                      if params.get(k))
        if not fields["split_files"]:
            raise ConfigError(f"{where}: from_splits reads the split files, but none of "
                              f"{', '.join(SPLIT_KEYS.values())} is set. Fix: set the split "
                              "paths")
    return FeatureSpec(**fields)


def _check_task2_keys(col: dict, where: str) -> None:
    """ConfigError for a task-2 key of an active entry used where it cannot work."""
    ftype, source, name = col.get("type"), col.get("source") or "", col["name"]
    if FEATURE_REGULARIZER in col:
        value = col[FEATURE_REGULARIZER]
        if ftype == "meta":
            raise ConfigError(f"{where}: embedding_regularizer={value!r} on a meta feature, "
                              "which has no embedding. Fix: remove it, or declare the feature "
                              "categorical")
        problem = regularizer_problem(value)
        if problem:
            raise ConfigError(f"{where}: embedding_regularizer={value!r} {problem}. Fix: write a "
                              "number such as 2.e-4, or remove the key to use the model's "
                              "embedding_regularizer")
    if col.get("oov") not in (None, True, False):
        raise ConfigError(f"{where}: oov={col['oov']!r} is not True or False. "
                          "Fix: write oov: True to give unknown ids one shared row")
    if col.get("oov"):
        if ftype != "categorical" or source == "item":
            raise ConfigError(f"{where}: oov: True applies to categorical features of the split "
                              f"rows (e.g. user_id), not to type={ftype!r} source={source!r}. "
                              "Fix: remove oov from this entry")
        if isinstance(col.get("vocab_size"), int) and col["vocab_size"] < 2:
            raise ConfigError(f"{where}: vocab_size={col['vocab_size']} leaves no room for the "
                              "OOV row. Fix: vocab_size >= 2 (largest id + 2), or vocab_size: auto")
    for key in (ITEM_FILE, FROM_SPLITS):
        if key not in col:
            continue
        if source != "item":
            raise ConfigError(f"{where}: {key} needs source: item (it makes an item-side "
                              "feature). Fix: add source: item to the entry")
        if name == "item_id":
            raise ConfigError(f"{where}: item_id is the item table's key and comes from "
                              f"item_info. Fix: remove {key}, or give the feature another name")
        if not isinstance(col[key], str) or not col[key]:
            raise ConfigError(f"{where}: {key}={col[key]!r} is not a "
                              f"{'path' if key == ITEM_FILE else 'column name'}. Fix: set it")
    if FROM_SPLITS in col and ftype != "categorical":
        raise ConfigError(f"{where}: from_splits gives one level per item (the most frequent "
                          f"value), so the type must be categorical, not {ftype!r}")
    if "column" in col and ITEM_FILE not in col:
        raise ConfigError(f"{where}: column={col['column']!r} is only used with item_file. "
                          "Fix: remove it, or add item_file: PATH")
