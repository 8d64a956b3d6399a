"""validate_dataset on tiny MicroLens-shaped parquet files (tests/validation_data.py), one bad
value per test: value ranges, vocabularies, nulls, NaN and inf, labels, item_info's padding row
and row numbers, test IDs, rows counted across read batches."""
import pyarrow as pa

from src.data import scan
from src.data.checks import validate_dataset

from .validation_data import (N_ITEMS, ROWS, SEQ_LEN, TAG_LEN, TAG_VOCAB, edit, rejected, set_cell,
                              set_element)


# --- value ranges ------------------------------------------------------------------------------
def test_item_id_beyond_item_info(params):
    message = rejected(params, "train_data", set_cell("item_id", 23, N_ITEMS), "item_id", 23)
    assert f"value {N_ITEMS} is outside [1, {N_ITEMS - 1}]" in message


def test_padding_item_as_target(params):
    rejected(params, "test_data", set_cell("item_id", 5, 0), "item_id", 5)


def test_item_seq_id_out_of_range(any_layout):
    message = rejected(any_layout, "train_data", set_element("item_seq", 41, 63, 77),
                       "item_seq", 41)
    assert "value 77" in message


def test_item_id_vocab_size_smaller_than_item_info(params):
    params["feature_cols"][4]["vocab_size"] = 40
    # item_info itself is checked first: its row 40 holds item 40, beyond the vocabulary.
    assert "vocab_size=40" in rejected(params, "item_info", column="item_id", row=40)


def test_categorical_out_of_vocab(params):
    message = rejected(params, "valid_data", set_cell("views_level", 8, 11), "views_level", 8)
    assert "vocab_size=11" in message


def test_out_of_vocab_error_names_the_size_needed(params):
    """The first bad row is named; the fix names the size that holds the column's largest
    value, found by a second scan of the whole file."""
    edit(params["item_info"], set_element("item_tags", 17, 4, TAG_VOCAB + 5))
    message = rejected(params, "item_info", set_element("item_tags", 30, 3, TAG_VOCAB + 11),
                       "item_tags", 17)
    assert message.endswith(
        f"row 17: value {TAG_VOCAB + 5} is outside [0, {TAG_VOCAB - 1}] (vocab_size={TAG_VOCAB}); "
        f"the largest value in this column is {TAG_VOCAB + 11}. "
        f"Fix: set vocab_size: {TAG_VOCAB + 12} (or vocab_size: auto)")
    params["feature_cols"][5]["vocab_size"] = "auto"  # the other fix the message offers
    assert validate_dataset(params)["item_info"] == N_ITEMS


def test_row_feature_out_of_vocab_also_offers_oov(params):
    message = rejected(params, "train_data", set_cell("likes_level", 3, 14), "likes_level", 3)
    assert "largest value in this column is 14" in message
    assert "set vocab_size: 15 (or vocab_size: auto); or oov: True" in message


def test_negative_id_fix_is_not_a_bigger_vocabulary(params):
    message = rejected(params, "valid_data", set_cell("likes_level", 6, -2), "likes_level", 6)
    assert "vocab_size:" not in message and ">= 0" in message


def test_vocab_size_auto_is_resolved_before_the_checks(params):
    """auto takes the sizes from the data: the largest split value + 1 passes where the
    config's 11 fails."""
    edit(params["valid_data"], set_cell("views_level", 8, 11))
    params["feature_cols"][3]["vocab_size"] = "auto"
    assert validate_dataset(params)["valid"] == ROWS["valid"]
    assert params["feature_cols"][3]["vocab_size"] == "auto"  # the caller's params unchanged


def test_item_tag_out_of_vocab(any_layout):
    rejected(any_layout, "item_info", set_element("item_tags", 33, 4, TAG_VOCAB), "item_tags", 33)


def test_null_value(params):
    message = rejected(params, "train_data", set_cell("likes_level", 4, None), "likes_level", 4)
    assert "null" in message


def test_null_label_is_a_label_problem(params):
    message = rejected(params, "train_data", set_cell("label", 9, None), "label", 9)
    assert "label is missing (null/NaN), expected 0 or 1" in message
    assert "Fix: drop the rows without a label or fill them" in message
    assert "padding" not in message


def test_nan_label_is_a_missing_label(params):
    def to_float(columns):
        columns["label"] = [float(v) for v in columns["label"]]
        columns["label"][21] = float("nan")
    message = rejected(params, "valid_data", to_float, "label", 21, types={"label": pa.float64()})
    assert "label is missing (null/NaN)" in message


def test_null_embedding_fix_is_not_padding(params):
    message = rejected(params, "item_info", set_cell("item_emb_d128", 14, None),
                       "item_emb_d128", 14)
    assert "null" in message and "embedding" in message
    assert "0 is the padding" not in message


def test_null_inside_list(any_layout):
    rejected(any_layout, "train_data", set_element("item_seq", 60, 10, None), "item_seq", 60)


def test_fixed_size_list_of_the_wrong_width(params):
    """A fixed-size item_tags of width 4: every row is short, row 0 is the first one named."""
    message = rejected(params, "item_info",
                       lambda c: c.update(item_tags=[t[1:] for t in c["item_tags"]]),
                       "item_tags", 0, types={"item_tags": pa.list_(pa.int64(), TAG_LEN - 1)})
    assert "length 4, expected 5" in message


def test_null_row_of_a_polars_fixed_size_list(params):
    """polars writes a null row of an Array column in a form pyarrow cannot read back; the
    validator still names the file, column and row."""
    import polars as pl
    frame = pl.read_parquet(params["valid_data"])
    rows = frame["item_seq"].to_list()
    rows[42] = None
    frame = frame.with_columns(pl.Series("item_seq", rows).list.to_array(SEQ_LEN))
    frame.write_parquet(params["valid_data"])
    assert "null" in rejected(params, "valid_data", column="item_seq", row=42)


# --- item_info layout ----------------------------------------------------------------------------
def test_item_info_row0_not_padding(any_layout):
    message = rejected(any_layout, "item_info", set_element("item_emb_d128", 0, 5, 0.25),
                       "item_emb_d128", 0)
    assert "padding" in message


def test_item_info_without_padding_row(params):
    def drop_row0(columns):
        for name in columns:
            columns[name] = columns[name][1:]
        columns["item_id"] = list(range(N_ITEMS - 1))  # renumbered, so row 0 is a real item
    message = rejected(params, "item_info", drop_row0, row=0)
    assert "padding" in message


def test_item_id_not_row_number(params):
    def swap(columns):
        ids = columns["item_id"]
        ids[10], ids[11] = ids[11], ids[10]
    message = rejected(params, "item_info", swap, "item_id", 10)
    assert "expected the row number 10" in message


# --- NaN, inf, labels --------------------------------------------------------------------------
def test_nan_in_embedding(any_layout):
    message = rejected(any_layout, "item_info", set_element("item_emb_d128", 7, 100, float("nan")),
                       "item_emb_d128", 7)
    assert "NaN" in message


def test_inf_in_embedding(any_layout):
    message = rejected(any_layout, "item_info", set_element("item_emb_d128", 3, 0, float("-inf")),
                       "item_emb_d128", 3)
    assert "inf" in message


def test_nan_in_numeric_feature(params):
    params["feature_cols"].append({"name": "watch_time", "active": True, "type": "numeric"})
    rejected(params, "train_data",
             lambda c: c.update(watch_time=[1.5] * 150 + [float("nan")] + [2.0] * 149),
             "watch_time", 150, splits=("train",))


def test_label_two(params):
    message = rejected(params, "train_data", set_cell("label", 30, 2), "label", 30)
    assert "label is 2" in message


def test_float_label_half(params):
    def to_float(columns):
        columns["label"] = [float(v) for v in columns["label"]]
        columns["label"][12] = 0.5
    rejected(params, "valid_data", to_float, "label", 12, types={"label": pa.float64()})


# --- test IDs ----------------------------------------------------------------------------
def test_test_without_id(params):
    message = rejected(params, "test_data", lambda c: c.pop("ID"), "ID")
    assert "missing column" in message


def test_duplicate_test_id(params):
    message = rejected(params, "test_data", set_cell("ID", 50, 10), "ID", 50)
    assert "ID 10 appears more than once" in message


# --- rows across read batches --------------------------------------------------------------
def test_row_numbers_count_across_batches(any_layout, monkeypatch):
    monkeypatch.setattr(scan, "BATCH_ROWS", 64)
    rejected(any_layout, "train_data", set_element("item_seq", 150, 63, 99), "item_seq", 150)


def test_duplicate_id_across_batches(params, monkeypatch):
    monkeypatch.setattr(scan, "BATCH_ROWS", 32)
    rejected(params, "test_data", set_cell("ID", 100, 3), "ID", 100)
