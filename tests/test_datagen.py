"""Tests of src/datagen.py on the `tiny` preset: layout, padding, truth and learnability."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from src.data import generator as datagen
from src.data.gen_items import make_items

CFG = datagen.SCALES["tiny"]
I64, F32, F64 = pa.int64(), pa.float32(), pa.float64()
ROWS = [("user_id", I64), ("item_seq", pa.list_(I64)), ("item_id", I64),
        ("likes_level", I64), ("views_level", I64)]
SCHEMAS = {
    "MicroLens_1M_x1/train.parquet": ROWS + [("label", I64)],
    "MicroLens_1M_x1/valid.parquet": ROWS + [("label", I64)],
    "MicroLens_1M_x1/test.parquet": [("ID", I64)] + ROWS,
    "MicroLens_1M_x1/item_info.parquet": [("item_id", I64), ("item_tags", pa.list_(I64)),
                                          ("item_emb_d128", pa.list_(F64))],
    "item_feature.parquet": [("item_id", I64), ("item_title", pa.string()),
                             ("item_tags", pa.list_(I64)), ("likes_level", I64),
                             ("views_level", I64), ("txt_emb_BERT", pa.list_(F32)),
                             ("img_emb_CLIPRN50", pa.list_(F32))],
    "item_emb.parquet": [("item_id", I64)] + [(f"item_emb_d128_{v}", pa.list_(F32))
                                              for v in ("v1", "v2", "v3", "e4")],
    "item_seq.parquet": [("user_id", I64), ("item_seq", pa.list_(I64))],
    "ground_truth/valid_truth.parquet": [("row", I64), ("label", I64), ("click_prob", F64)],
    "ground_truth/test_truth.parquet": [("ID", I64), ("label", I64), ("click_prob", F64)],
}
FIXED_LEN = {("MicroLens_1M_x1/train.parquet", "item_seq"): 64,
             ("MicroLens_1M_x1/valid.parquet", "item_seq"): 64,
             ("MicroLens_1M_x1/test.parquet", "item_seq"): 64,
             ("MicroLens_1M_x1/item_info.parquet", "item_tags"): 5,
             ("MicroLens_1M_x1/item_info.parquet", "item_emb_d128"): 128,
             ("item_feature.parquet", "txt_emb_BERT"): 768,
             ("item_feature.parquet", "img_emb_CLIPRN50"): 1024,
             **{("item_emb.parquet", f"item_emb_d128_{v}"): 128 for v in ("v1", "v2", "v3", "e4")}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_seed0")
    summary = datagen.generate(root, scale="tiny", seed=0, progress=False)
    return root, summary


def _read(root, rel):
    return pq.read_table(root / rel)


def _matrix(table, col, width):
    """A fixed-length list column as a 2-D numpy array."""
    arr = table.column(col).combine_chunks()
    return arr.values.to_numpy().reshape(-1, width)


def _histories(root):
    t = _read(root, "item_seq.parquet")
    arr = t.column("item_seq").combine_chunks()
    off, vals = arr.offsets.to_numpy(), arr.values.to_numpy()
    return {int(u): vals[off[i]:off[i + 1]] for i, u in enumerate(t.column("user_id").to_numpy())}


def test_schemas_exact(data):
    root, _ = data
    for rel, fields in SCHEMAS.items():
        schema = pq.read_schema(root / rel)
        assert schema.names == [n for n, _ in fields], rel
        for name, typ in fields:
            got = schema.field(name).type
            assert got == typ and not pa.types.is_large_list(got), f"{rel}:{name} is {got}"


def test_list_lengths(data):
    root, _ = data
    for (rel, col), width in FIXED_LEN.items():
        lens = np.diff(_read(root, rel).column(col).combine_chunks().offsets.to_numpy())
        assert (lens == width).all(), f"{rel}:{col} lengths {set(lens.tolist())}, want {width}"


def test_counts_and_id_ranges(data):
    root, _ = data
    for split in ("train", "valid", "test"):
        df = _read(root, f"MicroLens_1M_x1/{split}.parquet").to_pandas()
        assert len(df) == CFG[f"n_{split}"]
        assert df.user_id.between(1, CFG["n_users"]).all()
        assert df.item_id.between(1, CFG["n_items"]).all()
        assert df.likes_level.between(0, 9).all() and df.views_level.between(0, 9).all()
        seq = _matrix(_read(root, f"MicroLens_1M_x1/{split}.parquet"), "item_seq", 64)
        assert seq.min() >= 0 and seq.max() <= CFG["n_items"]
        if split != "test":
            assert set(df.label.unique()) == {0, 1}
    test = _read(root, "MicroLens_1M_x1/test.parquet")
    assert test.column_names[0] == "ID" and "label" not in test.column_names
    np.testing.assert_array_equal(test.column("ID").to_numpy(), np.arange(CFG["n_test"]))

    feat = _read(root, "item_feature.parquet").to_pandas()
    np.testing.assert_array_equal(feat.item_id, np.arange(1, CFG["n_items"] + 1))
    np.testing.assert_array_equal(_read(root, "item_emb.parquet").column("item_id").to_numpy(),
                                  np.arange(1, CFG["n_items"] + 1))
    assert (feat.item_title.str.len() > 0).all()
    tags = np.concatenate(feat.item_tags.to_numpy())
    assert tags.min() >= 1 and tags.max() <= CFG["n_tags"] - 1
    n_tags = feat.item_tags.map(len)
    assert (n_tags == 0).any() and n_tags.max() > 5   # empty and longer-than-5 lists exist


def test_item_info_padding_row_and_tags(data):
    root, _ = data
    info = _read(root, "MicroLens_1M_x1/item_info.parquet")
    n = CFG["n_items"] + 1
    np.testing.assert_array_equal(info.column("item_id").to_numpy(), np.arange(n))
    tags = _matrix(info, "item_tags", 5)
    emb = _matrix(info, "item_emb_d128", 128)
    assert (tags[0] == 0).all() and (emb[0] == 0.0).all()
    assert (np.abs(emb[1:]).sum(axis=1) > 0).all()
    # left padding: once a non-zero tag appears, no zero follows
    assert not ((tags[:, :-1] != 0) & (tags[:, 1:] == 0)).any()
    full = _read(root, "item_feature.parquet").column("item_tags").to_pylist()
    for i in range(1, n):
        shown = [t for t in tags[i] if t]
        assert shown == full[i - 1][:5], f"item {i}: {shown} vs {full[i - 1]}"


def test_histories_and_row_sequences(data):
    root, _ = data
    hist = _histories(root)
    assert sorted(hist) == list(range(1, CFG["n_users"] + 1))
    lens = np.array([len(h) for h in hist.values()])
    assert lens.min() >= 3 and lens.max() <= 100 and 6.5 < lens.mean() < 9.5
    for split in ("train", "valid", "test"):
        table = _read(root, f"MicroLens_1M_x1/{split}.parquet")
        seq = _matrix(table, "item_seq", 64)
        users = table.column("user_id").to_numpy()
        items = table.column("item_id").to_numpy()
        labels = table.column("label").to_numpy() if split != "test" else None
        nonzero = seq != 0
        # zeros only at the start, and every row has some history
        assert not (nonzero[:, :-1] & ~nonzero[:, 1:]).any(), split
        assert nonzero[:, -1].all(), split
        k = nonzero.sum(axis=1)
        for r in range(len(seq)):
            h, s = hist[users[r]], seq[r, 64 - k[r]:]
            if split == "train":
                if k[r] < 64:   # the prefix is the start of the history, next item = positive
                    np.testing.assert_array_equal(s, h[:k[r]])
                    assert k[r] < len(h)
                    assert (items[r] == h[k[r]]) or labels[r] == 0
                else:
                    assert any((h[t - 64:t] == s).all() for t in range(64, len(h)))
            else:               # valid/test rows come after the whole history
                np.testing.assert_array_equal(s, h[-64:])


def test_positive_rate_and_truth(data):
    root, summary = data
    for split in ("train", "valid"):
        labels = _read(root, f"MicroLens_1M_x1/{split}.parquet").column("label").to_numpy()
        assert labels.sum() == round(0.25 * CFG[f"n_{split}"])
    valid = _read(root, "MicroLens_1M_x1/valid.parquet").to_pandas()
    vt = _read(root, "ground_truth/valid_truth.parquet").to_pandas()
    tt = _read(root, "ground_truth/test_truth.parquet").to_pandas()
    np.testing.assert_array_equal(vt.row, np.arange(len(valid)))
    np.testing.assert_array_equal(vt.label, valid.label)
    np.testing.assert_array_equal(tt.ID, np.arange(CFG["n_test"]))
    assert tt.label.sum() == round(0.25 * CFG["n_test"])
    for truth in (vt, tt):
        assert truth.click_prob.between(0, 1).all()
        # the saved probabilities are calibrated, not just a ranking score
        assert abs(truth.click_prob.mean() - 0.25) < 0.02

    on_disk = json.loads((root / "ground_truth" / "summary.json").read_text())
    assert on_disk == summary
    assert summary["scale"] == "tiny" and summary["n_train"] == CFG["n_train"]
    for name, truth in (("valid", vt), ("test", tt)):
        best = roc_auc_score(truth.label, truth.click_prob)
        assert summary["best_auc"][name] == pytest.approx(best, abs=1e-12)
        assert 0.85 < best < 0.96
        assert summary["history_blind_oracle_auc"][name] < best - 0.1
        # what the row's history reveals of the user: between knowing nothing and knowing all
        assert (summary["history_blind_oracle_auc"][name] + 0.05 < summary["history_oracle_auc"][name]
                < best - 0.01)
    assert not list(root.rglob("*.tmp")), "temporary files left behind"


def test_learnability(data):
    """History-blind features carry some signal but far less than the truth; the history
    carries signal of its own."""
    root, summary = data
    train = _read(root, "MicroLens_1M_x1/train.parquet").to_pandas()
    valid = _read(root, "MicroLens_1M_x1/valid.parquet")
    vdf = valid.to_pandas()
    best = summary["best_auc"]["valid"]

    enc = OneHotEncoder(handle_unknown="ignore")
    cols = ["likes_level", "views_level"]
    blind = LogisticRegression(solver="liblinear").fit(enc.fit_transform(train[cols]), train.label)
    blind_auc = roc_auc_score(vdf.label, blind.predict_proba(enc.transform(vdf[cols]))[:, 1])
    assert 0.58 < blind_auc < best - 0.12, blind_auc

    emb = _matrix(_read(root, "MicroLens_1M_x1/item_info.parquet"), "item_emb_d128", 128)
    emb = emb - emb[1:].mean(axis=0)
    emb[0] = 0.0
    seq = _matrix(valid, "item_seq", 64)
    profile = emb[seq].sum(axis=1) / (seq != 0).sum(axis=1, keepdims=True)
    target = emb[vdf.item_id.to_numpy()]
    cos = (profile * target).sum(1) / (np.linalg.norm(profile, axis=1)
                                       * np.linalg.norm(target, axis=1))
    cos_auc = roc_auc_score(vdf.label, cos)
    assert 0.62 < cos_auc < best - 0.05, cos_auc


@pytest.mark.slow
def test_modalities_are_complementary(data):
    """Text and image each recover part of the latent content; together they recover more."""
    root, _ = data
    z = make_items(CFG, 0)["z"][1:]
    feat = _read(root, "item_feature.parquet")
    txt = _matrix(feat, "txt_emb_BERT", 768)
    img = _matrix(feat, "img_emb_CLIPRN50", 1024)
    fit, held = slice(0, 1500), slice(1500, None)

    def r2(x):
        ridge = RidgeCV(alphas=np.logspace(-1, 4, 11))   # more features than fit items
        return ridge.fit(x[fit], z[fit]).score(x[held], z[held])

    r2_txt, r2_img, r2_both = r2(txt), r2(img), r2(np.hstack([txt, img / 2.5]))
    assert 0.4 < r2_txt < 0.75 and 0.4 < r2_img < 0.75, (r2_txt, r2_img)
    assert r2_both > max(r2_txt, r2_img) + 0.2, (r2_txt, r2_img, r2_both)


@pytest.mark.slow
def test_deterministic_per_seed(data, tmp_path, capsys):
    root, _ = data
    datagen.main(["--scale", "tiny", "--out", str(tmp_path / "again"), "--quiet"])
    printed = capsys.readouterr().out
    assert "best achievable AUC: valid 0." in printed
    sizes = ", ".join(f"{k} {v}" for k, v in _read_vocab_sizes(root).items())
    assert f"vocab sizes for the dataset config (what vocab_size: auto computes): {sizes};" in printed
    for rel in SCHEMAS:
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    datagen.generate(tmp_path / "other", scale="tiny", seed=1, progress=False)
    for rel in ("MicroLens_1M_x1/train.parquet", "item_seq.parquet", "item_feature.parquet"):
        assert not _read(root, rel).equals(_read(tmp_path / "other", rel)), rel


def _read_vocab_sizes(root):
    """The five vocabulary sizes, computed from the written files with pandas."""
    info = _read(root, "MicroLens_1M_x1/item_info.parquet").to_pandas()
    rows = [_read(root, f"MicroLens_1M_x1/{s}.parquet").to_pandas()
            for s in ("train", "valid", "test")]
    top = {c: max(int(r[c].max()) for r in rows) for c in ("user_id", "likes_level", "views_level")}
    tags = np.concatenate(info.item_tags.to_numpy())
    return {"item_id": len(info), "item_tags": int(tags.max()) + 1,
            "user_id": top["user_id"] + 1, "likes_level": top["likes_level"] + 1,
            "views_level": top["views_level"] + 1}


def test_summary_holds_the_vocab_sizes(data):
    root, summary = data
    assert summary["vocab_sizes"] == _read_vocab_sizes(root)
    assert summary["vocab_sizes"]["item_id"] == CFG["n_items"] + 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown scale 'huge'.*tiny, small, medium, full"):
        datagen.generate(tmp_path, scale="huge")
    with pytest.raises(ValueError, match="seed"):
        datagen.generate(tmp_path, scale="tiny", seed=-1)
    with pytest.raises(SystemExit):
        datagen.main(["--scale", "huge", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir()), "a rejected call must not write anything"
