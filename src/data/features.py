"""The feature map of a dataset config, built in memory.

FuxiCTR's FeatureProcessor.fit(rebuild_dataset=False) derives the same map but also writes
feature_map.json, a vocab file and a pickle into the data folder on every run; parallel tuner
runs race on those files and a read-only data folder breaks it. The map is a pure function of
the config, so we build it here and write nothing. tests/test_features.py checks that the
result equals FuxiCTR's for the baseline config.

The entries are parsed and checked by src/data/feature_cols.py (the same parser the data
checks read); this module turns the specs into FuxiCTR's map. Besides FuxiCTR's own keys the
map records the task-2 keys (docs/task2_features.md): `oov: True` as FuxiCTR's `oov_idx`
(vocab_size - 1; its own tokenizers also put __OOV__ last; the loader maps the values as it
reads the split), an `item_file` with its `column`, a `from_splits` column with the split files
it is computed from (`split_files`), and a feature's own `embedding_regularizer` (a float,
src/models/regularizer.py). The ItemTable reads these keys from the map; FuxiCTR's embedding
layers ignore them. `vocab_size: auto` must be resolved before the map is built
(src/data/vocab.py).
"""
from __future__ import annotations

from collections import OrderedDict

from fuxictr.features import FeatureMap

from .feature_cols import (FEATURE_REGULARIZER, FROM_SPLITS, ITEM_FILE, FeatureSpec,
                           parse_feature_cols)
from ..errors import ConfigError

# Keys of a feature spec that FuxiCTR copies from the config into the feature map.
_COPIED_KEYS = ("feature_encoder", "embedding_dim", "emb_output_dim", "share_embedding",
                "pretrain_dim")
# Where the item table reads an item-side feature from (item_origin).
ITEM_INFO = "item_info"


def item_origin(spec: dict) -> str:
    """Where the item table reads an item-side feature from: ITEM_INFO, ITEM_FILE or
    FROM_SPLITS (which may also name an item_file that takes precedence)."""
    if FROM_SPLITS in spec:
        return FROM_SPLITS
    if ITEM_FILE in spec:
        return ITEM_FILE
    return ITEM_INFO


def _map_spec(feature: FeatureSpec) -> dict:
    """The feature map's spec of one active feature, as FuxiCTR's FeatureProcessor writes it."""
    if feature.type == "meta":
        return {"type": "meta"}
    spec = {"source": feature.source, "type": feature.type}
    options = feature.options
    if feature.type == "sequence":
        # FuxiCTR mean-pools sequence features over non-zero ids unless told otherwise.
        encoder = options.get("feature_encoder", "layers.MaskedAveragePooling()")
        if encoder not in (None, "null", "None", "none"):
            spec["feature_encoder"] = encoder
    for key in _COPIED_KEYS:
        if key in options and not (key == "feature_encoder" and feature.type == "sequence"):
            spec[key] = options[key]
    if feature.type in ("categorical", "sequence"):
        spec["padding_idx"] = 0
        if feature.type == "sequence":
            spec["max_len"] = feature.max_len
        spec["vocab_size"] = feature.vocab_size
        if feature.oov:
            spec["oov_idx"] = feature.vocab_size - 1
    if feature.regularizer is not None:
        spec[FEATURE_REGULARIZER] = feature.regularizer
    if feature.item_file is not None:
        spec[ITEM_FILE] = feature.item_file
        spec["column"] = feature.column
    if feature.from_splits is not None:
        spec[FROM_SPLITS] = feature.from_splits
        spec["split_files"] = list(feature.split_files)
    return spec


def build_feature_map(params: dict) -> FeatureMap:
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
    for feature in parse_feature_cols(params):
        if feature.active:
            features[feature.name] = _map_spec(feature)
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


def item_features(feature_map: FeatureMap) -> list[str]:
    """Names of the item-side features (looked up in item_info by item id), in map order."""
    return [name for name, spec in feature_map.features.items() if spec.get("source") == "item"]
