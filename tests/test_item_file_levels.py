"""Item-side levels read from an item file (docs/task2_features.md): the file's value where it
has the item, the splits' mode where it does not; bad level columns named by file, column, row."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.data.checks import validate_dataset
from src.data.features import build_feature_map
from src.data.item_table import ItemTable
from src.data.vocab import resolve_vocab_sizes
from src.errors import DataError

from .validation_data import N_ITEMS, edit, expected_modes, feature


# --- item-side levels from item_feature.parquet, the splits as the fallback ---------------------
def write_levels_file(path, values, ids):
    """An item_feature-like file: item_id and likes_level (int64) of the given items, rows in
    reverse order, plus a column nobody reads (as the release's title)."""
    ids = np.asarray(ids)[::-1]
    pq.write_table(pa.table({"item_id": pa.array(ids, pa.int64()),
                             "item_title": pa.array([f"t{i}" for i in ids]),
                             "likes_level": pa.array(np.asarray(values)[ids], pa.int64())}),
                   path)
    return path


def add_file_levels(params, path, vocab_size=11, **extra):
    params["feature_cols"].append({"name": "item_likes_level", "type": "categorical",
                                   "source": "item", "vocab_size": vocab_size,
                                   "from_splits": "likes_level", "item_file": str(path), **extra})


def file_levels(params, tmp_path):
    """(path, file values per item, covered items): items 40..49 and 7 have no row; every
    covered value differs from the splits' mode, so the test tells the sources apart."""
    modes, _ = expected_modes(params, "likes_level")
    values = (modes + 3) % 10 + 1  # in 1..10, never the mode
    covered = np.array([i for i in range(1, 40) if i != 7])
    return write_levels_file(tmp_path / "item_feature.parquet", values, covered), values, covered


def test_levels_from_the_item_file_where_it_has_the_item_else_from_the_splits(
        params, tmp_path, caplog):
    caplog.set_level("INFO")
    path, values, covered = file_levels(params, tmp_path)
    add_file_levels(params, path)  # column defaults to the from_splits column, likes_level
    validate_dataset(params)
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    modes, _ = expected_modes(params, "likes_level")
    expected = modes.copy()
    expected[covered] = values[covered]
    got = table.item_likes_level.numpy()
    np.testing.assert_array_equal(got, expected)
    assert (got[covered] != modes[covered]).all() and (got[40:] == modes[40:]).all()
    assert (modes[[7, *range(40, N_ITEMS)]] > 0).any()  # the fallback is not just zeros
    assert "item_likes_level: 38 items from" in caplog.text
    assert "11 from the splits (likes_level)" in caplog.text

    # the comparison sees a change on either side: one file value, one split row
    write_levels_file(path, np.where(np.arange(N_ITEMS) == 5, values % 10 + 1, values), covered)
    changed = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    assert np.flatnonzero(changed.item_likes_level.numpy() != got).tolist() == [5]
    write_levels_file(path, values, covered)
    for key in ("train_data", "valid_data", "test_data"):  # the levels of uncovered targets
        edit(params[key], lambda c: c.update(likes_level=[
            9 if i in (7, *range(40, N_ITEMS)) else v
            for i, v in zip(c["item_id"], c["likes_level"])]))
    changed = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    diff = changed.item_likes_level.numpy() != got
    assert diff.any() and not diff[covered].any()


def test_item_file_covering_every_item_needs_no_split_pass(params, tmp_path, caplog):
    caplog.set_level("INFO")
    values = np.arange(N_ITEMS) % 10
    path = write_levels_file(tmp_path / "item_feature.parquet", values, range(1, N_ITEMS))
    add_file_levels(params, path)
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    np.testing.assert_array_equal(table.item_likes_level.numpy(), np.r_[0, values[1:]])
    assert "49 items from" in caplog.text and "0 from the splits" in caplog.text
    assert "from_splits likes_level: levels of" not in caplog.text  # the splits were not read


def test_auto_vocab_covers_the_item_files_levels(params, tmp_path):
    values = np.arange(N_ITEMS) % 10
    values[3] = 23  # beyond every split value
    path = write_levels_file(tmp_path / "item_feature.parquet", values, range(1, 30))
    add_file_levels(params, path, vocab_size="auto")
    resolved = resolve_vocab_sizes(params)
    assert feature(resolved, "item_likes_level")["vocab_size"] == 24
    validate_dataset(resolved)
    table = ItemTable.from_parquet(params["item_info"], build_feature_map(resolved))
    assert table.item_likes_level[3] == 23


def _beyond_vocab(t):
    t["likes_level"][4] = 11
    return 4, "value 11 is outside [0, 10]", None


def _negative(t):
    t["likes_level"][8] = -1
    return 8, "value -1 is outside [0, 10]", None


def _null(t):
    t["likes_level"][2] = None
    return 2, "null", None


def _float(t):
    t["likes_level"] = [float(v) for v in t["likes_level"]]
    return None, "has type double, expected int64", pa.float64()


@pytest.mark.parametrize("break_file", [_beyond_vocab, _negative, _null, _float])
def test_bad_level_column_of_the_item_file(params, tmp_path, break_file):
    path, _, _ = file_levels(params, tmp_path)
    table = pq.read_table(path).to_pydict()
    row, text, typ = break_file(table)
    pq.write_table(pa.table({"item_id": pa.array(table["item_id"], pa.int64()),
                             "likes_level": pa.array(table["likes_level"],
                                                     typ or pa.int64())}), path)
    add_file_levels(params, path)
    with pytest.raises(DataError) as err:
        validate_dataset(params)
    assert err.value.path == str(path) and err.value.column == "likes_level"
    assert err.value.row == row and text in str(err.value) and "Fix:" in str(err.value)
    with pytest.raises(DataError) as err:  # the item table refuses it without validation too
        ItemTable.from_parquet(params["item_info"], build_feature_map(params))
    assert err.value.path == str(path) and err.value.column == "likes_level"


def test_item_file_without_the_level_column(params, tmp_path):
    path, _, _ = file_levels(params, tmp_path)
    add_file_levels(params, path, column="likes")
    with pytest.raises(DataError, match=r"item_feature\.parquet, column 'likes': missing column"):
        validate_dataset(params)
