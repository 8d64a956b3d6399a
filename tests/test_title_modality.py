"""Titles as a third modality: the title-embedding file format and its use by `build`
(always tested, with vectors made here), and the packaged sentence encoder (tested only
where the optional package is installed)."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.errors import ConfigError, DataError, UserError
from src.item_embedding import inputs, titles
from src.item_embedding.build import build
from src.item_embedding.evaluate import proxy_rows
from src.item_embedding.linear import pca_concat
from src.item_embedding.output import read_embedding, read_metadata

from .test_item_embedding import cli, copy_data, rewrite_item_feature

TITLE_DIM = 16


@pytest.fixture(scope="module")
def title_vectors(tiny_data):
    """Made-up title vectors, (N + 1, 16) with row 0 zeros, and a file holding them with its
    rows in shuffled order (files are joined on item_id, never by position)."""
    data_dir, summary = tiny_data
    n = summary["n_items"]
    vectors = np.zeros((n + 1, TITLE_DIM), np.float32)
    vectors[1:] = np.random.default_rng(5).standard_normal((n, TITLE_DIM))
    return vectors


def write_titles(path, vectors, order=None):
    titles.write_title_emb(path, vectors[1:], {"model": "test"})
    if order is not None:
        pq.write_table(pq.read_table(path).take(order), path)
    return path


def test_pca_concat_with_titles_uses_them_aligned_by_item_id(tiny_data, title_vectors,
                                                             tmp_path):
    data_dir, summary = tiny_data
    order = np.random.default_rng(1).permutation(summary["n_items"])
    path = write_titles(tmp_path / "titles.parquet", title_vectors, order)
    out, meta = build("pca_concat", data_dir, tmp_path / "x.parquet", title_emb=path,
                      scale="none", progress=False)
    text, image = inputs.load_modalities(data_dir, summary["n_items"])
    expected = pca_concat([text, image, title_vectors])
    np.testing.assert_allclose(read_embedding(out), expected, rtol=1e-4, atol=1e-3)
    without = pca_concat([text, image])
    assert not np.allclose(read_embedding(out), without, atol=1e-2)
    assert meta["modalities"] == ["text", "image", "titles"]
    assert read_metadata(out)["title_emb"] == str(path.resolve())
    rows = proxy_rows([out], data_dir, max_queries=200)
    assert rows[0]["method"] == "pca_concat+titles"


def test_per_modality_with_titles(tiny_data, title_vectors, tmp_path):
    data_dir, _ = tiny_data
    path = write_titles(tmp_path / "titles.parquet", title_vectors)
    # the default split is 43 + 43 + 42: more than the made-up 16-d titles hold
    with pytest.raises(ConfigError, match="the titles vectors have 16 dims, fewer than the 42"):
        build("pca_per_modality", data_dir, tmp_path / "x.parquet", title_emb=path,
              progress=False)
    with pytest.raises(ConfigError, match="expected 3 positive sizes"):
        build("pca_per_modality", data_dir, tmp_path / "x.parquet", title_emb=path,
              options={"modality_dims": (64, 64)}, progress=False)
    out, meta = build("pca_per_modality", data_dir, tmp_path / "x.parquet", title_emb=path,
                      options={"modality_dims": (56, 56, 16)}, progress=False)
    assert meta["modality_dims"] == [56, 56, 16] and meta["modality_weights"] == [1.0] * 3
    emb = read_embedding(out)
    # the last 16 columns are the whitened titles: all 16 principal axes of the made-up
    # vectors, so they span the same space as the centred vectors
    centred = title_vectors[1:] - title_vectors[1:].mean(axis=0)
    rank = np.linalg.matrix_rank(np.hstack([emb[1:, -16:], centred]), tol=1e-2)
    assert rank == TITLE_DIM


@pytest.mark.slow
def test_contrastive_trains_on_three_modalities(tiny_data, title_vectors, tmp_path):
    data_dir, _ = tiny_data
    path = write_titles(tmp_path / "titles.parquet", title_vectors)
    fast = {"epochs": 1, "batch_size": 512, "input_dims": 64}
    a = build("contrastive", data_dir, tmp_path / "a.parquet", title_emb=path, options=fast,
              progress=False)[0]
    b = build("contrastive", data_dir, tmp_path / "b.parquet", options=fast, progress=False)[0]
    assert read_embedding(a).shape == read_embedding(b).shape
    assert not np.allclose(read_embedding(a), read_embedding(b), atol=1e-3)


def test_passthrough_refuses_titles(tiny_data, title_vectors, tmp_path):
    path = write_titles(tmp_path / "titles.parquet", title_vectors)
    with pytest.raises(ConfigError, match="--title-emb applies to"):
        build("item_emb_v1", tiny_data[0], tmp_path / "x.parquet", title_emb=path)


def test_bad_title_file_names_file_column_and_row(tiny_data, title_vectors, tmp_path):
    data_dir, _ = tiny_data
    poisoned = title_vectors.copy()
    poisoned[31, 3] = np.nan  # item 31 sits on file row 30
    path = write_titles(tmp_path / "titles.parquet", poisoned)
    with pytest.raises(DataError, match="NaN") as err:
        build("pca_concat", data_dir, tmp_path / "x.parquet", title_emb=path, progress=False)
    assert (err.value.path, err.value.column, err.value.row) == (str(path), "title_emb", 30)
    assert not (tmp_path / "x.parquet").exists()
    short = pq.read_table(write_titles(tmp_path / "short.parquet", title_vectors)).slice(0, 100)
    pq.write_table(short, tmp_path / "short.parquet")
    with pytest.raises(DataError, match="item_id 101 is missing"):
        build("pca_concat", data_dir, tmp_path / "x.parquet", title_emb=tmp_path / "short.parquet",
              progress=False)
    with pytest.raises(DataError, match="file not found"):
        build("pca_concat", data_dir, tmp_path / "x.parquet", title_emb=tmp_path / "none.parquet",
              progress=False)


def test_titles_are_read_aligned_by_item_id(tiny_data, tmp_path):
    folder = copy_data(tiny_data[0], tmp_path / "data")
    n = tiny_data[1]["n_items"]
    original = titles.load_titles(folder, n)
    order = np.random.default_rng(2).permutation(n)

    def shuffle_and_blank(table):
        table = table.take(order)
        column = table["item_title"].to_pylist()
        column[0] = None  # file row 0 is item order[0] + 1 now
        index = table.schema.get_field_index("item_title")
        return table.set_column(index, "item_title", pa.array(column, pa.string()))

    rewrite_item_feature(folder, shuffle_and_blank)
    shuffled = titles.load_titles(folder, n)
    blank = order[0] + 1
    assert shuffled[0] == "" and shuffled[blank] == ""
    assert shuffled[:blank] == original[:blank] and shuffled[blank + 1:] == original[blank + 1:]


def test_missing_encoder_is_one_clear_error(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(titles, "encoder_installed", lambda: False)
    with pytest.raises(UserError, match="pip install -r requirements-text.txt"):
        titles.encode_titles(tiny_data[0], tmp_path / "titles.parquet", progress=False)
    assert not (tmp_path / "titles.parquet").exists()


@pytest.mark.skipif(not titles.encoder_installed(),
                    reason="optional text encoder not installed (requirements-text.txt)")
def test_encode_titles_cli_embeds_each_items_title(tiny_data, tmp_path):
    data_dir, summary = tiny_data
    out = tmp_path / "titles.parquet"
    done = cli("encode-titles", "--data-dir", data_dir, "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    n = summary["n_items"]
    emb = titles.load_title_emb(out, n)
    assert emb.shape == (n + 1, 384) and not emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, atol=1e-4)
    words = titles.load_titles(data_dir, n)
    model = titles.load_encoder("cpu")
    for item in (1, 777, n):
        np.testing.assert_allclose(emb[item], model.encode(words[item], normalize_embeddings=True),
                                   atol=1e-4)
