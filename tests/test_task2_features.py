"""Task-2 features (docs/task2_features.md): user_id with an OOV row, item-side levels derived
from the splits, item-side columns from another parquet keyed by item_id."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from src.data.checks import validate_dataset
from src.data.features import build_feature_map
from src.data.item_table import ItemTable
from src.data.loader import MMCTRDataLoader
from src.data.vocab import resolve_vocab_sizes
from src.errors import ConfigError, DataError

from .conftest import REPO
from .validation_data import N_ITEMS, edit, expected_modes, feature, set_cell, splits

ALT_DIM = 16


# --- user_id with an OOV row ------------------------------------------------------------------
def test_oov_users_share_the_last_row(params):
    """Users beyond the vocabulary (and ids that do not even fit int32, or are negative) map
    to vocab_size - 1 as the loader reads them; the others keep their id."""
    edit(params["train_data"], set_cell("user_id", 5, 2 ** 40))
    edit(params["train_data"], set_cell("user_id", 6, -3))
    edit(params["train_data"], set_cell("user_id", 7, 498))  # the largest id with its own row
    edit(params["train_data"], set_cell("user_id", 8, 500))  # the first id without
    user = feature(params, "user_id")
    user.update(type="categorical", vocab_size=500, oov=True)
    validate_dataset(params)  # no range error for an oov feature

    loader = MMCTRDataLoader(build_feature_map(params), params["train_data"], split="train")
    raw = pd.read_parquet(params["train_data"]).user_id.to_numpy()
    expected = np.where((raw < 0) | (raw > 498), 499, raw)
    np.testing.assert_array_equal(loader.tensors["user_id"].numpy(), expected)
    assert loader.tensors["user_id"].dtype == torch.int32
    assert 0 < (expected == 499).sum() < len(expected) - 1  # both kinds of rows occur
    assert expected[5] == expected[6] == expected[8] == 499 and expected[7] == 498


def test_without_oov_the_same_ids_are_an_error(params):
    feature(params, "user_id").update(type="categorical", vocab_size=500)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    largest = int(splits(params).user_id.max())
    assert err.value.column == "user_id"
    assert f"set vocab_size: {largest + 1} (or vocab_size: auto); or oov: True" in str(err.value)


def test_auto_with_oov_leaves_every_known_user_its_row(params):
    feature(params, "user_id").update(type="categorical", vocab_size="auto", oov=True)
    resolved = resolve_vocab_sizes(params)
    largest = int(splits(params).user_id.max())
    assert feature(resolved, "user_id")["vocab_size"] == largest + 2
    validate_dataset(resolved)
    loader = MMCTRDataLoader(build_feature_map(resolved), params["test_data"], split="test")
    np.testing.assert_array_equal(loader.tensors["user_id"].numpy(),
                                  pd.read_parquet(params["test_data"]).user_id.to_numpy())


@pytest.mark.parametrize("change, message", [
    (dict(name="item_id", oov=True), "oov: True applies to categorical features of the split"),
    (dict(name="likes_level", oov="yes"), "oov='yes' is not True or False"),
    (dict(name="likes_level", oov=True, vocab_size=1), "leaves no room for the OOV row"),
])
def test_oov_where_it_cannot_work_is_a_config_error(params, change, message):
    feature(params, change.pop("name")).update(change)
    with pytest.raises(ConfigError, match=message):
        validate_dataset(params)
    with pytest.raises(ConfigError, match=message):
        build_feature_map(params)


# --- item-side levels derived from the splits --------------------------------------------------
def add_item_levels(params, vocab_size=11):
    params["feature_cols"] += [
        {"name": "item_likes_level", "type": "categorical", "source": "item",
         "vocab_size": vocab_size, "from_splits": "likes_level"},
        {"name": "item_views_level", "type": "categorical", "source": "item",
         "vocab_size": vocab_size, "from_splits": "views_level"}]


def test_item_levels_are_the_mode_per_target_item(params):
    # items 40..49 never appear as a target: their rows are moved to items 20..29
    for key in ("train_data", "valid_data", "test_data"):
        edit(params[key], lambda c: c.update(item_id=[i - 20 if i >= 40 else i
                                                      for i in c["item_id"]]))
    add_item_levels(params)
    validate_dataset(params)
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    for name, column in (("item_likes_level", "likes_level"), ("item_views_level", "views_level")):
        expected, counts = expected_modes(params, column)
        np.testing.assert_array_equal(getattr(table, name).numpy(), expected, err_msg=name)
        assert (expected[40:] == 0).all() and expected[0] == 0
        # the data exercises the rules: ties exist, and the mode is not simply the largest value
        top = counts.groupby("item_id").n.transform("max") == counts.n
        assert (top.groupby(counts.item_id).sum() > 1).any()
        assert (expected[1:40] != counts.groupby("item_id")[column].max().to_numpy()[:39]).any()


def test_item_levels_reach_a_din_with_no_model_change(params, tmp_path):
    """The baseline DIN built from the task-2 map embeds the extra item-side features of the target
    and of every history item: its item vector grows by their dims and a batch runs."""
    from src.experiment import build_model
    add_item_levels(params)
    alt = write_item_file(params, tmp_path / "alt.parquet")
    params["feature_cols"].append({"name": "alt_emb", "type": "embedding", "source": "item",
                                   "embedding_dim": ALT_DIM, "item_file": str(alt),
                                   "column": "emb"})
    feature(params, "user_id").update(type="categorical", vocab_size="auto", oov=True)
    model_config = yaml.safe_load((REPO / "config/din_config/model_config.yaml").read_text())
    params = resolve_vocab_sizes({**model_config["Base"], **model_config["DIN_default"], **params,
                                  "embedding_dim": 8, "dnn_hidden_units": [16],
                                  "attention_hidden_units": [8], "model_id": "task2", "gpu": -1,
                                  "model_root": str(tmp_path / "ckpt")})
    model = build_model(params)
    assert model.item_dim == 8 + 8 + 128 + 8 + 8 + ALT_DIM
    assert model.embedding_layer.embedding_layer.embedding_layers["user_id"].num_embeddings == \
        feature(params, "user_id")["vocab_size"]
    loader = MMCTRDataLoader(model.feature_map, params["train_data"], split="train", batch_size=16)
    logit = model(next(iter(loader)))["logit"]
    assert logit.shape == (16, 1) and torch.isfinite(logit).all()


def test_level_columns_used_by_from_splits_are_not_unexpected(params):
    """The row features likes_level/views_level can be dropped from the config while the
    item-side levels still read their columns."""
    params["feature_cols"] = [c for c in params["feature_cols"]
                              if c["name"] not in ("likes_level", "views_level")]
    add_item_levels(params)
    assert validate_dataset(params)["train"] == 300


def test_auto_vocab_of_item_levels_reads_the_split_column(params):
    edit(params["valid_data"], set_cell("views_level", 3, 17))
    add_item_levels(params, vocab_size="auto")
    resolved = resolve_vocab_sizes(params)
    assert feature(resolved, "item_views_level")["vocab_size"] == 18
    largest = splits(params).likes_level.max()
    assert feature(resolved, "item_likes_level")["vocab_size"] == largest + 1


def test_split_value_beyond_the_item_level_vocab(params):
    edit(params["test_data"], set_cell("likes_level", 44, 10))
    add_item_levels(params, vocab_size=10)
    feature(params, "likes_level")["vocab_size"] = 12  # the row feature alone would accept 10
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert err.value.path == params["test_data"] and err.value.row == 44
    assert "vocab_size=10 of feature 'item_likes_level'" in str(err.value)
    assert "set vocab_size: 11" in str(err.value)
    with pytest.raises(DataError) as err:  # and the item table refuses it, without validation
        ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    assert err.value.path == params["test_data"] and err.value.row == 44


def test_from_splits_of_an_unknown_column(params):
    add_item_levels(params)
    params["feature_cols"][-1]["from_splits"] = "views_lvl"
    with pytest.raises(ConfigError, match=r"from_splits: name='views_lvl'"):
        validate_dataset(params)


# --- item-side columns from another parquet keyed by item_id -----------------------------------
def write_item_file(params, path, drop=(7, 13), seed=0, **columns):
    """An item_emb-like file: items 1..N-1 except drop, rows shuffled, no padding row; its
    'emb' column is row i of the returned matrix for item i (rows of dropped items zero)."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(N_ITEMS, ALT_DIM)).astype(np.float32)
    emb[0] = 0
    ids = np.array([i for i in range(1, N_ITEMS) if i not in drop])
    ids = ids[rng.permutation(len(ids))]
    flat = pa.array(emb[ids].reshape(-1))
    offsets = pa.array(np.arange(0, len(ids) * ALT_DIM + 1, ALT_DIM, dtype=np.int32))
    table = {"item_id": pa.array(ids), "emb": pa.ListArray.from_arrays(offsets, flat)}
    table.update(columns)
    pq.write_table(pa.table(table), path)
    expected = emb.copy()
    expected[list(drop)] = 0
    write_item_file.expected = expected
    return path


def add_alt(params, path, **extra):
    params["feature_cols"].append({"name": "alt_emb", "type": "embedding", "source": "item",
                                   "embedding_dim": ALT_DIM, "item_file": str(path),
                                   "column": "emb", **extra})


def test_item_file_rows_are_matched_by_item_id(params, tmp_path, caplog):
    path = write_item_file(params, tmp_path / "alt.parquet")
    add_alt(params, path)
    assert validate_dataset(params)[str(path)] == N_ITEMS - 3
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    np.testing.assert_array_equal(table.alt_emb.numpy(), write_item_file.expected)
    assert (table.alt_emb[[0, 7, 13]] == 0).all() and (table.alt_emb[1] != 0).any()
    assert "2 of 49 items have no row" in caplog.text


def test_task1_item_info_file_as_an_item_file(params, tmp_path):
    """A task-1 item_info file (padding row 0 included) read by column name, beside the
    release's own item_emb_d128."""
    info = pq.read_table(params["item_info"])
    other = info.column("item_emb_d128").to_pylist()
    other = [[2 * x for x in row] for row in other]
    other_path = tmp_path / "other_item_info.parquet"
    pq.write_table(info.set_column(2, "item_emb_d128", pa.array(other)), other_path)
    params["feature_cols"].append({"name": "item_emb_other", "type": "embedding", "source": "item",
                                   "embedding_dim": 128, "item_file": str(other_path),
                                   "column": "item_emb_d128"})
    validate_dataset(params)
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    torch.testing.assert_close(table.item_emb_other, 2 * table.item_emb_d128, rtol=1e-6, atol=0)


def test_categorical_item_file_column_with_auto_vocab(params, tmp_path):
    levels = np.arange(1, N_ITEMS) % 5 + 3
    path = tmp_path / "levels.parquet"
    pq.write_table(pa.table({"item_id": np.arange(N_ITEMS - 1, 0, -1), "level": levels[::-1]}),
                   path)
    params["feature_cols"].append({"name": "item_level", "type": "categorical", "source": "item",
                                   "vocab_size": "auto", "item_file": str(path),
                                   "column": "level"})
    resolved = resolve_vocab_sizes(params)
    assert feature(resolved, "item_level")["vocab_size"] == levels.max() + 1
    validate_dataset(resolved)
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(resolved))
    np.testing.assert_array_equal(table.item_level.numpy(), np.r_[0, levels])


def _id_beyond_item_info(table):
    ids = table["item_id"]
    ids[3] = N_ITEMS  # item_info holds items 0..N_ITEMS-1
    return 3, "item_id", f"value {N_ITEMS} is outside [0, {N_ITEMS - 1}]"


def _repeated_id(table):
    table["item_id"][9] = table["item_id"][2]
    return 9, "item_id", "appears more than once"


def _shifted_ids(table):
    table["item_id"] = [i - 1 for i in table["item_id"]]  # 0-based ids: item 0 has a vector
    row = table["item_id"].index(0)
    return row, "emb", "item_id 0 (padding) is not all zeros"


def _nan(table):
    table["emb"][4][2] = float("nan")
    return 4, "emb", "NaN"


def _null_id(table):
    table["item_id"][6] = None
    return 6, "item_id", "null"


@pytest.mark.parametrize("break_file", [_id_beyond_item_info, _repeated_id, _shifted_ids, _nan,
                                        _null_id])
def test_bad_item_file_names_file_column_and_row(params, tmp_path, break_file):
    path = write_item_file(params, tmp_path / "alt.parquet")
    table = pq.read_table(path).to_pydict()
    row, column, text = break_file(table)
    pq.write_table(pa.table({"item_id": pa.array(table["item_id"], pa.int64()),
                             "emb": pa.array(table["emb"], pa.list_(pa.float32()))}), path)
    add_alt(params, path)
    for load in (validate_dataset,
                 lambda p: ItemTable.from_parquet(p["item_info"], build_feature_map(p))):
        with pytest.raises(DataError) as err:
            load(params)
        assert err.value.path == str(path) and err.value.column == column
        assert err.value.row == row and text in str(err.value) and "Fix:" in str(err.value)


def test_item_file_of_the_wrong_dim_or_column(params, tmp_path):
    path = write_item_file(params, tmp_path / "alt.parquet")
    add_alt(params, path, embedding_dim=ALT_DIM + 1)
    with pytest.raises(DataError, match=rf"column 'emb', row 0: list has length {ALT_DIM}, "
                                        rf"expected {ALT_DIM + 1}"):
        validate_dataset(params)
    params["feature_cols"][-1].update(embedding_dim=ALT_DIM, column="embedding")
    with pytest.raises(DataError, match=r"alt\.parquet, column 'embedding': missing column"):
        validate_dataset(params)
    params["feature_cols"][-1]["item_file"] = str(tmp_path / "absent.parquet")
    with pytest.raises(DataError, match=r"absent\.parquet: file not found \(config key "
                                        r"feature_cols\[7\] item_file"):
        validate_dataset(params)


@pytest.mark.parametrize("entry, message", [
    ({"name": "alt", "type": "embedding", "embedding_dim": 4, "item_file": "x.parquet"},
     "item_file needs source: item"),
    ({"name": "alt", "type": "embedding", "source": "item", "embedding_dim": 4, "column": "emb"},
     "column='emb' is only used with item_file"),
    ({"name": "alt", "type": "embedding", "source": "item", "embedding_dim": 4,
      "from_splits": "likes_level"}, "the type must be categorical"),
    ({"name": "item_id", "type": "categorical", "source": "item", "vocab_size": 50,
      "item_file": "x.parquet"}, "item_id is the item table's key"),
])
def test_task2_keys_where_they_cannot_work(params, entry, message):
    params["feature_cols"] = [c for c in params["feature_cols"] if c["name"] != entry["name"]]
    params["feature_cols"].append(entry)
    with pytest.raises(ConfigError, match=message):
        validate_dataset(params)
    with pytest.raises(ConfigError, match=message):
        build_feature_map(params)
