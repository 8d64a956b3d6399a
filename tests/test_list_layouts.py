"""Every reader accepts fixed-size list columns (what polars' Array type writes) exactly as it
accepts list columns: the same data written in both layouts reads to identical arrays."""
import shutil

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from src.data.checks import validate_dataset
from src.data.features import build_feature_map
from src.data.files import list_column_to_2d, read_columns
from src.data.item_table import ItemTable
from src.data.loader import MMCTRDataLoader
from src.data.vocab import resolve_vocab_sizes
from src.errors import DataError
from src.item_embedding import inputs, output, titles
from .parquet_layouts import to_fixed_size

SPLIT = "MicroLens_1M_x1"
FILES = [f"{SPLIT}/{name}.parquet" for name in ("train", "valid", "test", "item_info")] + [
    "item_feature.parquet", "item_emb.parquet"]


@pytest.fixture(scope="module")
def layouts(tiny_data, tmp_path_factory):
    """(list-layout folder, fixed-size-layout folder) holding the same tiny data."""
    source, _ = tiny_data
    fixed = tmp_path_factory.mktemp("fixed_size")
    changed = {}
    for rel in FILES:
        (fixed / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / rel, fixed / rel)
        changed[rel] = to_fixed_size(fixed / rel)
    # the rewrite did happen, on every list column the release stores with one length
    assert changed[f"{SPLIT}/train.parquet"] == ["item_seq"]
    assert changed[f"{SPLIT}/item_info.parquet"] == ["item_tags", "item_emb_d128"]
    assert changed["item_feature.parquet"] == ["txt_emb_BERT", "img_emb_CLIPRN50"]
    assert len(changed["item_emb.parquet"]) == 4
    assert pa.types.is_fixed_size_list(pq.read_schema(fixed / f"{SPLIT}/train.parquet")
                                       .field("item_seq").type)
    return source, fixed


def dataset_params(root, extra_features=()):
    split = root / SPLIT
    return {
        "dataset_id": "layouts", "data_root": str(root), "max_len": 64, "embedding_dim": 8,
        "item_info": str(split / "item_info.parquet"),
        **{f"{s}_data": str(split / f"{s}.parquet") for s in ("train", "valid", "test")},
        "feature_cols": [
            {"name": "user_id", "type": "categorical", "vocab_size": "auto", "oov": True},
            {"name": "item_seq", "type": "meta"},
            {"name": ["likes_level", "views_level"], "type": "categorical", "vocab_size": 11},
            {"name": "item_id", "type": "categorical", "source": "item", "vocab_size": "auto"},
            {"name": "item_tags", "type": "sequence", "source": "item", "max_len": 5,
             "vocab_size": "auto"},
            {"name": "item_emb_d128", "type": "embedding", "source": "item", "embedding_dim": 128},
            {"name": "item_emb_d128_v2", "type": "embedding", "source": "item",
             "embedding_dim": 128, "item_file": str(root / "item_emb.parquet")},
            *extra_features],
        "label_col": {"name": "label", "dtype": "float"},
    }


def test_validation_and_vocab_sizes_agree(layouts):
    plain, fixed = (dataset_params(root) for root in layouts)
    sizes = [{str(c["name"]): c.get("vocab_size") for c in resolve_vocab_sizes(p)["feature_cols"]}
             for p in (plain, fixed)]
    assert sizes[0] == sizes[1]
    tags = pq.read_table(plain["item_info"]).column("item_tags").combine_chunks()
    assert sizes[1]["item_tags"] == max(tags.flatten().to_numpy()) + 1
    assert sizes[1]["item_id"] == 2001
    counts = [validate_dataset(p) for p in (plain, fixed)]
    assert list(counts[0].values()) == list(counts[1].values())


def test_loader_and_item_table_read_identical_arrays(layouts):
    outputs = []
    for root in layouts:
        params = resolve_vocab_sizes(dataset_params(root))
        feature_map = build_feature_map(params)
        loader = MMCTRDataLoader(feature_map, params["train_data"], split="train", max_len=32)
        table = ItemTable.from_parquet(params["item_info"], feature_map)
        outputs.append(({k: v.clone() for k, v in loader.tensors.items()},
                        {n: getattr(table, n).clone() for n in table.names}))
    (split_a, items_a), (split_b, items_b) = outputs
    assert split_a.keys() == split_b.keys() and split_a["item_seq"].shape[1] == 32
    for name in split_a:
        assert torch.equal(split_a[name], split_b[name]), name
    assert items_a.keys() == items_b.keys()
    for name in items_a:
        assert torch.equal(items_a[name], items_b[name]), name
    assert items_a["item_emb_d128_v2"].abs().sum() > 0  # the item_file column was read


def test_task1_readers_read_identical_arrays(layouts):
    results = []
    for root in layouts:
        n = inputs.num_items(root)
        text, image = inputs.load_modalities(root, n)
        results.append({
            "text": text, "image": image,
            "v1": inputs.load_item_emb(root, "item_emb_d128_v1", n),
            "tags": np.array(inputs.load_item_tags(root).to_pylist()),
            "item_info_emb": output.read_embedding(root / SPLIT / "item_info.parquet"),
        })
    for name in results[0]:
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)
    assert results[0]["text"].shape == (2001, 768)


def test_title_embeddings_in_both_layouts(tmp_path):
    emb = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    path = titles.write_title_emb(tmp_path / "titles.parquet", emb, {})
    plain = titles.load_title_emb(path, 6)
    assert to_fixed_size(path) == ["title_emb"]
    np.testing.assert_array_equal(titles.load_title_emb(path, 6), plain)
    np.testing.assert_array_equal(plain[1:], emb)


def test_full_histories_in_both_layouts(tmp_path):
    """item_seq.parquet written by polars with its Array type (every history 3 items long)."""
    (tmp_path / SPLIT).mkdir()
    pq.write_table(pa.table({"item_id": np.arange(6)}), tmp_path / SPLIT / "item_info.parquet")
    histories = [[1, 2, 3], [5, 4, 3], [2, 2, 1]]
    frame = pl.DataFrame({"user_id": [1, 2, 3], "item_seq": histories})
    frame.write_parquet(tmp_path / "item_seq.parquet")
    plain = inputs.load_histories(tmp_path, 5)
    frame.with_columns(pl.col("item_seq").list.to_array(3)).write_parquet(
        tmp_path / "item_seq.parquet")
    assert pa.types.is_fixed_size_list(pq.read_schema(tmp_path / "item_seq.parquet")
                                       .field("item_seq").type)
    fixed = inputs.load_histories(tmp_path, 5)
    for a, b in zip(plain, fixed):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fixed[2], np.ravel(histories))
    np.testing.assert_array_equal(fixed[1], [0, 3, 6, 9])


# --- nulls keep their rows in the fixed-size layout ------------------------------------------
@pytest.mark.parametrize("fixed", [False, True])
def test_null_list_and_null_element_name_their_rows(tmp_path, fixed):
    typ = pa.list_(pa.int64(), 3) if fixed else pa.list_(pa.int64())
    null_row = pa.array([[1, 2, 3], [4, 5, 6], None, [7, 8, 9]], typ)
    with pytest.raises(DataError, match=r"row 2: null \(missing\) list"):
        list_column_to_2d(null_row, "f.parquet", "item_seq", np.int64)
    null_inside = pa.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, None, 3]], typ)
    with pytest.raises(DataError, match=r"row 3: null \(missing\) element"):
        list_column_to_2d(null_inside, "f.parquet", "item_seq", np.int64)
    good = pa.array([[1, 2, 3], [4, 5, 6]], typ)
    np.testing.assert_array_equal(list_column_to_2d(good, "f", "c", np.int64, keep_last=2),
                                  [[2, 3], [5, 6]])


@pytest.mark.parametrize("fixed", [False, True])
def test_null_rows_across_read_batches(tmp_path, fixed):
    """A null list in a later batch is reported with its file row, in both layouts. pyarrow
    cannot write a null row of a fixed-size list, and cannot read the file polars writes for
    one: that file still gets one DataError naming column and row."""
    rows = [[i, i + 1] for i in range(100)]
    rows[70] = None
    path = tmp_path / "split.parquet"
    frame = pl.DataFrame({"item_seq": rows, "item_id": list(range(100))})
    if fixed:
        frame = frame.with_columns(pl.col("item_seq").list.to_array(2))
    frame.write_parquet(path)
    assert pa.types.is_fixed_size_list(pq.read_schema(path).field("item_seq").type) == fixed
    with pytest.raises(DataError) as err:
        read_columns(path, ["item_id", "item_seq"], {"item_seq": np.int32}, batch_rows=32)
    assert err.value.row == 70 and err.value.column == "item_seq"
    assert "Fix:" in str(err.value)
