"""Tests of src/item_embedding on the tiny generated data: output schema of every method,
determinism, the proxy, input checks, the protocol configs and the command line."""
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from src.errors import ConfigError, DataError
from src.item_embedding import inputs, protocol
from src.item_embedding.build import METHODS, build
from src.item_embedding.evaluate import _retire_stale_results, evaluate, summarise_din
from src.item_embedding.holdout import heldout_mask, proxy_queries, training_pairs
from src.item_embedding.output import read_embedding, read_metadata
from src.item_embedding.proxy import proxy_metrics

from .conftest import REPO

# Small contrastive settings: the tests check behaviour, not the best embedding.
FAST = {"epochs": 2, "batch_size": 512, "input_dims": 64}


def options(method):
    return dict(FAST) if method == "contrastive" else {}


@pytest.fixture(scope="module")
def built(tiny_data, tmp_path_factory):
    """Every method built once on the tiny data: {method: path}."""
    data_dir, _ = tiny_data
    out = tmp_path_factory.mktemp("item_embedding")
    return {m: build(m, data_dir, out / f"{m}.parquet", seed=0, options=options(m),
                     progress=False)[0] for m in METHODS}


@pytest.fixture(scope="module")
def histories(tiny_data):
    data_dir, _ = tiny_data
    return inputs.load_histories(data_dir, inputs.num_items(data_dir))


def recall(path, histories):
    return proxy_metrics(read_embedding(path), histories)


# ---- output schema -----------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_output_is_a_complete_item_info(method, built, tiny_data):
    data_dir, summary = tiny_data
    table = pq.read_table(built[method])
    n = summary["n_items"] + 1
    assert table.schema.names == ["item_id", "item_tags", "item_emb_d128"]
    assert table.schema.field("item_id").type == pa.int64()
    assert table.schema.field("item_tags").type == pa.list_(pa.int64())
    assert table.schema.field("item_emb_d128").type == pa.list_(pa.float64())
    assert table.num_rows == n
    assert table.column("item_id").to_numpy().tolist() == list(range(n))
    assert set(pc.list_value_length(table.column("item_emb_d128")).to_numpy()) == {128}
    emb = np.stack(table.column("item_emb_d128").to_numpy(zero_copy_only=False))
    assert np.all(emb[0] == 0) and np.isfinite(emb).all()
    assert (np.abs(emb[1:]).sum(axis=1) > 0).all(), "a real item got the padding vector"
    # the default scaling: RMS coordinate 1 over real items, whatever the method
    assert np.sqrt(np.mean(emb[1:] ** 2)) == pytest.approx(1.0, rel=1e-6)
    original = pq.read_table(data_dir / "MicroLens_1M_x1" / "item_info.parquet")
    assert table.column("item_tags").equals(original.column("item_tags"))
    meta = read_metadata(built[method])
    assert meta["method"] == method and meta["seed"] == 0 and meta["scale"] == "rms"


def test_passthrough_equals_the_item_emb_column(built, tiny_data):
    data_dir, _ = tiny_data
    source = pq.read_table(data_dir / "item_emb.parquet")
    ids = source.column("item_id").to_numpy()
    raw = np.stack(source.column("item_emb_d128_v2").to_numpy(zero_copy_only=False))
    ours = read_embedding(built["item_emb_v2"]).astype(np.float64)
    factor = read_metadata(built["item_emb_v2"])["scale_factor"]
    np.testing.assert_allclose(ours[ids], raw.astype(np.float64) * factor, rtol=1e-6)


@pytest.mark.slow
def test_pca_concat_reproduces_the_organisers_item_info(tiny_data, tmp_path, histories):
    """Up to sign/rotation of near-equal axes: a linear map takes ours to theirs exactly,
    and the proxy sees the same embedding."""
    data_dir, _ = tiny_data
    ours_path, _ = build("pca_concat", data_dir, tmp_path / "raw.parquet", scale="none",
                         progress=False)
    ours = read_embedding(ours_path).astype(np.float64)[1:]
    theirs_path = data_dir / "MicroLens_1M_x1" / "item_info.parquet"
    theirs = read_embedding(theirs_path).astype(np.float64)[1:]
    coef = np.linalg.lstsq(ours, theirs, rcond=None)[0]
    r2 = 1 - ((ours @ coef - theirs) ** 2).sum() / ((theirs - theirs.mean(0)) ** 2).sum()
    assert r2 > 0.9999
    # the leading axes (well separated eigenvalues) match one to one, signs included
    np.testing.assert_allclose(ours[:, :10], theirs[:, :10], rtol=0, atol=1e-3 * theirs.std())
    assert recall(ours_path, histories) == recall(theirs_path, histories)


# ---- determinism and the proxy -------------------------------------------------------------

@pytest.mark.slow
def test_contrastive_is_deterministic_per_seed(built, tiny_data, tmp_path):
    data_dir, _ = tiny_data
    again, _ = build("contrastive", data_dir, tmp_path / "again.parquet", seed=0,
                     options=FAST, progress=False)
    other, _ = build("contrastive", data_dir, tmp_path / "other.parquet", seed=1,
                     options=FAST, progress=False)
    first = read_embedding(built["contrastive"])
    assert np.array_equal(first, read_embedding(again))
    assert not np.allclose(first, read_embedding(other), atol=1e-3)


def test_random_projection_depends_on_seed_only(built, tiny_data, tmp_path):
    data_dir, _ = tiny_data
    again, _ = build("random", data_dir, tmp_path / "r0.parquet", seed=0, progress=False)
    other, _ = build("random", data_dir, tmp_path / "r1.parquet", seed=1, progress=False)
    assert np.array_equal(read_embedding(built["random"]), read_embedding(again))
    assert not np.allclose(read_embedding(built["random"]), read_embedding(other))


def test_contrastive_beats_a_random_projection_on_the_proxy(built, histories):
    learnt = recall(built["contrastive"], histories)
    baseline = recall(built["random"], histories)
    assert learnt["queries"] == baseline["queries"] > 500
    # measured on tiny data, seeds 0-2: recall@50 0.37 vs 0.19, recall@10 0.12 vs 0.10
    assert learnt["recall@50"] > baseline["recall@50"] + 0.1, (learnt, baseline)
    assert learnt["recall@10"] > baseline["recall@10"], (learnt, baseline)


def test_proxy_recall_is_exact_on_a_constructed_case():
    """Items 1..4 on axes; a held-out user's history 1, 2 -> 3. The mean query (e1 + e2)/2 ranks
    items 1 and 2 above 3 (rank 2), so recall@2 = 0, recall@3 = 1."""
    emb = np.zeros((5, 4))
    emb[1:, :] = np.eye(4)
    ids = np.flatnonzero(heldout_mask(np.arange(1, 2000)))[:1] + 1  # a held-out user id
    offsets = np.array([0, 3])
    items = np.array([1, 2, 3])
    metrics = proxy_metrics(emb, (ids, offsets, items), ks=(2, 3))
    assert metrics == {"recall@2": 0.0, "recall@3": 1.0, "queries": 1}
    last = proxy_metrics(emb, (ids, offsets, items), mode="last", ks=(1, 2))
    assert last == {"recall@1": 0.0, "recall@2": 1.0, "queries": 1}  # item 2 itself ranks first


def test_held_out_users_never_give_training_pairs(histories):
    users, offsets, items = histories
    held = heldout_mask(users)
    assert 0.07 < held.mean() < 0.13
    anchors, positives = training_pairs(users, offsets, items)
    lengths = np.diff(offsets)
    assert anchors.size == (lengths[~held] - 1).sum()
    # the first kept user's first pair is its first two items
    u = int(np.flatnonzero(~held)[0])
    assert (anchors[0], positives[0]) == (items[offsets[u]], items[offsets[u] + 1])
    start, stop, target = proxy_queries(users, offsets, items)
    assert target.size == held.sum()
    assert np.array_equal(target, items[offsets[1:][held] - 1])


# ---- bad input ---------------------------------------------------------------------------

def copy_data(data_dir, dest):
    shutil.copytree(data_dir, dest, ignore=shutil.ignore_patterns("train.parquet", "test.parquet",
                                                                  "valid.parquet"))
    return dest


def rewrite_item_feature(folder, change):
    path = folder / "item_feature.parquet"
    pq.write_table(change(pq.read_table(path)), path)
    return path


def test_missing_item_is_a_data_error(tiny_data, tmp_path):
    folder = copy_data(tiny_data[0], tmp_path / "data")
    path = rewrite_item_feature(folder, lambda t: t.filter(pc.not_equal(t["item_id"], 17)))
    with pytest.raises(DataError, match="item_id 17 is missing") as err:
        build("pca_concat", folder, tmp_path / "x.parquet", progress=False)
    assert err.value.path == str(path) and err.value.column == "item_id"


def test_nan_in_an_embedding_is_a_data_error_naming_the_row(tiny_data, tmp_path):
    folder = copy_data(tiny_data[0], tmp_path / "data")

    def poison(table):
        txt = np.stack(table["txt_emb_BERT"].to_numpy(zero_copy_only=False))
        txt[42, 5] = np.nan
        return table.set_column(table.schema.get_field_index("txt_emb_BERT"), "txt_emb_BERT",
                                pa.array(list(txt), pa.list_(pa.float32())))

    path = rewrite_item_feature(folder, poison)
    with pytest.raises(DataError, match="NaN") as err:
        build("contrastive", folder, tmp_path / "x.parquet", options=FAST, progress=False)
    assert (err.value.path, err.value.column, err.value.row) == (str(path), "txt_emb_BERT", 42)
    assert not (tmp_path / "x.parquet").exists()


def test_rows_are_aligned_by_item_id_not_position(built, tiny_data, tmp_path):
    folder = copy_data(tiny_data[0], tmp_path / "data")
    order = np.random.default_rng(0).permutation(tiny_data[1]["n_items"])
    rewrite_item_feature(folder, lambda t: t.take(order))
    emb_path = folder / "item_emb.parquet"
    pq.write_table(pq.read_table(emb_path).take(order), emb_path)
    shuffled = build("item_emb_v2", folder, tmp_path / "v2.parquet", progress=False)[0]
    assert np.array_equal(read_embedding(shuffled), read_embedding(built["item_emb_v2"]))
    pca = build("pca_concat", folder, tmp_path / "pca.parquet", progress=False)[0]
    np.testing.assert_allclose(read_embedding(pca), read_embedding(built["pca_concat"]),
                               atol=1e-4)


def test_unknown_option_names_the_option(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="'epochs' does not apply to --method pca_concat"):
        build("pca_concat", tiny_data[0], tmp_path / "x.parquet", options={"epochs": 3})


# ---- protocol configs ----------------------------------------------------------------------

def test_grid_accepts_only_the_task1_knobs():
    assert protocol.parse_grid(["learning_rate=1e-3,3e-3", "batch_size=1024"]) == {
        "learning_rate": [1e-3, 3e-3], "batch_size": [1024]}
    with pytest.raises(ConfigError, match="embedding_dim"):
        protocol.parse_grid(["embedding_dim=32"])


def test_tuner_config_follows_the_baseline_and_the_data(built, tiny_data):
    data_dir, summary = tiny_data
    config = protocol.tuner_config(built["contrastive"], data_dir, model="demo", epochs=1,
                                   seeds=[1, 2], grid={"learning_rate": [1e-3, 3e-3]})
    baseline = yaml.safe_load(open(REPO / "config" / "DIN_microlens_mmctr_tuner_config_01.yaml"))
    assert config["dataset_id"] == "MicroLens_1M_x1_contrastive"
    dataset = config["dataset_config"]["MicroLens_1M_x1_contrastive"]
    assert set(dataset) == set(baseline["dataset_config"]["MicroLens_1M_x1"])
    vocab = {c["name"]: c.get("vocab_size") for c in dataset["feature_cols"]}
    assert vocab["item_id"] == summary["n_items"] + 1
    assert vocab["item_tags"] == 11740  # tiny tags (< 200) fall back to the baseline's vocab
    assert dataset["item_info"] == str(built["contrastive"].resolve())
    assert dataset["valid_data"] == str((data_dir / "MicroLens_1M_x1" / "valid.parquet").resolve())
    space = config["tuner_space"]
    assert space["learning_rate"] == [1e-3, 3e-3] and space["seed"] == [1, 2]
    assert space["epochs"] == 1 and space["embedding_dim"] == 16  # the demo's dims
    assert set(space) - set(protocol.TASK1_KNOBS) == {
        "epochs", "seed", "embedding_dim", "dnn_hidden_units", "attention_hidden_units"}
    baseline_model = protocol.tuner_config(built["contrastive"], data_dir)
    assert set(baseline_model["tuner_space"]) == set(protocol.TASK1_KNOBS)  # DIN_default as is


def test_summary_takes_the_best_knobs_per_seed_then_averages():
    results = {"a": ({"seed": 1, "net_dropout": 0.1}, 0.70),
               "b": ({"seed": 1, "net_dropout": 0.3}, 0.72),
               "c": ({"seed": 2, "net_dropout": 0.1}, 0.74),
               "d": ({"seed": 2, "net_dropout": 0.3}, None)}  # a failed run
    row = summarise_din(results)
    assert row["din_auc"] == pytest.approx(0.73) and row["din_seeds"] == 2
    assert row["din_std"] == pytest.approx(np.std([0.72, 0.74], ddof=1))
    assert row["best_knobs"] == "net_dropout=0.1"


def test_rebuilt_file_retires_old_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_dir = tmp_path / "x_tuner_config"
    results = tmp_path / "x_tuner_config.csv"
    stamp = tmp_path / "x_tuner_config.fingerprint"
    results.write_text("old\n")
    stamp.write_text("aaa\n")
    assert not _retire_stale_results(config_dir, stamp, "aaa")
    assert results.exists()
    assert _retire_stale_results(config_dir, stamp, "bbb")
    assert not results.exists() and (tmp_path / "x_tuner_config.stale-aaa.csv").exists()


# ---- command line and the DIN protocol -------------------------------------------------------

def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "src.item_embedding", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_build_then_evaluate_proxy_only(tiny_data, built, tmp_path):
    data_dir, _ = tiny_data
    out = tmp_path / "cli_pca.parquet"
    done = cli("build", "--method", "pca_per_modality", "--data-dir", data_dir, "--out", out,
               "--modality-dims", "96,32", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "evaluate" in done.stdout and "prediction.py" in done.stdout
    assert "--task 1" in done.stdout
    assert read_metadata(out)["options"]["modality_dims"] == [96, 32]
    work = tmp_path / "work"
    done = cli("evaluate", out, built["random"], "--data-dir", data_dir, "--work-dir", work,
               "--proxy-only")
    assert done.returncode == 0, done.stderr[-2000:]
    table = (work / "item_embedding_results.csv").read_text().splitlines()
    assert table[0].startswith("file,method,build_seed,recall@10,recall@50")
    assert table[1].split(",")[1] == "pca_per_modality"  # best first: it beats random
    assert (work / "item_embedding_results.md").read_text().count("\n| ") == 3


def test_cli_errors_exit_2_with_one_line(tiny_data, tmp_path):
    done = cli("build", "--method", "pca_concat", "--data-dir", tmp_path, "--out",
               tmp_path / "x.parquet")
    assert done.returncode == 2
    assert done.stderr.startswith("error: file ") and "Traceback" not in done.stderr
    done = cli("evaluate", tmp_path / "x.parquet", "--data-dir", tiny_data[0], "--grid",
               "embedding_dim=8")
    assert done.returncode == 2 and "task 1 only allows tuning" in done.stderr


@pytest.mark.slow
def test_din_protocol_runs_through_the_tuner(built, tiny_data, tmp_path, monkeypatch):
    """One grid point, demo model, 1 epoch on 20k rows: the table gets a DIN AUC."""
    monkeypatch.chdir(tmp_path)
    data_dir, _ = tiny_data
    rows, csv_path, _ = evaluate([built["item_emb_v1"]], data_dir, tmp_path / "work",
                                 model="demo", epochs=1, train_rows=20_000,
                                 grid={"batch_size": [2048], "learning_rate": [3e-3]})
    row = rows[0]
    assert 0.55 < row["din_auc"] < 1.0 and row["din_seeds"] == 1
    config = yaml.safe_load(open(row["tuner_config"]))
    dataset = config["dataset_config"]["MicroLens_1M_x1_item_emb_v1"]
    assert pq.ParquetFile(dataset["train_data"]).metadata.num_rows == 20_000
    assert (tmp_path / "item_emb_v1_tuner_config.csv").exists()  # the tuner's result lines
    assert row["din_per_seed"].startswith("20242025:")  # the baseline's training seed
