"""The loader and the baseline DIN on tiny generated data: lookups, padding, learning."""
import numpy as np
import pandas as pd
import pytest
import torch
from fuxictr.pytorch.torch_utils import seed_everything

from src.data.loader import MMCTRDataLoader
from src.experiment import build_model, load_params, make_loaders
from src.data.features import build_feature_map
from src.training.options import RunContext, TrainingOptions
from src.training.trainer import Trainer
from src.tuning.tuner import expand_grid

from .conftest import write_tuner_config
from .numerics import logits_close


@pytest.fixture(scope="module")
def params(tiny_data, tmp_path_factory):
    """Params of a one-point grid on the tiny data, checkpoints in a temp folder."""
    folder = tmp_path_factory.mktemp("din")
    data_dir, _ = tiny_data
    tuner = write_tuner_config(folder, data_dir, {"learning_rate": 1.e-2, "epochs": 1,
                                                  "model_root": str(folder / "checkpoints")})
    config_dir, expids = expand_grid(tuner)
    assert len(expids) == 1
    return load_params(config_dir, expids[0])


def split_frame(params, split):
    return pd.read_parquet(params[f"{split}_data"])


def test_loader_batches_equal_direct_item_info_lookup(params):
    feature_map = build_feature_map(params)
    loader = MMCTRDataLoader(feature_map, params["train_data"], split="train", batch_size=256,
                             shuffle=True, max_len=64)
    np.random.seed(7)
    batch = next(iter(loader))
    np.random.seed(7)
    rows = np.random.permutation(loader.num_samples)[:256]

    train = split_frame(params, "train").iloc[rows]
    item_info = pd.read_parquet(params["item_info"])
    assert np.array_equal(batch["item_id"].numpy(), train["item_id"].to_numpy())
    assert np.array_equal(batch["item_seq"].numpy(), np.stack(train["item_seq"].to_numpy()))
    assert np.array_equal(batch["label"].numpy(), train["label"].to_numpy().astype(np.float32))
    assert np.array_equal(batch["likes_level"].numpy(), train["likes_level"].to_numpy())

    model = build_model(params, feature_map)
    ids = torch.cat([batch["item_seq"].long(), batch["item_id"].long()[:, None]], 1)
    looked_up = model.item_table.lookup(ids[:20])
    expected = item_info.iloc[ids[:20].reshape(-1).numpy()]
    assert np.array_equal(looked_up["item_id"].reshape(-1).numpy(), expected["item_id"].to_numpy())
    assert np.array_equal(looked_up["item_tags"].reshape(-1, 5).numpy(),
                          np.stack(expected["item_tags"].to_numpy()))
    assert np.allclose(looked_up["item_emb_d128"].reshape(-1, 128).numpy(),
                       np.stack(expected["item_emb_d128"].to_numpy()), atol=1e-6)


def test_max_len_truncation_keeps_most_recent_items(params):
    feature_map = build_feature_map(params)
    loader = MMCTRDataLoader(feature_map, params["valid_data"], split="valid", batch_size=512,
                             max_len=10)
    batch = next(iter(loader))
    full = np.stack(split_frame(params, "valid")["item_seq"].to_numpy()[:512])
    assert batch["item_seq"].shape == (512, 10)
    assert np.array_equal(batch["item_seq"].numpy(), full[:, -10:])
    # histories are left-padded: once a real item appears, no padding follows
    nonzero = full > 0
    assert (np.diff(nonzero.astype(int), axis=1) >= 0).all()


def _valid_batch(params, n=256):
    feature_map = build_feature_map(params)
    loader = MMCTRDataLoader(feature_map, params["valid_data"], split="valid", batch_size=n)
    return next(iter(loader))


def _scores(model, batch):
    """Logits: compared before the sigmoid, so rows cannot agree by saturating at 0 or 1."""
    model.eval()
    with torch.no_grad():
        return model.scores(batch)[0].reshape(-1)


def test_padded_positions_do_not_change_the_output(params):
    seed_everything(1)
    model = build_model(params)
    batch = _valid_batch(params)
    history = batch["item_seq"]
    assert (history == 0).any(), "tiny data should have padded histories"
    before = _scores(model, batch)

    # Anything the padding id maps to is ignored: its tags, its embedding, its id embedding.
    model.item_table.item_tags[0] = 7
    model.item_table.item_emb_d128[0] = 3.0
    model.embedding_layer.embedding_layer.embedding_layers["item_id"].weight.data[0] = 1.0
    after = _scores(model, batch)
    assert logits_close(before, after)

    # ...while changing a real history item does change the score of its rows.
    rows = (history[:, -1] > 0).nonzero().reshape(-1)
    changed = dict(batch, item_seq=history.clone())
    changed["item_seq"][rows, -1] = (history[rows, -1] % (model.item_table.num_items - 1)) + 1
    assert not logits_close(after[rows], _scores(model, changed)[rows])


def test_history_older_than_max_len_is_ignored(params):
    seed_everything(1)
    short = build_model(dict(params, max_len=8))
    batch = _valid_batch(params)
    older = dict(batch, item_seq=batch["item_seq"].clone())
    older["item_seq"][:, :-8] = torch.randint(1, short.item_table.num_items, (256, 64 - 8),
                                              dtype=older["item_seq"].dtype)
    assert logits_close(_scores(short, batch), _scores(short, older))


def test_distinct_item_embedding_equals_per_slot_embedding(params):
    """Embedding each distinct item once gives what the baseline's per-slot lookup gives."""
    seed_everything(2)
    model = build_model(params)
    batch = _valid_batch(params)
    ids = torch.cat([batch["item_seq"].long(), batch["item_id"].long()[:, None]], 1)
    per_slot = model.embedding_layer(model.item_table.lookup(ids.reshape(-1)), flatten_emb=True)
    assert logits_close(model.embed_items(ids).reshape(-1, per_slot.shape[1]), per_slot)


def _train_one_epoch(params, blind):
    """Validation AUC after one epoch; blind=True hides every history (all padding)."""
    seed_everything(params["seed"])
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    train_gen, valid_gen = make_loaders(feature_map, params, "train")
    if blind:
        for loader in (train_gen, valid_gen):
            loader.tensors["item_seq"] = torch.zeros_like(loader.tensors["item_seq"])
    trainer = Trainer(model, TrainingOptions.from_params(dict(params, epochs=1)),
                      RunContext(model.checkpoint))
    trainer.fit(train_gen, valid_gen)
    return trainer.evaluate(valid_gen)["AUC"]


@pytest.mark.slow
def test_one_epoch_beats_a_history_blind_model(params, tiny_data):
    _, summary = tiny_data
    with_history = _train_one_epoch(params, blind=False)
    blind = _train_one_epoch(params, blind=True)
    ceiling = summary["best_auc"]["valid"]
    assert with_history > blind + 0.02, (with_history, blind)
    assert 0.5 < blind < with_history <= ceiling + 0.01
