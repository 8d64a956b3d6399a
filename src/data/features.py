"""The feature map of a dataset config, built in memory.

FuxiCTR's FeatureProcessor.fit(rebuild_dataset=False) derives the same map but also writes
feature_map.json, a vocab file and a pickle into the data folder on every run; parallel tuner
runs race on those files and a read-only data folder breaks it. The map is a pure function of
the config, so we build it here and write nothing. tests/test_features.py checks that the
result equals FuxiCTR's for the seed config.
"""
from collections import OrderedDict

from fuxictr.features import FeatureMap

from ..errors import ConfigError

FEATURE_TYPES = ("meta", "categorical", "sequence", "embedding", "numeric")
# Keys of a feature spec that FuxiCTR copies from the config into the feature map.
_COPIED_KEYS = ("feature_encoder", "embedding_dim", "emb_output_dim", "share_embedding",
                "pretrain_dim")


def _expand_names(feature_cols):
    """A feature col may name a list of features; expand it to one spec per name."""
    for col in feature_cols:
        names = col["name"] if isinstance(col["name"], list) else [col["name"]]
        for name in names:
            yield dict(col, name=name)


def _feature_spec(col):
    ftype = col.get("type")
    if ftype not in FEATURE_TYPES:
        raise ConfigError(f"feature_cols: feature {col['name']!r} has type={ftype!r}; "
                          f"allowed types are {', '.join(FEATURE_TYPES)}")
    if ftype == "meta":
        return {"type": "meta"}
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
        spec["padding_idx"] = 0
        if ftype == "sequence":
            if "max_len" not in col:
                raise ConfigError(f"feature_cols: sequence feature {col['name']!r} needs max_len")
            spec["max_len"] = int(col["max_len"])
        spec["vocab_size"] = int(col["vocab_size"])
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
            features[col["name"]] = _feature_spec(col)
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
