"""Every model of src/models on tiny generated data: padding, masks, permutations, checkpoints,
learning, configs (each model's own parts: test_model_parts.py; shared helpers:
model_helpers.py).

Logits are compared with logits_close after spread_output (tests/numerics.py), never
probabilities with absolute tolerances; each invariance has a counterpart showing that the
comparison sees a real change.
"""
import math

import pandas as pd
import pytest
import torch
import yaml
from fuxictr.pytorch.torch_utils import seed_everything
from torch.nn import functional as F

from src.data.features import build_feature_map
from src.errors import ConfigError
from src.experiment import build_model
from src.models import available_models
from src.training.checkpoints import load_weights, save_weights
from src.training.options import TrainingOptions
from src.training.trainer import Trainer

from .model_helpers import (HISTORY_BLIND, MODEL_BLOCKS, TASK2, UNBOUNDED, block_params, logits,
                            make_model, short_history_rows, valid_batch, with_history)
from .numerics import logits_close


def change_padding_contents(model):
    """Give the padding item (id 0) non-zero contents: its item-table row and its item_id
    embedding. (Row 0 of other embedding tables is not the padding item's: tag id 0 pads the
    tag lists of real items, a level 0 may be a real level.)"""
    table = model.item_table
    for name in table.names:
        values = getattr(table, name)
        values[0] = 3.0 if values.is_floating_point() else 7
    with torch.no_grad():
        model.embedding_layer.embedding_layer.embedding_layers["item_id"].weight[0] = 1.0


def spaced_out(history):
    """The same real items in the same order, with a padded position between any two:
    histories of up to 32 items, right-aligned, every other position."""
    spaced = torch.zeros_like(history)
    for row in range(history.shape[0]):
        items = history[row][history[row] > 0][-32:]
        if len(items):
            spaced[row, -2 * len(items) + 1::2] = items
    return spaced


@pytest.fixture(scope="module", params=sorted(MODEL_BLOCKS))
def model_name(request):
    return request.param


@pytest.fixture(scope="module")
def params(dataset, model_name):
    return block_params(dataset, MODEL_BLOCKS[model_name])


@pytest.fixture(scope="module")
def batch(params):
    return valid_batch(params)


def test_every_model_is_tested():
    assert set(MODEL_BLOCKS) == set(available_models())


# ---- padding, masks, permutations ----
def test_padding_contents_do_not_change_outputs(params, batch, model_name):
    model = make_model(params, batch=batch)
    assert (batch["item_seq"] == 0).any(), "tiny data should have padded histories"
    before = logits(model, batch)
    change_padding_contents(model)
    assert logits_close(before, logits(model, batch))

    # ...while changing one real history item changes its rows' scores
    history = batch["item_seq"]
    rows = (history[:, -1] > 0).nonzero().reshape(-1)
    changed = history.clone()
    changed[rows, -1] = history[rows, -1] % (model.item_table.num_items - 1) + 1
    after = logits(model, with_history(batch, changed))[rows]
    if model_name in HISTORY_BLIND:
        assert torch.equal(before[rows], after)
    else:
        assert not logits_close(before[rows], after)


def test_padded_positions_do_not_change_outputs(params, batch, item_table):
    model = make_model(params, item_table=item_table, batch=batch)
    before = logits(model, batch)
    history = batch["item_seq"]
    longest = int((history > 0).sum(1).max())
    assert longest < history.shape[1], "some padding column should be common to all rows"
    # fewer padded positions: drop the columns that are padding in every row
    assert logits_close(before, logits(model, with_history(batch, history[:, -longest:])))
    # padding moved between the items
    spaced = spaced_out(history)
    short = (history > 0).sum(1) <= 32
    assert logits_close(before[short], logits(model, with_history(batch, spaced))[short])


def inverted_mask(cls):
    """The model class with padding taken for items and items for padding."""
    return type(f"Inverted{cls.__name__}", (cls,), {"is_real": staticmethod(lambda h: h == 0)})


def test_an_inverted_mask_makes_padding_change_outputs(params, batch, model_name):
    """The padding tests above can fail: with the mask inverted, they do (except for a
    history-blind model, which reads no history, padding or not)."""
    model = make_model(params, cls=inverted_mask(available_models()[model_name]), batch=batch)
    before = logits(model, batch)
    change_padding_contents(model)
    after = logits(model, batch)
    assert torch.isfinite(before).all()
    if model_name not in UNBOUNDED:
        assert torch.isfinite(after).all()
    finite = torch.isfinite(after)
    if model_name in HISTORY_BLIND:  # the mask is never used: no history item is looked up
        assert torch.equal(before, after)
    else:
        assert finite.any() and not logits_close(before[finite], after[finite])


def test_rows_without_history_score_finite_and_see_their_target(params, batch, item_table):
    model = make_model(params, item_table=item_table, batch=batch)
    empty = with_history(batch, torch.zeros_like(batch["item_seq"]))
    scores = logits(model, empty)
    assert torch.isfinite(scores).all()
    other_targets = dict(empty, item_id=batch["item_id"].roll(1))
    assert not logits_close(scores, logits(model, other_targets))



def test_a_rows_score_does_not_depend_on_the_other_rows_of_its_batch(params, batch, item_table):
    """Short histories alone, and beside long ones (more padding for them in a dense layout)."""
    model = make_model(params, item_table=item_table, batch=batch)
    rows = short_history_rows(batch)
    alone = logits(model, {name: values[rows] for name, values in batch.items()})
    assert logits_close(logits(model, batch)[rows], alone)


def test_a_permuted_batch_permutes_the_outputs(params, batch, item_table):
    model = make_model(params, item_table=item_table, batch=batch)
    order = torch.randperm(len(batch["item_id"]), generator=torch.Generator().manual_seed(0))
    permuted = {name: values[order] for name, values in batch.items()}
    assert logits_close(logits(model, batch)[order], logits(model, permuted))


# ---- checkpoints and learning ----
def test_save_and_load_give_identical_predictions(params, batch, item_table, tmp_path):
    model = make_model(params, item_table=item_table, batch=batch)
    path = str(tmp_path / "model.model")
    save_weights(model, path)
    fresh = make_model(params, seed=2, item_table=item_table, batch=batch)
    assert not logits_close(logits(model, batch), logits(fresh, batch))
    load_weights(fresh, path)
    assert torch.equal(logits(model, batch), logits(fresh, batch))


def bce(model, batch):
    model.eval()
    with torch.no_grad():
        logit = model.scores(batch)[0]
    return F.binary_cross_entropy_with_logits(logit, model.get_labels(batch)).item()


def test_a_few_training_steps_lower_the_loss_on_their_batch(params, batch, item_table):
    seed_everything(3)
    model = build_model(params, build_feature_map(params), item_table=item_table)
    before = bce(model, batch)
    model.train()
    trainer = Trainer(model, TrainingOptions.from_params(params))
    for _ in range(5):
        trainer.train_step(batch)
    after = bce(model, batch)
    assert after < 0.9 * before, (before, after)


def test_bf16_autocast_trains_and_scores_in_float32(params, batch, item_table):
    seed_everything(3)
    model = build_model(dict(params, amp_bf16=True), build_feature_map(params),
                        item_table=item_table)
    model.train()
    assert math.isfinite(Trainer(model, TrainingOptions.from_params(params)).train_step(batch))
    logit, _ = model.eval().scores(batch)
    assert logit.dtype == torch.float32 and torch.isfinite(logit).all()


# ---- configs ----
def config_blocks():
    with open(TASK2 / "model_config.yaml") as f:
        return [name for name in yaml.safe_load(f) if name != "Base"]


@pytest.mark.parametrize("block", config_blocks())
def test_every_config_block_builds_and_scores(dataset, item_table, block):
    params = block_params(dataset, block)
    seed_everything(0)
    model = build_model(params, build_feature_map(params), item_table=item_table)
    model.count_parameters()
    assert sum(p.numel() for p in model.parameters()) > 0
    with torch.no_grad():
        assert torch.isfinite(model.eval().scores(valid_batch(params, 64))[0]).all()


@pytest.mark.parametrize("model_name,key", [("TransformerDCN", "transformer_heads"),
                                            ("QIN", "attention_heads"),
                                            ("DINCrossAttention", "cross_attention_heads"),
                                            ("TransformerConcatDCN", "transformer_heads")])
def test_a_head_count_that_does_not_divide_the_width_is_a_config_error(dataset, item_table,
                                                                      model_name, key):
    params = block_params(dataset, MODEL_BLOCKS[model_name], **{key: 7})
    with pytest.raises(ConfigError, match=f"{key}=7"):
        build_model(params, build_feature_map(params), item_table=item_table)


@pytest.mark.parametrize("model_name", sorted(MODEL_BLOCKS))
def test_an_unknown_user_id_scores_without_error(dataset, item_table, model_name):
    """user_id embedded with a vocabulary of 100 ids and an out-of-vocabulary row: the tiny
    data's users go up to 12,000, so most rows hold unknown users. They score, and any two
    unknown ids score alike (one shared row), while a known id scores differently."""
    feature_cols = [c for c in dataset["feature_cols"] if c["name"] != "user_id"] + [
        {"name": "user_id", "active": True, "dtype": "int", "type": "categorical",
         "vocab_size": 100, "oov": True}]
    params = block_params(dict(dataset, feature_cols=feature_cols), MODEL_BLOCKS[model_name])
    batch = valid_batch(params)
    assert (batch["user_id"] == 99).float().mean() > 0.9  # the loader mapped them to row 99
    model = make_model(params, item_table=item_table, batch=batch)
    user_table = model.embedding_layer.embedding_layer.embedding_layers["user_id"].weight
    with torch.no_grad():
        user_table.normal_(0, 1)  # as visible as trained embeddings would be
    before = logits(model, batch)
    assert torch.isfinite(before).all()
    unknown = dict(batch, user_id=torch.full_like(batch["user_id"], 99))
    known = dict(batch, user_id=torch.full_like(batch["user_id"], 5))
    rows = batch["user_id"] == 99
    assert logits_close(before[rows], logits(model, unknown)[rows])
    assert not logits_close(before[rows], logits(model, known)[rows])


def test_extra_row_and_item_features_are_used_by_every_model(dataset, tmp_path):
    """user_id as an embedded row feature and an item-side level column of item_info, declared
    only in the dataset config, reach every model's output."""
    item_info = pd.read_parquet(dataset["item_info"])
    item_info["item_level"] = (item_info["item_id"] % 10 + 1).where(item_info["item_id"] > 0, 0)
    item_info_path = tmp_path / "item_info.parquet"
    item_info.to_parquet(item_info_path)
    users = int(pd.read_parquet(dataset["valid_data"], columns=["user_id"])["user_id"].max()) + 1
    feature_cols = [c for c in dataset["feature_cols"] if c["name"] != "user_id"] + [
        {"name": "user_id", "active": True, "dtype": "int", "type": "categorical",
         "vocab_size": users},
        {"name": "item_level", "active": True, "dtype": "int", "type": "categorical",
         "vocab_size": 11, "source": "item"}]
    extended = dict(dataset, item_info=str(item_info_path), feature_cols=feature_cols)
    for model_name, block in sorted(MODEL_BLOCKS.items()):
        params = block_params(extended, block)
        batch = valid_batch(params)
        model = make_model(params, batch=batch)
        assert "user_id" in model.row_feature_names and "item_level" in model.item_feature_names
        # embeddings start at std 1e-4; make the new ones as visible as trained ones would be
        layers = model.embedding_layer.embedding_layer.embedding_layers
        with torch.no_grad():
            for name in ("user_id", "item_level"):
                layers[name].weight[1:].normal_(generator=torch.Generator().manual_seed(0))
        before = logits(model, batch)
        other_users = dict(batch, user_id=batch["user_id"].roll(1))
        assert not logits_close(before, logits(model, other_users)), model_name
        levels = model.item_table.item_level
        levels[1:] = levels[1:] % 10 + 1
        assert not logits_close(before, logits(model, batch)), model_name
