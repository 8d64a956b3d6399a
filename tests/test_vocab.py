"""vocab_size: auto, resolved from the data by src.data.vocab.resolve_vocab_sizes."""
import copy
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.data.features import build_feature_map
from src.data.vocab import dataset_vocab_sizes, resolve_vocab_sizes
from src.errors import ConfigError, DataError

SPLIT = "MicroLens_1M_x1"


def auto_params(root):
    split = root / SPLIT
    return {
        "dataset_id": "auto", "data_root": str(root), "embedding_dim": 8,
        "item_info": str(split / "item_info.parquet"),
        **{f"{s}_data": str(split / f"{s}.parquet") for s in ("train", "valid", "test")},
        "feature_cols": [
            {"name": "user_id", "type": "categorical", "vocab_size": "auto", "oov": True},
            {"name": "item_seq", "type": "meta"},
            {"name": ["likes_level", "views_level"], "type": "categorical", "vocab_size": "auto"},
            {"name": "item_id", "type": "categorical", "source": "item", "vocab_size": "auto"},
            {"name": "item_tags", "type": "sequence", "source": "item", "max_len": 5,
             "vocab_size": "Auto"},
            {"name": "item_emb_d128", "type": "embedding", "source": "item", "embedding_dim": 128},
            {"name": "clicks", "type": "categorical", "vocab_size": "auto", "active": False},
        ],
        "label_col": {"name": "label", "dtype": "float"},
    }


def split_frames(root):
    return [pd.read_parquet(root / SPLIT / f"{s}.parquet") for s in ("train", "valid", "test")]


def test_sizes_come_from_the_data(tiny_data, caplog):
    root, _ = tiny_data
    params = auto_params(root)
    before = copy.deepcopy(params)
    with caplog.at_level(logging.INFO, logger="src.data.vocab"):
        resolved = resolve_vocab_sizes(params)
    assert params == before  # the caller's params are not modified
    sizes = {c["name"]: c.get("vocab_size") for c in resolved["feature_cols"]}

    splits = pd.concat(split_frames(root))
    item_info = pd.read_parquet(root / SPLIT / "item_info.parquet")
    assert sizes["item_id"] == len(item_info) == 2001
    assert sizes["item_tags"] == np.concatenate(item_info.item_tags.to_numpy()).max() + 1
    assert sizes["user_id"] == splits.user_id.max() + 2  # + 1 for the OOV row
    assert sizes["likes_level"] == splits.likes_level.max() + 1
    assert sizes["views_level"] == splits.views_level.max() + 1
    # the two-name entry became one entry per name; the inactive one is left alone
    assert [c["name"] for c in resolved["feature_cols"]] == [
        "user_id", "item_seq", "likes_level", "views_level", "item_id", "item_tags",
        "item_emb_d128", "clicks"]
    assert sizes["clicks"] == "auto"
    assert "vocab_size auto: item_id = 2001 (item_info rows)" in caplog.text
    assert sum("vocab_size auto:" in r.message for r in caplog.records) == 5
    assert resolve_vocab_sizes(params) == resolved  # deterministic

    feature_map = build_feature_map(resolved)
    assert feature_map.features["user_id"]["vocab_size"] == sizes["user_id"]
    assert feature_map.features["user_id"]["oov_idx"] == sizes["user_id"] - 1


def test_split_sizes_cover_valid_and_test(tiny_data, tmp_path):
    """A value only the test file holds still fits: prediction and training agree."""
    root, _ = tiny_data
    params = auto_params(root)
    test = pq.read_table(params["test_data"])
    views = test.column("views_level").to_numpy().copy()
    views[7] = 23
    test = test.set_column(test.column_names.index("views_level"), "views_level", pa.array(views))
    params["test_data"] = str(tmp_path / "test.parquet")
    pq.write_table(test, params["test_data"])
    sizes = {c["name"]: c.get("vocab_size") for c in resolve_vocab_sizes(params)["feature_cols"]}
    assert sizes["views_level"] == 24


def test_generator_reports_what_auto_computes(tiny_data):
    root, summary = tiny_data
    split = root / SPLIT
    sizes = dataset_vocab_sizes(split / "item_info.parquet", *(split / f"{s}.parquet"
                                                               for s in ("train", "valid", "test")))
    assert summary["vocab_sizes"] == sizes
    assert sizes["user_id"] == pd.concat(split_frames(root)).user_id.max() + 1


def test_auto_on_a_type_without_vocabulary(tiny_data):
    params = auto_params(tiny_data[0])
    params["feature_cols"][5]["vocab_size"] = "auto"
    with pytest.raises(ConfigError, match=r"feature_cols\[5\].*item_emb_d128.*auto.*'embedding'"):
        resolve_vocab_sizes(params)


def test_unresolved_auto_is_refused_by_the_feature_map(tiny_data):
    with pytest.raises(ConfigError, match="user_id.*resolve_vocab_sizes"):
        build_feature_map(auto_params(tiny_data[0]))


def _write_split(path, **columns):
    pq.write_table(pa.table({k: pa.array(v) for k, v in columns.items()}), path)


def test_negative_id_names_file_column_and_row(tmp_path):
    params = {"train_data": str(tmp_path / "train.parquet"), "feature_cols": [
        {"name": "likes_level", "type": "categorical", "vocab_size": "auto"}]}
    _write_split(params["train_data"], likes_level=[3, 1, 0, -4, 2])
    with pytest.raises(DataError) as err:
        resolve_vocab_sizes(params)
    assert err.value.row == 3 and err.value.column == "likes_level"
    assert "negative id -4" in str(err.value) and "Fix:" in str(err.value)


def test_negative_id_inside_a_list_names_its_row(tmp_path):
    path = tmp_path / "item_info.parquet"
    tags = pa.array([[0, 0], [1, 2], [3, 4], [5, -1]], pa.list_(pa.int64(), 2))
    pq.write_table(pa.table({"item_id": np.arange(4), "item_tags": tags}), path)
    params = {"item_info": str(path), "feature_cols": [
        {"name": "item_tags", "type": "sequence", "source": "item", "max_len": 2,
         "vocab_size": "auto"}]}
    with pytest.raises(DataError) as err:
        resolve_vocab_sizes(params)
    assert err.value.row == 3 and err.value.column == "item_tags"


def test_float_ids_are_a_dtype_error(tmp_path):
    params = {"train_data": str(tmp_path / "train.parquet"), "feature_cols": [
        {"name": "likes_level", "type": "categorical", "vocab_size": "auto"}]}
    _write_split(params["train_data"], likes_level=[1.0, 2.0])
    with pytest.raises(DataError, match=r"column 'likes_level': has type double"):
        resolve_vocab_sizes(params)


def test_missing_file_names_its_config_key(tmp_path):
    params = {"train_data": str(tmp_path / "nowhere.parquet"), "feature_cols": [
        {"name": "likes_level", "type": "categorical", "vocab_size": "auto"}]}
    with pytest.raises(DataError, match=r"not found \(config key train_data"):
        resolve_vocab_sizes(params)
