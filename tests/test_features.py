"""Our in-memory feature map must equal the one FuxiCTR's FeatureProcessor writes."""
import json

import pytest
import yaml
from fuxictr.preprocess import FeatureProcessor

from src.errors import ConfigError
from src.data.features import build_feature_map, item_features

BASELINE_TUNER = "config/DIN_microlens_mmctr_tuner_config_01.yaml"


def baseline_dataset_params(data_root):
    with open(BASELINE_TUNER) as f:
        params = dict(yaml.safe_load(f)["dataset_config"]["MicroLens_1M_x1"])
    params.update(dataset_id="MicroLens_1M_x1", data_root=str(data_root), group_id="user_id",
                  embedding_dim=64)
    return params


def test_feature_map_equals_fuxictr_processor(tmp_path):
    params = baseline_dataset_params(tmp_path)
    processor = FeatureProcessor(**params)
    processor.fit(train_ddf=None, **params)  # params hold rebuild_dataset=False, as the baseline
    with open(tmp_path / "MicroLens_1M_x1" / "feature_map.json") as f:
        expected = json.load(f)

    ours = build_feature_map(params)

    assert [{k: v} for k, v in ours.features.items()] == expected["features"]
    assert ours.labels == expected["labels"] == ["label"]
    assert ours.num_fields == expected["num_fields"]
    assert ours.total_features == expected["total_features"]
    # the baseline DNN input: likes 64 + views 64 + item 256 (+ pooled 256 added by DIN)
    assert ours.sum_emb_out_dim() == 64 + 64 + 64 + 64 + 128
    assert item_features(ours) == ["item_id", "item_tags", "item_emb_d128"]
    assert not list(tmp_path.glob("*/feature_map.json.*"))


def test_unknown_feature_type_names_allowed_types(tmp_path):
    params = baseline_dataset_params(tmp_path)
    params["feature_cols"] = params["feature_cols"] + [
        {"name": "duration", "active": True, "dtype": "int", "type": "bucket"}]
    with pytest.raises(ConfigError, match=r"'duration'.*type='bucket'.*categorical"):
        build_feature_map(params)


def test_categorical_without_vocab_size_is_refused(tmp_path):
    params = baseline_dataset_params(tmp_path)
    params["feature_cols"] = [dict(c) for c in params["feature_cols"]]
    del params["feature_cols"][2]["vocab_size"]
    with pytest.raises(ConfigError, match="likes_level.*vocab_size"):
        build_feature_map(params)


def test_task2_keys_reach_the_map_and_fuxictr_ignores_them(tmp_path):
    from fuxictr.pytorch.layers import FeatureEmbedding
    params = baseline_dataset_params(tmp_path)
    params["feature_cols"] = [dict(c, type="categorical", vocab_size=1000, oov=True)
                              if c["name"] == "user_id" else c for c in params["feature_cols"]] + [
        {"name": "item_likes_level", "type": "categorical", "source": "item", "vocab_size": 11,
         "from_splits": "likes_level"},
        {"name": "item_emb_d128_v1", "type": "embedding", "source": "item", "embedding_dim": 128,
         "item_file": "./data/item_emb.parquet"}]
    feature_map = build_feature_map(params)
    specs = feature_map.features
    assert specs["user_id"]["oov_idx"] == 999 and specs["user_id"]["source"] == ""
    assert specs["item_likes_level"]["from_splits"] == "likes_level"
    assert specs["item_likes_level"]["split_files"] == [params[f"{s}_data"]
                                                        for s in ("train", "valid", "test")]
    assert specs["item_emb_d128_v1"]["item_file"] == "./data/item_emb.parquet"
    assert specs["item_emb_d128_v1"]["column"] == "item_emb_d128_v1"
    assert item_features(feature_map)[-2:] == ["item_likes_level", "item_emb_d128_v1"]
    layers = FeatureEmbedding(feature_map, 8).embedding_layer.embedding_layers
    assert layers["user_id"].num_embeddings == 1000
    assert layers["item_likes_level"].num_embeddings == 11
