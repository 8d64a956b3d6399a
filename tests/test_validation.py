"""validate_dataset on tiny MicroLens-shaped parquet files: one good set, then one bad input per test."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from src.data import scan
from src.errors import ConfigError, DataError, UserError
from src.data.checks import validate_dataset

from .parquet_layouts import to_fixed_size

REPO = Path(__file__).resolve().parents[1]
N_ITEMS, TAG_VOCAB, SEQ_LEN, TAG_LEN, EMB_DIM = 50, 20, 64, 5, 128
ROWS = {"train": 300, "valid": 100, "test": 120}


# --- tiny data of the real schema ------------------------------------------------------------
def _list_column(matrix, value_type):
    """A list<value_type> column from a 2-D array, one list per row."""
    matrix = np.asarray(matrix)
    offsets = np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel(), type=value_type))


def _histories(rng, n):
    """Left-padded histories: the last k positions hold item ids, the rest 0."""
    seq = np.zeros((n, SEQ_LEN), dtype=np.int64)
    for i, k in enumerate(rng.integers(1, SEQ_LEN + 1, size=n)):
        seq[i, SEQ_LEN - k:] = rng.integers(1, N_ITEMS, size=k)
    return seq


def make_dataset(root):
    """Write item_info, train, valid, test under root; return params like load_config's."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    tags = rng.integers(1, TAG_VOCAB, size=(N_ITEMS, TAG_LEN))
    tags[:, :2] = 0  # left padding
    tags[0] = 0
    emb = rng.normal(size=(N_ITEMS, EMB_DIM))
    emb[0] = 0.0
    item_info = pa.table({
        "item_id": pa.array(np.arange(N_ITEMS, dtype=np.int64)),
        "item_tags": _list_column(tags, pa.int64()),
        "item_emb_d128": _list_column(emb, pa.float64()),
    })
    pq.write_table(item_info, root / "item_info.parquet")
    for split, n in ROWS.items():
        columns = {}
        if split == "test":
            columns["ID"] = pa.array(np.arange(n, dtype=np.int64))
        columns.update({
            "user_id": pa.array(rng.integers(1, 1000, size=n)),
            "item_seq": _list_column(_histories(rng, n), pa.int64()),
            "item_id": pa.array(rng.integers(1, N_ITEMS, size=n)),
            "likes_level": pa.array(rng.integers(0, 10, size=n)),
            "views_level": pa.array(rng.integers(0, 10, size=n)),
        })
        if split != "test":
            columns["label"] = pa.array(rng.integers(0, 2, size=n))
        pq.write_table(pa.table(columns), root / f"{split}.parquet")
    return {
        "dataset_id": "tiny",
        "max_len": SEQ_LEN,
        "train_data": str(root / "train.parquet"),
        "valid_data": str(root / "valid.parquet"),
        "test_data": str(root / "test.parquet"),
        "item_info": str(root / "item_info.parquet"),
        "feature_cols": [
            {"name": "user_id", "active": True, "dtype": "int", "type": "meta"},
            {"name": "item_seq", "active": True, "dtype": "int", "type": "meta"},
            {"name": "likes_level", "active": True, "dtype": "int", "type": "categorical", "vocab_size": 11},
            {"name": "views_level", "active": True, "dtype": "int", "type": "categorical", "vocab_size": 11},
            {"name": "item_id", "active": True, "dtype": "int", "type": "categorical",
             "vocab_size": N_ITEMS, "source": "item"},
            {"name": "item_tags", "active": True, "dtype": "int", "type": "sequence", "max_len": TAG_LEN,
             "vocab_size": TAG_VOCAB, "source": "item"},
            {"name": "item_emb_d128", "active": True, "dtype": "float", "type": "embedding",
             "source": "item", "embedding_dim": EMB_DIM},
        ],
        "label_col": {"name": "label", "dtype": "float"},
    }


def edit(path, change, types=None):
    """Rewrite a parquet file after change(columns) mutates its columns (a dict of lists)."""
    table = pq.read_table(path)
    columns = table.to_pydict()
    change(columns)
    types = types or {}
    arrays = {}
    for name, values in columns.items():
        typ = types.get(name)
        if typ is None and name in table.schema.names:
            typ = table.schema.field(name).type
        arrays[name] = pa.array(values, type=typ)
    pq.write_table(pa.table(arrays), path)


def set_cell(column, row, value):
    def change(columns):
        columns[column][row] = value
    return change


def set_element(column, row, index, value):
    def change(columns):
        columns[column][row][index] = value
    return change


def assert_names(err, path, column=None, row=None):
    """The message names the file, the column and the row, and the row is the right one."""
    message = str(err.value)
    assert f"file {path}" in message
    if column is not None:
        assert f"column {column!r}" in message
    if row is not None:
        assert err.value.row == row
        assert re.search(rf"\brow {row}:", message), message
    assert "Fix:" in message


@pytest.fixture
def params(tmp_path):
    return make_dataset(tmp_path / "data")


@pytest.fixture(params=["list", "fixed_size"])
def any_layout(request, tmp_path):
    """The tiny dataset with its list columns stored as list, or as fixed_size_list."""
    params = make_dataset(tmp_path / "data")
    if request.param == "fixed_size":
        rewritten = [to_fixed_size(params[key])
                     for key in ("item_info", "train_data", "valid_data", "test_data")]
        assert rewritten == [["item_tags", "item_emb_d128"]] + [["item_seq"]] * 3
    return params


# --- the good case -------------------------------------------------------------------------
def test_valid_dataset_passes_and_counts_rows(any_layout):
    summary = validate_dataset(any_layout)
    assert summary == {"item_info": N_ITEMS, "train": 300, "valid": 100, "test": 120}


def test_only_requested_splits_are_read(params):
    Path(params["train_data"]).unlink()
    assert validate_dataset(params, splits=("test",)) == {"item_info": N_ITEMS, "test": 120}


def test_extra_item_info_column_is_harmless(params):
    edit(params["item_info"], lambda c: c.update(item_title=["t"] * N_ITEMS))
    assert validate_dataset(params)["item_info"] == N_ITEMS


def test_id_not_first_is_only_a_warning(params, caplog):
    def move_id_last(columns):
        columns["ID"] = columns.pop("ID")
    edit(params["test_data"], move_id_last)
    assert validate_dataset(params)["test"] == 120
    assert "not the first column" in caplog.text


# --- files and columns -------------------------------------------------------------------------
def test_missing_file_names_path_and_key(params):
    Path(params["valid_data"]).unlink()
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"])
    assert "valid_data" in str(err.value) and "not found" in str(err.value)


def test_not_parquet(params):
    Path(params["train_data"]).write_text("user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match="not a readable parquet"):
        validate_dataset(params)


def test_missing_column(params):
    edit(params["train_data"], lambda c: c.pop("likes_level"))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "likes_level")
    assert "missing column" in str(err.value)


def test_missing_label_in_valid(params):
    edit(params["valid_data"], lambda c: c.pop("label"))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "label")


def test_item_feature_missing_everywhere_is_a_config_error(params):
    """A name found in no file is reported against the config entry, listing item_info."""
    edit(params["item_info"], lambda c: c.pop("item_tags"))
    with pytest.raises(ConfigError) as err:
        validate_dataset(params)
    message = str(err.value)
    assert "feature_cols[5]" in message and "'item_tags'" in message
    assert params["item_info"] in message


def test_item_feature_missing_from_item_info(params):
    """item_tags left in a split file but not in item_info: the data, not the config, is wrong."""
    tags = pq.read_table(params["item_info"]).column("item_tags").to_pylist()
    edit(params["item_info"], lambda c: c.pop("item_tags"))
    edit(params["test_data"], lambda c: c.update(item_tags=[tags[i] for i in c["item_id"]]),
         types={"item_tags": pa.list_(pa.int64())})
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_tags")
    assert "missing column" in str(err.value)


def test_extra_column(params):
    edit(params["valid_data"], lambda c: c.update(clicks=[0] * ROWS["valid"]))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "clicks")
    assert "unexpected column" in str(err.value)


def test_label_left_in_test_is_an_extra_column(params):
    edit(params["test_data"], lambda c: c.update(label=[0] * ROWS["test"]))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["test_data"], "label")


def test_inactive_feature_column_is_allowed(params):
    edit(params["train_data"], lambda c: c.update(video_category=[1] * ROWS["train"]))
    params["feature_cols"].append({"name": "video_category", "active": False, "type": "categorical"})
    assert validate_dataset(params, splits=("train",))["train"] == 300


# --- dtypes --------------------------------------------------------------------------------
@pytest.mark.parametrize("typ, shown", [(pa.float64(), "double"), (pa.string(), "string")])
def test_wrong_dtype(params, typ, shown):
    def convert(columns):
        columns["likes_level"] = [float(v) if typ == pa.float64() else str(v) for v in columns["likes_level"]]
    edit(params["train_data"], convert, types={"likes_level": typ})
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "likes_level")
    assert f"has type {shown}" in str(err.value)


def test_int32_is_accepted(params):
    edit(params["train_data"], lambda c: None, types={"likes_level": pa.int32()})
    assert validate_dataset(params, splits=("train",))["train"] == 300


def test_embedding_of_ints_is_a_dtype_error(params):
    def to_ints(columns):
        columns["item_emb_d128"] = [[int(x) for x in row] for row in columns["item_emb_d128"]]
    edit(params["item_info"], to_ints, types={"item_emb_d128": pa.list_(pa.int64())})
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_emb_d128")


# --- list lengths ----------------------------------------------------------------------------
def test_item_seq_too_short(params):
    def shorten(columns):
        columns["item_seq"][17] = columns["item_seq"][17][1:]
    edit(params["train_data"], shorten)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "item_seq", 17)
    assert "length 63" in str(err.value)


def test_item_seq_ragged_above_max_len(params):
    def lengthen(columns):
        columns["item_seq"][99] = [0] + columns["item_seq"][99]
    edit(params["valid_data"], lengthen)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "item_seq", 99)
    assert "same length" in str(err.value)


def test_item_seq_longer_than_max_len_everywhere_is_fine(any_layout):
    any_layout["max_len"] = 32
    assert validate_dataset(any_layout)["train"] == 300


def test_item_tags_wrong_length(params):
    def shorten(columns):
        columns["item_tags"][9] = columns["item_tags"][9][:4]
    edit(params["item_info"], shorten)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_tags", 9)
    assert "expected 5" in str(err.value)


def test_embedding_wrong_length(params):
    def shorten(columns):
        columns["item_emb_d128"][12] = columns["item_emb_d128"][12][:127]
    edit(params["item_info"], shorten)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_emb_d128", 12)
    assert "expected 128" in str(err.value)


# --- value ranges ------------------------------------------------------------------------------
def test_item_id_beyond_item_info(params):
    edit(params["train_data"], set_cell("item_id", 23, N_ITEMS))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "item_id", 23)
    assert f"value {N_ITEMS} is outside [1, {N_ITEMS - 1}]" in str(err.value)


def test_padding_item_as_target(params):
    edit(params["test_data"], set_cell("item_id", 5, 0))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["test_data"], "item_id", 5)


def test_item_seq_id_out_of_range(any_layout):
    edit(any_layout["train_data"], set_element("item_seq", 41, 63, 77))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["train_data"], "item_seq", 41)
    assert "value 77" in str(err.value)


def test_item_id_vocab_size_smaller_than_item_info(params):
    params["feature_cols"][4]["vocab_size"] = 40
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    # item_info itself is checked first: its row 40 holds item 40, beyond the vocabulary.
    assert_names(err, params["item_info"], "item_id", 40)
    assert "vocab_size=40" in str(err.value)


def test_categorical_out_of_vocab(params):
    edit(params["valid_data"], set_cell("views_level", 8, 11))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "views_level", 8)
    assert "vocab_size=11" in str(err.value)


def test_out_of_vocab_error_names_the_size_needed(params):
    """The first bad row is named; the fix names the size that holds the column's largest
    value, found by a second scan of the whole file."""
    edit(params["item_info"], set_element("item_tags", 17, 4, TAG_VOCAB + 5))
    edit(params["item_info"], set_element("item_tags", 30, 3, TAG_VOCAB + 11))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_tags", 17)
    assert str(err.value).endswith(
        f"row 17: value {TAG_VOCAB + 5} is outside [0, {TAG_VOCAB - 1}] (vocab_size={TAG_VOCAB}); "
        f"the largest value in this column is {TAG_VOCAB + 11}. "
        f"Fix: set vocab_size: {TAG_VOCAB + 12} (or vocab_size: auto)")
    params["feature_cols"][5]["vocab_size"] = "auto"  # the other fix the message offers
    assert validate_dataset(params)["item_info"] == N_ITEMS


def test_row_feature_out_of_vocab_also_offers_oov(params):
    edit(params["train_data"], set_cell("likes_level", 3, 14))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "likes_level", 3)
    assert "largest value in this column is 14" in str(err.value)
    assert "set vocab_size: 15 (or vocab_size: auto); or oov: True" in str(err.value)


def test_negative_id_fix_is_not_a_bigger_vocabulary(params):
    edit(params["valid_data"], set_cell("likes_level", 6, -2))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "likes_level", 6)
    assert "vocab_size:" not in str(err.value) and ">= 0" in str(err.value)


def test_vocab_size_auto_is_resolved_before_the_checks(params):
    """auto takes the sizes from the data: the largest split value + 1 passes where the
    config's 11 fails."""
    edit(params["valid_data"], set_cell("views_level", 8, 11))
    params["feature_cols"][3]["vocab_size"] = "auto"
    assert validate_dataset(params)["valid"] == ROWS["valid"]
    assert params["feature_cols"][3]["vocab_size"] == "auto"  # the caller's params unchanged


def test_item_tag_out_of_vocab(any_layout):
    edit(any_layout["item_info"], set_element("item_tags", 33, 4, TAG_VOCAB))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["item_info"], "item_tags", 33)


def test_null_value(params):
    edit(params["train_data"], set_cell("likes_level", 4, None))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "likes_level", 4)
    assert "null" in str(err.value)


def test_null_label_is_a_label_problem(params):
    edit(params["train_data"], set_cell("label", 9, None))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "label", 9)
    assert "label is missing (null/NaN), expected 0 or 1" in str(err.value)
    assert "Fix: drop the rows without a label or fill them" in str(err.value)
    assert "padding" not in str(err.value)


def test_nan_label_is_a_missing_label(params):
    def to_float(columns):
        columns["label"] = [float(v) for v in columns["label"]]
        columns["label"][21] = float("nan")
    edit(params["valid_data"], to_float, types={"label": pa.float64()})
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "label", 21)
    assert "label is missing (null/NaN)" in str(err.value)


def test_null_embedding_fix_is_not_padding(params):
    edit(params["item_info"], set_cell("item_emb_d128", 14, None))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_emb_d128", 14)
    assert "null" in str(err.value) and "embedding" in str(err.value)
    assert "0 is the padding" not in str(err.value)


def test_null_inside_list(any_layout):
    edit(any_layout["train_data"], set_element("item_seq", 60, 10, None))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["train_data"], "item_seq", 60)


def test_fixed_size_list_of_the_wrong_width(params):
    """A fixed-size item_tags of width 4: every row is short, row 0 is the first one named."""
    edit(params["item_info"], lambda c: c.update(item_tags=[t[1:] for t in c["item_tags"]]),
         types={"item_tags": pa.list_(pa.int64(), TAG_LEN - 1)})
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_tags", 0)
    assert "length 4, expected 5" in str(err.value)


def test_null_row_of_a_polars_fixed_size_list(params):
    """polars writes a null row of an Array column in a form pyarrow cannot read back; the
    validator still names the file, column and row."""
    import polars as pl
    frame = pl.read_parquet(params["valid_data"])
    rows = frame["item_seq"].to_list()
    rows[42] = None
    frame = frame.with_columns(pl.Series("item_seq", rows).list.to_array(SEQ_LEN))
    frame.write_parquet(params["valid_data"])
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "item_seq", 42)
    assert "null" in str(err.value)


# --- item_info layout ----------------------------------------------------------------------------
def test_item_info_row0_not_padding(any_layout):
    edit(any_layout["item_info"], set_element("item_emb_d128", 0, 5, 0.25))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["item_info"], "item_emb_d128", 0)
    assert "padding" in str(err.value)


def test_item_info_without_padding_row(params):
    def drop_row0(columns):
        for name in columns:
            columns[name] = columns[name][1:]
        columns["item_id"] = list(range(N_ITEMS - 1))  # renumbered, so row 0 is a real item
    edit(params["item_info"], drop_row0)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], row=0)
    assert "padding" in str(err.value)


def test_item_id_not_row_number(params):
    def swap(columns):
        ids = columns["item_id"]
        ids[10], ids[11] = ids[11], ids[10]
    edit(params["item_info"], swap)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["item_info"], "item_id", 10)
    assert "expected the row number 10" in str(err.value)


# --- NaN, inf, labels --------------------------------------------------------------------------
def test_nan_in_embedding(any_layout):
    edit(any_layout["item_info"], set_element("item_emb_d128", 7, 100, float("nan")))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["item_info"], "item_emb_d128", 7)
    assert "NaN" in str(err.value)


def test_inf_in_embedding(any_layout):
    edit(any_layout["item_info"], set_element("item_emb_d128", 3, 0, float("-inf")))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["item_info"], "item_emb_d128", 3)
    assert "inf" in str(err.value)


def test_nan_in_numeric_feature(params):
    edit(params["train_data"], lambda c: c.update(watch_time=[1.5] * 150 + [float("nan")] + [2.0] * 149))
    params["feature_cols"].append({"name": "watch_time", "active": True, "type": "numeric"})
    with pytest.raises(DataError) as err:
        validate_dataset(params, splits=("train",))
    assert_names(err, params["train_data"], "watch_time", 150)


def test_label_two(params):
    edit(params["train_data"], set_cell("label", 30, 2))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["train_data"], "label", 30)
    assert "label is 2" in str(err.value)


def test_float_label_half(params):
    def to_float(columns):
        columns["label"] = [float(v) for v in columns["label"]]
        columns["label"][12] = 0.5
    edit(params["valid_data"], to_float, types={"label": pa.float64()})
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["valid_data"], "label", 12)


# --- test IDs ----------------------------------------------------------------------------
def test_test_without_id(params):
    edit(params["test_data"], lambda c: c.pop("ID"))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["test_data"], "ID")
    assert "missing column" in str(err.value)


def test_duplicate_test_id(params):
    edit(params["test_data"], set_cell("ID", 50, 10))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["test_data"], "ID", 50)
    assert "ID 10 appears more than once" in str(err.value)


# --- rows across read batches --------------------------------------------------------------
def test_row_numbers_count_across_batches(any_layout, monkeypatch):
    monkeypatch.setattr(scan, "BATCH_ROWS", 64)
    edit(any_layout["train_data"], set_element("item_seq", 150, 63, 99))
    with pytest.raises(DataError) as err:
        validate_dataset(any_layout)
    assert_names(err, any_layout["train_data"], "item_seq", 150)


def test_duplicate_id_across_batches(params, monkeypatch):
    monkeypatch.setattr(scan, "BATCH_ROWS", 32)
    edit(params["test_data"], set_cell("ID", 100, 3))
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert_names(err, params["test_data"], "ID", 100)


# --- config problems ----------------------------------------------------------------------------
def test_unknown_feature_name(params):
    params["feature_cols"][2]["name"] = "likes_lvl"
    with pytest.raises(ConfigError) as err:
        validate_dataset(params)
    message = str(err.value)
    assert "feature_cols[2]" in message and "likes_lvl" in message
    assert params["train_data"] in message


def test_bad_feature_type(params):
    params["feature_cols"][3]["type"] = "categorial"
    with pytest.raises(ConfigError) as err:
        validate_dataset(params)
    message = str(err.value)
    assert "feature_cols[3]" in message and "'categorial'" in message
    assert "meta, categorical, sequence, embedding, numeric" in message


def test_missing_vocab_size(params):
    del params["feature_cols"][5]["vocab_size"]
    with pytest.raises(ConfigError, match=r"feature_cols\[5\].*item_tags.*vocab_size"):
        validate_dataset(params)


def test_missing_path_key(params):
    del params["test_data"]
    with pytest.raises(ConfigError, match="test_data"):
        validate_dataset(params)


def test_embedding_dim_from_pretrain_dim(params):
    params["feature_cols"][6]["pretrain_dim"] = 64  # pretrain_dim wins over embedding_dim
    with pytest.raises(DataError, match="expected 64"):
        validate_dataset(params)


def test_errors_are_user_errors(params):
    params["feature_cols"][3]["type"] = "bogus"
    with pytest.raises(UserError):
        validate_dataset(params)


def test_shipped_config_names_missing_data(tmp_path, monkeypatch):
    """The baseline's tuner config parses, and without the data the error names the path and key."""
    tuner = yaml.safe_load((REPO / "config/DIN_microlens_mmctr_tuner_config_01.yaml").read_text())
    model = yaml.safe_load((REPO / "config/din_config/model_config.yaml").read_text())
    params = {**model["Base"], **model["DIN_default"], **tuner["dataset_config"]["MicroLens_1M_x1"]}
    monkeypatch.chdir(tmp_path)  # relative data paths then point at nothing
    with pytest.raises(DataError, match=r"item_info\.parquet.*not found \(config key item_info"):
        validate_dataset(params)


# --- command line --------------------------------------------------------------------------
def _write_config(config_dir, params):
    config_dir.mkdir()
    dataset = {k: v for k, v in params.items() if k not in ("dataset_id", "max_len")}
    (config_dir / "dataset_config.yaml").write_text(yaml.safe_dump({"tiny": dataset}))
    (config_dir / "model_config.yaml").write_text(yaml.safe_dump(
        {"Base": {"model_root": "./checkpoints/"}, "DIN_tiny": {"model": "DIN", "dataset_id": "tiny",
                                                                 "max_len": SEQ_LEN}}))


def test_cli_ok_and_error(params, tmp_path):
    config_dir = tmp_path / "cfg"
    _write_config(config_dir, params)
    cmd = [sys.executable, "-m", "src.validation", "--config", str(config_dir), "--expid", "DIN_tiny"]
    ok = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "train: 300 rows OK" in ok.stdout

    edit(params["train_data"], set_cell("label", 7, 3))
    bad = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: file ") and "row 7" in bad.stderr
    assert "Traceback" not in bad.stderr
