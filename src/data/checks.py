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
- the feature_cols entries follow the rules of src/data/feature_cols.py, the parser the
  feature map reads too (names, types, vocab_size, max_len, embedding dims, task-2 keys);
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

Dtypes and values (the schema of each file, then its rows in batches): src/data/scan.py.

Row numbers in messages are 0-based positions in the file ("row 0" is the first data row);
in item_info the row number is also the item id.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .feature_cols import SPLIT_KEYS, config_where, parse_feature_cols, positive_int
from .files import open_parquet
from .scan import ITEM_ID, ITEM_SEQ, TEST_ID, USER_ID, Column, check_schema, scan_file
from .vocab import has_auto, resolve_vocab_sizes
from ..cli import CONFIG_FOLDER_HELP, make_parser, run_main
from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# --- defaults ------------------------------------------------------------------------------
# The baseline's history length, used when the model part of params sets no max_len.
DEFAULT_MAX_LEN = 64


# --- config --------------------------------------------------------------------------------
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


# --- expected columns per file ---------------------------------------------------------------
def _feature_column(f, column=None):
    """The value rules an active feature implies, wherever it is stored (in column, by
    default the feature's name)."""
    column = column or f.name
    why = f"vocab_size={f.vocab_size}" if column == f.name \
        else f"vocab_size={f.vocab_size} of feature {f.name!r}"
    if f.type == "categorical" and f.oov:  # outside values map to the OOV row: no range
        return Column(column, "int", row_feature=True)
    if f.type == "categorical":
        return Column(column, "int", 0, f.vocab_size - 1, why, vocab_of=f.name,
                       row_feature=f.source != "item")
    if f.type == "sequence":
        return Column(column, "int_list", 0, f.vocab_size - 1, why, vocab_of=f.name,
                       length=f.max_len, length_why=f"max_len={f.max_len}")
    if f.type == "embedding":
        return Column(column, "float_list", length=f.dim, length_why=f"embedding dim {f.dim} in config")
    if f.type == "numeric":
        return Column(column, "number")
    return Column(column, "any")


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


def _expected_columns(features, labels, split, n_items, max_len):
    """(columns to check, required {name: why}, allowed names) for one split file."""
    high, why = _item_id_bound(features, n_items)
    fix = "map ids to item_info row numbers, or rebuild item_info (and vocab_size) to cover them"
    columns = {
        ITEM_ID: Column(ITEM_ID, "int", 1, high, why + "; 0 is padding", fix),
        ITEM_SEQ: Column(ITEM_SEQ, "int_list", 0, high, why, fix, min_length=max_len,
                          uniform_length=True),
        USER_ID: Column(USER_ID, "int"),
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
        columns[TEST_ID] = Column(
            TEST_ID, "int", unique=True,
            unique_fix="give every test row its own ID (the release uses 0..N-1)",
            null_fix="give every test row its ID (the release uses 0..N-1)")
        required[TEST_ID] = "the submission, whose IDs come from the test file"
    else:
        for name in labels:
            columns[name] = Column(name, "label", both_classes=split == "valid")
            required[name] = "label_col"
    allowed.update(columns)
    return columns, required, allowed


def _from_item_info(f):
    return f.active and f.source == "item" and not f.item_file and not f.from_splits


def _item_info_columns(features):
    vocab = next((f.vocab_size for f in features
                  if f.name == ITEM_ID and f.active and f.vocab_size), None)
    item_id = Column(ITEM_ID, "int", equals_row=True, zero_at_row0=True,
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
    item_id = Column(ITEM_ID, "int", 0, n_items - 1, f"item_info has {n_items} rows",
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
    check_schema(path, pfile.schema_arrow, columns, required,
                  allowed=set(pfile.schema_arrow.names))
    return scan_file(path, pfile, columns)


# --- entry point ---------------------------------------------------------------------------
def validate_dataset(params: dict, splits: tuple[str, ...] = ("train", "valid", "test")
                     ) -> dict[str, int]:
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
    features = parse_feature_cols(params)
    labels = _label_names(params)
    max_len = params.get("max_len")
    max_len = DEFAULT_MAX_LEN if max_len is None else positive_int(max_len, "model config",
                                                                   "max_len")

    # Every file must exist and be parquet before anything is compared against the config.
    keys = {"item_info": "item_info", **{s: SPLIT_KEYS[s] for s in splits}}
    paths = {name: _config_path(params, key) for name, key in keys.items()}
    files = {name: open_parquet(paths[name], keys[name]) for name in keys}
    schemas = {name: pf.schema_arrow for name, pf in files.items()}

    # A name in no checked file is a mistake in the config, not in the data. Features read
    # from an item_file are looked for in that file below; from_splits names a split column.
    # The test file alone (prediction, after training read the config's names in train and
    # valid): a name it lacks is that file's fault, named with it by the schema check below.
    prefix = config_where(params)
    wanted = [(f.from_splits, f"{f.where} from_splits") if f.from_splits else
              (f.name, prefix + f.key)
              for f in features if f.active and not f.item_file and tuple(splits) != ("test",)]
    if any(s in ("train", "valid") for s in splits):
        wanted += [(name, prefix + "label_col") for name in labels]
    for name, key in wanted:
        if not any(name in schema.names for schema in schemas.values()):
            listed = ", ".join(str(p) for p in paths.values())
            raise ConfigError(f"{key}: name={name!r} is a column of none of the files {listed}. "
                              "Fix: correct the name to a column of the data, add the column to the "
                              "file it belongs in (item_info for source: item), or set active: False")

    summary = {}
    n_items = files["item_info"].metadata.num_rows
    columns, required = _item_info_columns(features)
    check_schema(paths["item_info"], schemas["item_info"], columns, required,
                  allowed=set(schemas["item_info"].names))
    if n_items < 2:
        raise DataError(paths["item_info"], f"has {n_items} rows; it needs the padding row 0 "
                        "and at least one item", fix="rebuild item_info from the item features")
    summary["item_info"] = scan_file(paths["item_info"], files["item_info"], columns)

    item_files = {}
    for f in features:
        if f.active and f.item_file:
            item_files.setdefault(str(f.item_file), []).append(f)
    for path, group in item_files.items():
        summary[path] = _check_item_file(Path(path), f"{group[0].key} item_file", group, n_items)
        logger.info("%s: %d rows OK", path, summary[path])

    for split in splits:
        path, schema = paths[split], schemas[split]
        columns, required, allowed = _expected_columns(features, labels, split, n_items, max_len)
        check_schema(path, schema, columns, required, allowed)
        if split == "test" and schema.names[0] != TEST_ID:
            logger.warning("%s: ID is column %d, not the first column as in the real release",
                           path, schema.names.index(TEST_ID))
        present = {name: spec for name, spec in columns.items() if name in schema.names}
        summary[split] = scan_file(path, files[split], present)
        logger.info("%s: %d rows OK", path, summary[split])
    return summary


def main(argv: list[str] | None = None) -> None:
    """python -m src.data.checks --config C --expid ID: one line and exit 2 on bad data."""
    run_main(_main, argv)


def _main(argv):
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
        params = load_config(args.config, args.expid)
    except (RuntimeError, AssertionError, OSError) as e:
        raise ConfigError(f"cannot load --config {args.config} --expid {args.expid}: {e}. "
                          "Fix: pass the folder holding model_config.yaml and dataset_config.yaml "
                          "and an expid defined in it") from e
    summary = validate_dataset(params, splits=tuple(args.splits))
    for name, rows in summary.items():
        where = params.get(SPLIT_KEYS.get(name, name))
        print(f"{name}: {rows:,} rows OK" + (f" ({where})" if where else ""))


if __name__ == "__main__":
    main()
