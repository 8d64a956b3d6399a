"""The feature map of a dataset config, built in memory.

FuxiCTR's FeatureProcessor.fit(rebuild_dataset=False) derives the same map but also writes
feature_map.json, a vocab file and a pickle into the data folder on every run; parallel tuner
runs race on those files and a read-only data folder breaks it. The map is a pure function of
the config, so we build it here and write nothing. tests/test_features.py checks that the
result equals FuxiCTR's for the seed config.

Task-2 keys of a feature_cols entry (docs/task2_features.md), each optional:
- `oov: True` (categorical row features, e.g. user_id): values outside [0, vocab_size - 2]
  share the last row, vocab_size - 1. The map records it as FuxiCTR's `oov_idx` (its own
  tokenizers also put __OOV__ last); the loader maps the values as it reads the split.
- `item_file: PATH` (source: item): the feature is column `column` (default: the feature's
  name) of another parquet, matched to items by its item_id column.
- `from_splits: COLUMN` (source: item, categorical): the feature of item i is the most
  frequent value of COLUMN over the split rows whose target is i (train, valid and test).
  The map records the split files it is computed from under `split_files`. With an
  `item_file` beside it (e.g. the release's item_feature.parquet), the file's value wins for
  every item it has a row for and the splits fill in the rest; `column` then defaults to
  COLUMN.
- `embedding_regularizer: W` (any embedded feature, e.g. user_id): the L2 weight of this
  feature's embedding table instead of the model's embedding_regularizer
  (src/models/regularizer.py); a number >= 0, checked here.
The ItemTable reads these keys from the map; FuxiCTR's embedding layers ignore them.
`vocab_size: auto` must be resolved before the map is built (src/data/vocab.py).
"""
import math
from collections import OrderedDict

from fuxictr.features import FeatureMap

from ..errors import ConfigError

FEATURE_TYPES = ("meta", "categorical", "sequence", "embedding", "numeric")
# Keys of a feature spec that FuxiCTR copies from the config into the feature map.
_COPIED_KEYS = ("feature_encoder", "embedding_dim", "emb_output_dim", "share_embedding",
                "pretrain_dim")
# A feature's own L2 weight of its embedding table (src/models/regularizer.py reads it).
FEATURE_REGULARIZER = "embedding_regularizer"
# Where an item-side feature comes from: item_info (positional), another file, the splits.
ITEM_INFO, ITEM_FILE, FROM_SPLITS = "item_info", "item_file", "from_splits"
# split name -> the config key of its file
SPLIT_KEYS = {"train": "train_data", "valid": "valid_data", "test": "test_data"}


def is_auto(value):
    """vocab_size: auto (any case) asks for the size to be taken from the data."""
    return isinstance(value, str) and value.strip().lower() == "auto"


def regularizer_problem(value):
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


def check_feature_regularizer(col, where):
    """ConfigError for an unusable embedding_regularizer of one feature_cols entry."""
    if FEATURE_REGULARIZER not in col:
        return
    value = col[FEATURE_REGULARIZER]
    if col.get("type") == "meta":
        raise ConfigError(f"{where}: embedding_regularizer={value!r} on a meta feature, which "
                          "has no embedding. Fix: remove it, or declare the feature categorical")
    problem = regularizer_problem(value)
    if problem:
        raise ConfigError(f"{where}: embedding_regularizer={value!r} {problem}. Fix: write a "
                          "number such as 2.e-4, or remove the key to use the model's "
                          "embedding_regularizer")


def check_task2_keys(col, where):
    """ConfigError for a task-2 key used where it cannot work; where names the entry."""
    ftype, source = col.get("type"), col.get("source") or ""
    name = col.get("name")
    check_feature_regularizer(col, where)
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


def item_file_column(col):
    """The column an item_file feature reads: `column`, else the from_splits column (the
    release's item_feature.parquet names its levels as the splits do), else its name."""
    return str(col.get("column", col.get(FROM_SPLITS, col["name"])))


def item_origin(spec):
    """Where the item table reads an item-side feature from: ITEM_INFO, ITEM_FILE or
    FROM_SPLITS (which may also name an item_file that takes precedence)."""
    if FROM_SPLITS in spec:
        return FROM_SPLITS
    if ITEM_FILE in spec:
        return ITEM_FILE
    return ITEM_INFO


def entry_names(col: dict) -> list:
    """The feature names of one feature_cols entry: FuxiCTR lets one entry declare several
    features that share a spec (name: [a, b]). The data checks and the feature map both read
    entries through this."""
    return col["name"] if isinstance(col["name"], list) else [col["name"]]


def _expand_names(feature_cols):
    """One spec per feature name."""
    for col in feature_cols:
        for name in entry_names(col):
            yield dict(col, name=name)


def _feature_spec(col, params):
    ftype = col.get("type")
    if ftype not in FEATURE_TYPES:
        raise ConfigError(f"feature_cols: feature {col['name']!r} has type={ftype!r}; "
                          f"allowed types are {', '.join(FEATURE_TYPES)}")
    if ftype == "meta":
        check_feature_regularizer(col, f"feature_cols: feature {col['name']!r}")
        return {"type": "meta"}
    check_task2_keys(col, f"feature_cols: feature {col['name']!r}")
    spec = {"source": col.get("source", ""), "type": ftype}
    if ftype == "sequence":
        # FuxiCTR mean-pools sequence features over non-zero ids unless told otherwise.
        encoder = col.get("feature_encoder", "layers.MaskedAveragePooling()")
        if encoder not in (None, "null", "None", "none"):
            spec["feature_encoder"] = encoder
    for key in _COPIED_KEYS:
        if key in col and not (key == "feature_encoder" and ftype == "sequence"):
            spec[key] = col[key]
    if ftype in ("categorical", "sequence"):
        if "vocab_size" not in col:
            raise ConfigError(f"feature_cols: feature {col['name']!r} of type {ftype} needs a "
                              f"vocab_size (number of ids, padding id 0 included)")
        if is_auto(col["vocab_size"]):
            raise ConfigError(f"feature_cols: feature {col['name']!r} has vocab_size: auto, "
                              "which must be resolved from the data before the feature map is "
                              "built. Fix (code): params = src.data.vocab.resolve_vocab_sizes("
                              "params) first")
        spec["padding_idx"] = 0
        if ftype == "sequence":
            if "max_len" not in col:
                raise ConfigError(f"feature_cols: sequence feature {col['name']!r} needs max_len")
            spec["max_len"] = int(col["max_len"])
        spec["vocab_size"] = int(col["vocab_size"])
        if col.get("oov"):
            spec["oov_idx"] = spec["vocab_size"] - 1
    if FEATURE_REGULARIZER in col:
        spec[FEATURE_REGULARIZER] = float(col[FEATURE_REGULARIZER])
    if ITEM_FILE in col:
        spec[ITEM_FILE] = str(col[ITEM_FILE])
        spec["column"] = item_file_column(col)
    if FROM_SPLITS in col:
        spec[FROM_SPLITS] = str(col[FROM_SPLITS])
        spec["split_files"] = [str(params[k]) for k in SPLIT_KEYS.values() if params.get(k)]
        if not spec["split_files"]:
            raise ConfigError(f"feature_cols: feature {col['name']!r} has from_splits but none "
                              f"of {', '.join(SPLIT_KEYS.values())} is set. Fix: set the split "
                              f"paths")
    return spec


def build_feature_map(params):
    """FeatureMap for params (a merged model + dataset config), without touching the disk."""
    for key in ("dataset_id", "feature_cols", "label_col"):
        if key not in params:
            raise ConfigError(f"config: missing key {key!r} in the dataset config of "
                              f"dataset_id={params.get('dataset_id')!r}")
    feature_map = FeatureMap(params["dataset_id"], params.get("data_root", "./data/"))
    labels = params["label_col"] if isinstance(params["label_col"], list) else [params["label_col"]]
    feature_map.labels = [col["name"] for col in labels]
    feature_map.group_id = params.get("group_id")
    feature_map.default_emb_dim = params.get("embedding_dim")
    features = OrderedDict()
    for col in _expand_names(params["feature_cols"]):
        if col.get("active", True):
            features[col["name"]] = _feature_spec(col, params)
    if params.get("use_features"):
        features = OrderedDict((name, features[name]) for name in params["use_features"])
    feature_map.features = features
    if params.get("feature_specs"):
        feature_map.update_feature_specs(params["feature_specs"])
    feature_map.num_fields = feature_map.get_num_fields()
    feature_map.total_features = sum(spec.get("vocab_size", 1) for spec in features.values()
                                     if spec["type"] in ("categorical", "sequence", "numeric"))
    feature_map.set_column_index()
    return feature_map


def item_features(feature_map):
    """Names of the item-side features (looked up in item_info by item id), in map order."""
    return [name for name, spec in feature_map.features.items() if spec.get("source") == "item"]
