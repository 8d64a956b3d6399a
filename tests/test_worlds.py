"""The generator's click laws (src/data/worlds.py): each world's files, ground truth and law."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from src.data import generator as datagen
from src.data.worlds import WORLDS, ClickLaw, World, last_clicks

FILES = ["MicroLens_1M_x1/train.parquet", "MicroLens_1M_x1/valid.parquet",
         "MicroLens_1M_x1/test.parquet", "MicroLens_1M_x1/item_info.parquet",
         "item_feature.parquet", "item_emb.parquet", "item_seq.parquet",
         "ground_truth/valid_truth.parquet", "ground_truth/test_truth.parquet"]
HISTORY_WORLDS = ["cosine", "multi_interest", "recency", "user_heavy"]


@pytest.fixture(scope="module")
def worlds(tiny_data, tmp_path_factory):
    """{world: (folder, summary)} at the tiny scale; the cosine world is conftest's data."""
    out = {"cosine": tiny_data}
    for name in WORLDS:
        if name != "cosine":
            root = tmp_path_factory.mktemp(name)
            out[name] = (root, datagen.generate(root, scale="tiny", seed=0, progress=False,
                                                world=name))
    return out


@pytest.mark.slow
def test_every_world_is_generated_and_named(worlds):
    assert set(worlds) == {"cosine", "multi_interest", "target_side", "recency", "user_heavy"}
    for name, (root, summary) in worlds.items():
        assert summary["world"] == name
        assert json.loads((root / "ground_truth" / "summary.json").read_text()) == summary


@pytest.mark.slow
def test_every_world_writes_the_same_files_and_schema(worlds):
    cosine_root, cosine = worlds["cosine"]
    for name, (root, summary) in worlds.items():
        for rel in FILES:
            assert pq.read_schema(root / rel) == pq.read_schema(cosine_root / rel), (name, rel)
        for split in ("train", "valid", "test"):
            assert summary[f"n_{split}"] == cosine[f"n_{split}"]
            assert pq.read_metadata(root / f"MicroLens_1M_x1/{split}.parquet").num_rows == \
                cosine[f"n_{split}"]
        assert summary["positive_rate"] == {"train": 0.25, "valid": 0.25, "test": 0.25}


@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.slow
def test_ground_truth_of_each_world(worlds, split):
    for name, (_, s) in worlds.items():
        best, blind = s["best_auc"][split], s["history_blind_oracle_auc"][split]
        history = s["history_oracle_auc"][split]
        assert 0.85 < best < 0.97, (name, best)
        assert history < best, name
        if name in HISTORY_WORLDS:
            # the history matters: knowing only the target item is far from the best
            assert blind < best - 0.1, (name, blind, best)
            assert history > blind + 0.05, (name, history, blind)
    # the target-side world: a history-blind model can get above 0.9 of the way
    s = worlds["target_side"][1]
    best, blind = s["best_auc"][split], s["history_blind_oracle_auc"][split]
    assert (blind - 0.5) / (best - 0.5) > 0.9 and blind < best, (blind, best)


@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.slow
def test_the_worlds_laws_pool_the_history_differently(worlds, split):
    """Where the law takes the best of several interests or the last clicks, its own oracle
    beats the cosine law's mean-pooled one; where the law is the cosine's they are equal."""
    for name, (_, s) in worlds.items():
        own, mean_pool = s["history_oracle_auc"][split], s["mean_pool_history_oracle_auc"][split]
        if name in ("multi_interest", "recency"):
            assert own > mean_pool + 0.01, (name, own, mean_pool)
        else:
            assert own == mean_pool, name


@pytest.mark.slow
def test_the_user_heavy_world_has_a_user_bias_in_its_files(worlds):
    """More rows per user, and a user's click rate in train predicts their valid labels,
    far more than in the cosine world (where it reflects only taste)."""
    aucs, rows_per_user = {}, {}
    for name in ("cosine", "user_heavy"):
        root = worlds[name][0] / "MicroLens_1M_x1"
        train = pq.read_table(root / "train.parquet", columns=["user_id", "label"]).to_pandas()
        valid = pq.read_table(root / "valid.parquet", columns=["user_id", "label"]).to_pandas()
        rate = train.groupby("user_id").label.mean()
        aucs[name] = roc_auc_score(valid.label, valid.user_id.map(rate).fillna(0.25))
        rows_per_user[name] = len(train) / train.user_id.nunique()
    assert rows_per_user["user_heavy"] > 4 * rows_per_user["cosine"], rows_per_user
    assert aucs["user_heavy"] > aucs["cosine"] + 0.05, aucs


def test_the_world_option_of_the_command_line(tmp_path, capsys):
    datagen.main(["--scale", "tiny", "--world", "recency", "--out", str(tmp_path), "--quiet"])
    assert "world recency" in capsys.readouterr().out
    assert json.loads((tmp_path / "ground_truth/summary.json").read_text())["world"] == "recency"
    with pytest.raises(SystemExit):
        datagen.main(["--scale", "tiny", "--world", "flat", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="unknown world 'flat'.*cosine, multi_interest"):
        datagen.generate(tmp_path / "y", scale="tiny", world="flat")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# ---- the laws on hand-made items and users ----
def _unit_rows(*vectors):
    x = np.array(vectors, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _law(world, **users):
    """A law over 4 items (row 0 padding) with equal popularity and quality: items 1 and 2
    point along two interests, item 3 half-way between them."""
    zn = np.vstack([np.zeros((1, 3), np.float32), _unit_rows([1, 0, 0], [0, 1, 0], [1, 1, 0])])
    items = {"zn": zn, "logpop": np.zeros(4), "quality": np.zeros(4)}
    return ClickLaw(world, items, users, pop_sigma=1.0)


def test_the_multi_interest_law_takes_the_best_interest_not_the_mean():
    interests = np.zeros((2, 3, 3), np.float32)
    interests[1, :2] = _unit_rows([1, 0, 0], [0, 1, 0])
    users = {"interests": interests, "n_top": np.array([0, 2]),
             "un": _unit_rows([0, 0, 1], [1, 1, 0])}
    uid, items = np.array([1, 1, 1]), np.array([1, 2, 3])
    by_max = _law(WORLDS["multi_interest"], **users).logit(uid, items)
    by_mean = _law(WORLDS["cosine"], **users).logit(uid, items)
    # either interest fully matched scores alpha; the in-between item less
    np.testing.assert_allclose(by_max, [7.5, 7.5, 7.5 * np.sqrt(0.5)], rtol=1e-6)
    # the cosine law with the mean interest prefers the in-between item
    assert by_mean[2] > by_mean[0] == pytest.approx(by_mean[1])
    # an unused third interest slot never counts, even when it would match best
    interests[1, 2] = _unit_rows([1, 1, 0])[0]
    assert _law(WORLDS["multi_interest"], **users).logit(uid[:1], items[2:]) == \
        pytest.approx(7.5 * np.sqrt(0.5), rel=1e-6)


def test_the_recency_law_weighs_the_last_clicks_by_their_order():
    world = WORLDS["recency"]
    users = {"un": _unit_rows([0, 0, 1], [0, 0, 1])}
    law = _law(world, **users)
    recent = np.array([[1, 2, 2], [2, 1, 1]])  # most recent first
    logit = law.logit(np.array([1, 1]), np.array([1, 1]), recent)
    assert logit[0] > logit[1] + 1.0, logit  # item 1 was clicked last in row 0 only
    # no recent click: the long-term interest alone (orthogonal to item 1: taste 0)
    np.testing.assert_allclose(law.logit(np.array([1]), np.array([1]), np.zeros((1, 3), int)),
                               [0.0], atol=1e-6)
    # the cosine law ignores the recent clicks
    cos_law = _law(WORLDS["cosine"], **users)
    assert cos_law.logit(np.array([1, 1]), np.array([1, 1]), recent).tolist() == [0.0, 0.0]


def test_the_user_heavy_law_adds_the_users_bias():
    users = {"un": _unit_rows([1, 0, 0], [1, 0, 0], [1, 0, 0]), "bias": np.array([0, 0.5, -1.0])}
    logit = _law(WORLDS["user_heavy"], **users).logit(np.array([1, 2]), np.array([1, 1]))
    np.testing.assert_allclose(logit, [7.5 + 0.5, 7.5 - 1.0], rtol=1e-6)


def test_the_target_side_law_weights_the_item_more_than_the_taste():
    t, c = WORLDS["target_side"], WORLDS["cosine"]
    assert t.alpha < c.alpha / 2 and t.beta_pop > c.beta_pop and t.gamma_quality > c.gamma_quality
    assert World("x", "").alpha == c.alpha  # the cosine world is the defaults


def test_last_clicks_reads_left_padded_rows_most_recent_first():
    seqs = np.array([[0, 0, 0, 4, 5, 6], [0, 0, 0, 0, 0, 9], [0] * 6])
    np.testing.assert_array_equal(last_clicks(seqs, 3), [[6, 5, 4], [9, 0, 0], [0, 0, 0]])
