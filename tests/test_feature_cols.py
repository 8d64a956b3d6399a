"""feature_cols is parsed once (src/data/feature_cols.py): the feature map and the data checks
accept and refuse the same entries, with the same message naming file, key and entry.

Before the parser, each reader had its own checks: the map built a feature with vocab_size 0,
an embedding without a dimension or an inactive entry of an unknown type, and crashed with a
KeyError on an entry without a name; the data checks passed a sequence feature without
max_len, which the map refused."""
import pytest

from src.data.checks import validate_dataset
from src.data.feature_cols import parse_feature_cols
from src.data.features import build_feature_map
from src.errors import ConfigError

from .validation_data import make_dataset

# feature_cols of make_dataset: 0 user_id (meta), 1 item_seq (meta), 2 likes_level,
# 3 views_level (categorical), 4 item_id (categorical, item), 5 item_tags (sequence, item),
# 6 item_emb_d128 (embedding, item)
WHERE = "dataset_config.yaml, tiny.feature_cols"


@pytest.fixture
def params(tmp_path):
    return make_dataset(tmp_path / "data")


def _update(index, **keys):
    def change(cols):
        cols[index].update(keys)
    return change


def _delete(index, key):
    def change(cols):
        del cols[index][key]
    return change


def _replace(index, entry):
    def change(cols):
        cols[index] = entry
    return change


def _append(entry):
    def change(cols):
        cols.append(entry)
    return change


def _empty(cols):
    cols.clear()


@pytest.mark.parametrize("change, message", [
    # checked by the data checks only, before
    (_empty, rf"{WHERE}=\[\] is not a non-empty list"),
    (_replace(3, {"type": "categorical", "vocab_size": 11}), rf"{WHERE}\[3\]=.* has no name"),
    (_append({"name": "clicks", "type": "bucket", "active": False}),
     rf"{WHERE}\[7\] \(name='clicks'\): type='bucket' is not one of meta, categorical"),
    (_update(2, vocab_size=0), rf"{WHERE}\[2\] \(name='likes_level'\): vocab_size=0 is not a "
                               "positive integer"),
    (_update(5, max_len=0), rf"{WHERE}\[5\] \(name='item_tags'\): max_len=0 is not a positive"),
    (_delete(6, "embedding_dim"),
     rf"{WHERE}\[6\] \(name='item_emb_d128'\): embedding feature needs pretrain_dim or "
     "embedding_dim"),
    (_update(0, oov=True), rf"{WHERE}\[0\] \(name='user_id'\): oov: True applies to "
                           "categorical features of the split rows"),
    (_update(6, vocab_size="auto"), rf"{WHERE}\[6\] \(name='item_emb_d128'\): vocab_size: "
                                    "auto on type 'embedding'"),
    # checked by the feature map only, before
    (_delete(5, "max_len"), rf"{WHERE}\[5\] \(name='item_tags'\): sequence feature needs "
                            "max_len"),
    # checked by neither, before
    (_update(2, name=7), rf"{WHERE}\[2\]: name=7 is not a column name"),
    (_update(2, name=[]), rf"{WHERE}\[2\]: name=\[\] is not a column name"),
    (_update(2, dtype="integer"), rf"{WHERE}\[2\] \(name='likes_level'\): dtype='integer' is "
                                  "not one of int, float, str"),
    (_update(4, source=["item"]), rf"{WHERE}\[4\] \(name='item_id'\): source=\['item'\] is not "
                                  "a string"),
    (_update(3, active="no"), rf"{WHERE}\[3\] \(name='views_level'\): active='no' is not True "
                              "or False"),
])
def test_both_readers_refuse_an_entry_alike(params, change, message):
    change(params["feature_cols"])
    for read in (build_feature_map, validate_dataset):
        with pytest.raises(ConfigError, match=message) as err:
            read(params)
        assert "Fix:" in str(err.value)


def test_from_splits_without_split_files_is_refused_by_both(params):
    params["feature_cols"].append({"name": "item_likes_level", "type": "categorical",
                                   "source": "item", "vocab_size": 11,
                                   "from_splits": "likes_level"})
    for key in ("train_data", "valid_data", "test_data"):
        del params[key]
    message = (rf"{WHERE}\[7\] \(name='item_likes_level'\): from_splits reads the split files, "
               "but none of train_data, valid_data, test_data is set")
    with pytest.raises(ConfigError, match=message):
        build_feature_map(params)
    with pytest.raises(ConfigError, match=message):
        validate_dataset(params, splits=())


def test_specs_of_the_entries(params):
    cols = params["feature_cols"]
    cols[2:4] = [{"name": ["likes_level", "views_level"], "dtype": "int", "type": "categorical",
                  "vocab_size": 11, "embedding_dim": 4}]
    cols.append({"name": "item_likes_level", "type": "categorical", "source": "item",
                 "active": False, "from_splits": "likes_level"})
    cols.append({"name": "item_sid_1", "type": "categorical", "source": "item",
                 "vocab_size": 9, "item_file": "sid.parquet", "column": "sid_1",
                 "embedding_regularizer": 1.e-3})
    specs = {spec.name: spec for spec in parse_feature_cols(params)}

    likes, views = specs["likes_level"], specs["views_level"]
    assert (likes.index, views.index) == (2, 2)  # one entry, two features
    assert likes.key == "feature_cols[2]"
    assert likes.where == f"{WHERE}[2] (name='likes_level')"
    assert views.where == f"{WHERE}[2] (name='views_level')"
    assert (likes.type, likes.dtype, likes.vocab_size, likes.source) == ("categorical", "int",
                                                                         11, "")
    assert likes.options == {"embedding_dim": 4}  # the keys the parser does not interpret
    assert specs["item_tags"].max_len == 5 and specs["item_tags"].source == "item"
    assert specs["item_emb_d128"].dim == 128
    inactive = specs["item_likes_level"]  # no vocab_size needed; its split column stays known
    assert not inactive.active and inactive.vocab_size is None
    assert inactive.from_splits == "likes_level"
    sid = specs["item_sid_1"]
    assert (sid.item_file, sid.column, sid.regularizer) == ("sid.parquet", "sid_1", 1.e-3)
    assert [spec.index for spec in specs.values()] == [0, 1, 2, 2, 3, 4, 5, 6, 7]
