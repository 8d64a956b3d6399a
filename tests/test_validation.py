"""validate_dataset on tiny MicroLens-shaped parquet files (tests/validation_data.py): the good
case, then one bad input per test: files and columns, dtypes, list lengths, config problems,
the command line. Bad values, item_info's layout and test IDs: test_validation_values.py."""
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from src.errors import ConfigError, DataError, UserError
from src.data.checks import validate_dataset

from .conftest import REPO
from .validation_data import N_ITEMS, ROWS, SEQ_LEN, config_problem, edit, rejected, set_cell


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
    message = rejected(params, "valid_data")
    assert "valid_data" in message and "not found" in message


def test_not_parquet(params):
    Path(params["train_data"]).write_text("user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match="not a readable parquet"):
        validate_dataset(params)


def test_missing_column(params):
    message = rejected(params, "train_data", lambda c: c.pop("likes_level"), "likes_level")
    assert "missing column" in message


def test_missing_label_in_valid(params):
    rejected(params, "valid_data", lambda c: c.pop("label"), "label")


def test_item_feature_missing_everywhere_is_a_config_error(params):
    """A name found in no file is reported against the config entry, listing item_info."""
    edit(params["item_info"], lambda c: c.pop("item_tags"))
    message = config_problem(params)
    assert "feature_cols[5]" in message and "'item_tags'" in message
    assert params["item_info"] in message


def test_item_feature_missing_from_item_info(params):
    """item_tags left in a split file but not in item_info: the data, not the config, is wrong."""
    tags = pq.read_table(params["item_info"]).column("item_tags").to_pylist()
    edit(params["item_info"], lambda c: c.pop("item_tags"))
    edit(params["test_data"], lambda c: c.update(item_tags=[tags[i] for i in c["item_id"]]),
         types={"item_tags": pa.list_(pa.int64())})
    assert "missing column" in rejected(params, "item_info", column="item_tags")


def test_extra_column(params):
    message = rejected(params, "valid_data", lambda c: c.update(clicks=[0] * ROWS["valid"]),
                       "clicks")
    assert "unexpected column" in message


def test_label_left_in_test_is_an_extra_column(params):
    rejected(params, "test_data", lambda c: c.update(label=[0] * ROWS["test"]), "label")


def test_inactive_feature_column_is_allowed(params):
    edit(params["train_data"], lambda c: c.update(video_category=[1] * ROWS["train"]))
    params["feature_cols"].append({"name": "video_category", "active": False, "type": "categorical"})
    assert validate_dataset(params, splits=("train",))["train"] == 300


# --- dtypes --------------------------------------------------------------------------------
@pytest.mark.parametrize("typ, shown", [(pa.float64(), "double"), (pa.string(), "string")])
def test_wrong_dtype(params, typ, shown):
    def convert(columns):
        columns["likes_level"] = [float(v) if typ == pa.float64() else str(v) for v in columns["likes_level"]]
    message = rejected(params, "train_data", convert, "likes_level", types={"likes_level": typ})
    assert f"has type {shown}" in message


def test_int32_is_accepted(params):
    edit(params["train_data"], lambda c: None, types={"likes_level": pa.int32()})
    assert validate_dataset(params, splits=("train",))["train"] == 300


def test_embedding_of_ints_is_a_dtype_error(params):
    def to_ints(columns):
        columns["item_emb_d128"] = [[int(x) for x in row] for row in columns["item_emb_d128"]]
    rejected(params, "item_info", to_ints, "item_emb_d128",
             types={"item_emb_d128": pa.list_(pa.int64())})


# --- list lengths ----------------------------------------------------------------------------
def test_item_seq_too_short(params):
    def shorten(columns):
        columns["item_seq"][17] = columns["item_seq"][17][1:]
    message = rejected(params, "train_data", shorten, "item_seq", 17)
    assert "length 63" in message


def test_item_seq_ragged_above_max_len(params):
    def lengthen(columns):
        columns["item_seq"][99] = [0] + columns["item_seq"][99]
    message = rejected(params, "valid_data", lengthen, "item_seq", 99)
    assert "same length" in message


def test_item_seq_longer_than_max_len_everywhere_is_fine(any_layout):
    any_layout["max_len"] = 32
    assert validate_dataset(any_layout)["train"] == 300


def test_item_tags_wrong_length(params):
    def shorten(columns):
        columns["item_tags"][9] = columns["item_tags"][9][:4]
    message = rejected(params, "item_info", shorten, "item_tags", 9)
    assert "expected 5" in message


def test_embedding_wrong_length(params):
    def shorten(columns):
        columns["item_emb_d128"][12] = columns["item_emb_d128"][12][:127]
    message = rejected(params, "item_info", shorten, "item_emb_d128", 12)
    assert "expected 128" in message


# --- config problems ----------------------------------------------------------------------------
def test_unknown_feature_name(params):
    params["feature_cols"][2]["name"] = "likes_lvl"
    message = config_problem(params)
    assert "feature_cols[2]" in message and "likes_lvl" in message
    assert params["train_data"] in message


def test_bad_feature_type(params):
    params["feature_cols"][3]["type"] = "categorial"
    message = config_problem(params)
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
