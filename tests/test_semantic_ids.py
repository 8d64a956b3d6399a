"""Semantic ids (src/item_embedding/semantic_ids.py): residual k-means codes of an item
embedding, written as a parquet that task-2 models read as categorical item-side features."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from src.data.checks import validate_dataset
from src.data.files import list_column_to_2d
from src.data.vocab import resolve_vocab_sizes
from src.item_embedding.semantic_ids import (read_vectors, reconstruct, residual_kmeans,
                                             semantic_ids)

from .conftest import REPO

LEVELS, CODES = 3, 16


@pytest.fixture(scope="module")
def item_info(tiny_data):
    return tiny_data[0] / "MicroLens_1M_x1" / "item_info.parquet"


@pytest.fixture(scope="module")
def vectors(item_info):
    table = pq.read_table(item_info, columns=["item_emb_d128"])
    return list_column_to_2d(table.column(0), item_info, "item_emb_d128", np.float32)


def test_reconstruction_error_falls_with_each_level(item_info, vectors):
    ids, x = read_vectors(item_info, "item_emb_d128")
    np.testing.assert_array_equal(ids, np.arange(1, len(vectors)))  # padding row 0 skipped
    np.testing.assert_array_equal(x, vectors[1:])
    codes, centroids, errors = residual_kmeans(x, LEVELS, CODES, seed=0)
    assert codes.dtype == np.int64 and codes.min() == 1 and codes.max() == CODES
    total = np.square(x.astype(np.float64)).sum()
    measured = [np.square(x - reconstruct(codes[:, :level + 1], centroids[:level + 1]))
                .sum() / total for level in range(LEVELS)]
    np.testing.assert_allclose(measured, errors, rtol=1e-4)
    assert 1 > measured[0] > measured[1] > measured[2]
    # the codes matter: shuffling level 1's codes among items makes the sums worse
    shuffled = codes.copy()
    shuffled[:, 0] = np.random.default_rng(0).permutation(shuffled[:, 0])
    assert np.square(x - reconstruct(shuffled, centroids)).sum() / total > measured[-1] + 0.05


def test_same_seed_same_codes_whatever_the_file_layout(item_info, vectors, tmp_path):
    """item_info's layout (row = item id, padding row) and item_emb's (item_id column, rows
    shuffled, no padding) give the same codes for the same vectors and seed."""
    first, meta = semantic_ids(item_info, "item_emb_d128", tmp_path / "a.parquet", LEVELS, CODES)
    again, _ = semantic_ids(item_info, "item_emb_d128", tmp_path / "b.parquet", LEVELS, CODES)
    order = np.random.default_rng(1).permutation(np.arange(1, len(vectors)))
    offsets = pa.array(np.arange(0, len(order) * 128 + 1, 128, dtype=np.int32))
    pq.write_table(pa.table({"item_id": pa.array(order, pa.int64()),
                             "item_emb_d128_v1": pa.ListArray.from_arrays(
                                 offsets, pa.array(vectors[order].reshape(-1)))}),
                   tmp_path / "item_emb.parquet")
    other, _ = semantic_ids(tmp_path / "item_emb.parquet", "item_emb_d128_v1",
                            tmp_path / "c.parquet", LEVELS, CODES)
    seeded, _ = semantic_ids(item_info, "item_emb_d128", tmp_path / "d.parquet", LEVELS, CODES,
                             seed=1)
    a, b, c, d = (pd.read_parquet(p) for p in (first, again, other, seeded))
    assert list(a.columns) == ["item_id", "sid_1", "sid_2", "sid_3"]
    assert (a.dtypes == np.int64).all()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert (a.sid_1 != d.sid_1).any()  # another seed, other codes
    assert meta["relative_residual"] == sorted(meta["relative_residual"], reverse=True)
    assert not list(tmp_path.glob("*.tmp"))


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "src.item_embedding", "semantic-ids", *map(
        str, args)], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def write_emb(path, rows, emb_type=pa.list_(pa.float32())):
    pq.write_table(pa.table({"item_id": pa.array([i for i, _ in rows], pa.int64()),
                             "emb": pa.array([v for _, v in rows], emb_type)}), path)
    return path


def good_rows(n=40, dim=4):
    rng = np.random.default_rng(0)
    return [(i, rng.normal(size=dim).tolist()) for i in range(1, n + 1)]


def _nan(rows):
    rows[6][1][2] = float("nan")
    return 6, "emb", "NaN"


def _null(rows):
    rows[3] = (rows[3][0], None)
    return 3, "emb", "null"


def _ragged(rows):
    rows[9] = (rows[9][0], rows[9][1][:3])
    return 9, "emb", "list length 3 differs"


def _repeat(rows):
    rows[12] = (rows[2][0], rows[12][1])
    return 12, "item_id", "appears more than once"


def _shifted(rows):
    rows[:] = [(i - 1, v) for i, v in rows]  # ids from 0: item 0 has a vector
    return 0, "emb", "item_id 0 (padding) is not all zeros"


@pytest.mark.parametrize("break_rows", [_nan, _null, _ragged, _repeat, _shifted])
def test_bad_rows_exit_2_naming_file_column_and_row(tmp_path, break_rows):
    rows = good_rows()
    row, column, text = break_rows(rows)
    path = write_emb(tmp_path / "emb.parquet", rows)
    out = tmp_path / "sid.parquet"
    done = cli("--item-file", path, "--column", "emb", "--codes", 4, "--out", out, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: file {path}, column '{column}', row {row}: ")
    assert text in message and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("setup, args, text", [
    (None, ("--column", "emb"), "absent.parquet: file not found"),
    ("good", ("--column", "embedding"), "column 'embedding': missing column"),
    ("ints", ("--column", "emb"), "column 'emb': has type list<element: int64>, expected a list "
                                  "of floats"),
    ("strings", ("--column", "emb"), "column 'emb': has type string, expected a list of floats"),
    ("good", ("--column", "emb", "--codes", 41), "--codes 41: "),
    ("good", ("--column", "emb", "--levels", 0), "--levels 0: must be >= 1"),
])
def test_bad_input_exit_2_and_no_output(tmp_path, setup, args, text):
    path = tmp_path / "absent.parquet"
    if setup == "good":
        write_emb(path := tmp_path / "emb.parquet", good_rows())
    elif setup == "ints":
        write_emb(path := tmp_path / "emb.parquet", [(i, [1, 2]) for i in range(1, 9)],
                  pa.list_(pa.int64()))
    elif setup == "strings":
        pq.write_table(pa.table({"item_id": [1, 2], "emb": ["a", "b"]}),
                       path := tmp_path / "emb.parquet")
    out = tmp_path / "sid.parquet"
    done = cli("--item-file", path, *args, "--out", out, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert text in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_cli_writes_codes_and_prints_the_feature_entries(tmp_path):
    path = write_emb(tmp_path / "emb.parquet", good_rows())
    out = tmp_path / "sid.parquet"
    done = cli("--item-file", path, "--column", "emb", "--levels", 2, "--codes", 4, "--out", out,
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "level 2/2: 4 codes" in done.stderr  # progress lines
    table = pd.read_parquet(out)
    assert table.item_id.tolist() == list(range(1, 41))
    assert set(table.sid_1) == set(table.sid_2) == {1, 2, 3, 4}
    assert f"item_file: {out}, column: sid_2}}" in done.stdout


@pytest.mark.slow
def test_a_model_trains_with_semantic_id_features(small_data, tiny_data, tmp_path):
    """DIN_default_cpu with three semantic-id features (and the item_feature levels, and a
    user_id with its own regulariser): vocab auto, validation and one short training run;
    the model's item table holds the file's codes."""
    from src.experiment import build_model, train
    split_dir = small_data / "MicroLens_1M_x1"
    sid_path, _ = semantic_ids(split_dir / "item_info.parquet", "item_emb_d128",
                               tmp_path / "item_sid.parquet", LEVELS, CODES)
    blocks = yaml.safe_load((REPO / "config/task2_config/model_config.yaml").read_text())
    dataset = yaml.safe_load((REPO / "config/Task2_tuner_config.yaml").read_text())[
        "dataset_config"]["MicroLens_1M_x1_task2"]
    # the shipped alternative embedding's path is the release's; the levels' file is set below
    cols = [c for c in dataset["feature_cols"] if "item_file" not in c or c.get("from_splits")]
    for col in cols:
        if col["name"] == "user_id":
            col.update(active=True, embedding_regularizer=1.e-3)
        if col.get("from_splits"):
            col["item_file"] = str(tiny_data[0] / "item_feature.parquet")
    cols += [{"name": f"item_sid_{level}", "active": True, "dtype": "int",
              "type": "categorical", "vocab_size": "auto", "source": "item",
              "item_file": str(sid_path), "column": f"sid_{level}"}
             for level in range(1, LEVELS + 1)]
    params = {**blocks["Base"], **blocks["DIN_default_cpu"], **dataset, "feature_cols": cols,
              "dataset_id": "sid_tiny", "model_id": "DIN_sid", "gpu": -1, "epochs": 1,
              "model_root": str(tmp_path / "ckpt"), "num_workers": 0, "verbose": 0,
              "item_info": str(split_dir / "item_info.parquet"),
              **{f"{s}_data": str(split_dir / f"{s}.parquet") for s in ("train", "valid", "test")}}
    resolved = resolve_vocab_sizes(params)
    sizes = {c["name"]: c["vocab_size"] for c in resolved["feature_cols"]
             if c["name"].startswith("item_sid_")}
    assert sizes == {f"item_sid_{level}": CODES + 1 for level in range(1, LEVELS + 1)}
    validate_dataset(resolved)

    result = train(params, None, caller_writes_result=True)  # params alone: no config folder
    assert 0 < result["val"]["AUC"] < 1

    model = build_model(resolved)
    codes = pd.read_parquet(sid_path)
    for level in range(1, LEVELS + 1):
        table = getattr(model.item_table, f"item_sid_{level}").numpy()
        assert table[0] == 0
        np.testing.assert_array_equal(table[codes.item_id], codes[f"sid_{level}"])
    levels = pd.read_parquet(tiny_data[0] / "item_feature.parquet")
    np.testing.assert_array_equal(model.item_table.item_likes_level.numpy()[levels.item_id],
                                  levels.likes_level)
