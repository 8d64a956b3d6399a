"""Every model of src/models on tiny generated data: padding, masks, permutations, checkpoints,
learning, configs; and the split DIN attention and sparse target attention against the
concatenated / dense computations they replace.

Logits are compared with logits_close after spread_output (tests/numerics.py), never
probabilities with absolute tolerances; each invariance has a counterpart showing that the
comparison sees a real change.
"""
import math

import pandas as pd
import pytest
import torch
import yaml
from fuxictr.pytorch.layers import MultiHeadTargetAttention
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import load_model_config
from torch import nn
from torch.nn import functional as F

from src.data.features import build_feature_map
from src.data.item_table import ItemTable
from src.data.loader import MMCTRDataLoader
from src.errors import ConfigError
from src.experiment import build_model
from src.models import available_models
from src.models.attention import SparseTargetAttention
from src.training.checkpoints import load_weights, save_weights
from src.training.options import TrainingOptions
from src.training.trainer import Trainer

from .conftest import REPO, write_tuner_config
from .numerics import logits_close, spread_output

TASK2 = REPO / "config" / "task2_config"
# one CPU-sized block per model class; test_every_model_is_tested keeps this list complete
MODEL_BLOCKS = {"DIN": "DIN_default_cpu", "TransformerDCN": "TransformerDCN_cpu",
                "QIN": "QIN_cpu", "DINCrossAttention": "DINCrossAttention_cpu",
                "DINInterest": "DINInterest_cpu", "CosineInterest": "CosineInterest_cpu",
                "FlatQIN": "FlatQIN_cpu", "TransformerConcatDCN": "TransformerConcatDCN_cpu",
                "TargetDCN": "TargetDCN_cpu"}
# models that never read the history: where a test shows that a history change moves the
# others' scores, theirs must stay bit-identical (a model that reads the history fails that)
HISTORY_BLIND = {"TargetDCN"}
# FlatQIN, as published, bounds nothing before its products: ReLU attention weights are not
# normalised and x * h is normalised only after the product, by batch norm. Untrained, in
# eval mode (batch norm with its initial statistics: none) its logits reach 1e31, so
# make_model gives its batch norms the statistics of the batch first; and dozens of padding
# items of constant 3.0 (change_padding_contents) read as history overflow some rows' logits.
UNBOUNDED = {"FlatQIN"}
BATCH = 256


@pytest.fixture(scope="module")
def dataset(tiny_data, tmp_path_factory):
    """The demo dataset block pointed at the tiny data, and a folder for checkpoints."""
    folder = tmp_path_factory.mktemp("models")
    data_dir, _ = tiny_data
    with open(write_tuner_config(folder, data_dir)) as f:
        block = yaml.safe_load(f)["dataset_config"]["MicroLens_tiny_x1"]
    return dict(block, dataset_id="MicroLens_tiny_x1", model_root=str(folder / "checkpoints"))


@pytest.fixture(scope="module")
def item_table(dataset):
    return ItemTable.from_parquet(dataset["item_info"], build_feature_map(dict(dataset)))


def block_params(dataset, block, **overrides):
    params = load_model_config(str(TASK2), block)
    params.update(dataset)
    params.update(verbose=0, gpu=-1, **overrides)
    return params


def valid_batch(params, n=BATCH):
    loader = MMCTRDataLoader(build_feature_map(params), params["valid_data"], split="valid",
                             batch_size=n)
    return next(iter(loader))


def make_model(params, seed=1, cls=None, item_table=None, batch=None):
    """A model with its logits spread over (0, 1) on batch, in eval mode. item_table may be
    shared (read-only tests) or None (the model reads its own, for tests that change it)."""
    seed_everything(seed)
    feature_map = build_feature_map(params)
    if cls is None:
        model = build_model(params, feature_map, item_table=item_table)
    else:
        model = cls(feature_map, item_table=item_table, **params)
    batch = batch if batch is not None else valid_batch(params)
    if UNBOUNDED & {c.__name__ for c in type(model).__mro__}:
        batch_norm_statistics(model, batch)
    spread_output(model, batch)
    return model.eval()


def batch_norm_statistics(model, batch):
    """Set every batch norm's running statistics to those of batch (one training-mode pass),
    as training leaves them for its data, instead of the initial mean 0 and variance 1."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative mean: after one batch, that batch's statistics
    with torch.no_grad():
        model.train().scores(batch)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def logits(model, batch):
    with torch.no_grad():
        return model.scores(batch)[0].reshape(-1)


def with_history(batch, history):
    return dict(batch, item_seq=history)


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


def short_history_rows(batch, longest=4):
    """Rows with 1..longest history items: alone, they make a batch `longest` positions wide."""
    lengths = (batch["item_seq"] > 0).sum(1)
    rows = ((lengths > 0) & (lengths <= longest)).nonzero().reshape(-1)
    assert len(rows) > 10 and lengths.max() > 2 * longest
    return rows


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


# ---- the DIN's split attention ----
@pytest.fixture(scope="module")
def din_pair(dataset, item_table):
    """The baseline-sized DIN computed with the split and with the concatenated attention MLP
    (same weights), and a batch."""
    params = block_params(dataset, "DIN_default")
    batch = valid_batch(params)
    split = make_model(params, item_table=item_table, batch=batch)
    concat = make_model(dict(params, split_attention=False), item_table=item_table, batch=batch)
    concat.load_state_dict(split.state_dict())
    return split, concat, batch


def test_split_din_attention_equals_the_concatenation(din_pair):
    split, concat, batch = din_pair
    assert split.split_attention and not concat.split_attention
    assert logits_close(logits(split, batch), logits(concat, batch))


def test_split_din_attention_comparison_fails_when_one_side_changes(din_pair):
    split, concat, batch = din_pair
    first = concat.attention_layers.attention_layer.mlp[0]
    d = concat.item_dim
    saved = first.weight.detach().clone()
    try:
        with torch.no_grad():  # only the product block W4, 1% larger
            first.weight[:, 3 * d:].mul_(1.01)
        assert not logits_close(logits(split, batch), logits(concat, batch))
    finally:
        with torch.no_grad():
            first.weight.copy_(saved)


def test_din_checkpoint_keys_are_fuxictr_dins(din_pair):
    """Checkpoints stay interchangeable with the baseline's DIN: the same parameter names."""
    split, _, _ = din_pair
    keys = set(split.state_dict())
    assert {"attention_layers.attention_layer.mlp.0.weight", "dnn.mlp.0.weight",
            "embedding_layer.embedding_layer.embedding_layers.item_id.weight"} <= keys
    assert all(k.split(".")[0] in ("embedding_layer", "attention_layers", "dnn") for k in keys)
    assert split.attention_layers.attention_layer.mlp[0].weight.shape[1] == 4 * split.item_dim


# ---- sparse target attention against FuxiCTR's dense MultiHeadTargetAttention ----
def sparse_and_dense_inputs(seed=0, rows=6, width=5, dim=8, items=12):
    """Random item vectors, a history per row (some rows empty), and both layouts of it."""
    generator = torch.Generator().manual_seed(seed)
    item_emb = torch.randn(items, dim, generator=generator)
    query = torch.randn(rows, dim, generator=generator)
    slots = torch.randint(0, items, (rows, width), generator=generator)
    real = torch.rand(rows, width, generator=generator) < 0.6
    real[0] = False  # a row with no history
    row, col = real.nonzero(as_tuple=True)
    dense = item_emb[slots] * real.unsqueeze(-1)
    return query, item_emb, slots[row, col], row, dense, real


@pytest.mark.parametrize("scores", ["softmax", "relu"])
def test_sparse_target_attention_equals_the_dense_computation(scores):
    query, item_emb, history_slot, history_row, dense, real = sparse_and_dense_inputs()
    seed_everything(0)
    attention = SparseTargetAttention(8, 8, num_heads=2, scores=scores)
    sparse = attention.attend(query, item_emb, history_slot, history_row)
    if scores == "softmax":  # FuxiCTR's own layer, padded positions masked
        expected = MultiHeadTargetAttention.forward(attention, query, dense, real)
    else:  # ReLU scores as weights, written out densely
        q = attention.W_q(query).view(6, 1, 2, 4)
        k = attention.W_k(dense).view(6, 5, 2, 4)
        v = attention.W_v(dense).view(6, 5, 2, 4)
        weights = torch.relu((q * k).sum(-1) / attention.scale) * real.unsqueeze(-1)
        expected = attention.W_o((weights.unsqueeze(-1) * v).sum(1).reshape(6, 8))
    assert logits_close(sparse, expected)
    # the comparison sees one history item moved to another row
    moved = history_row.clone()
    moved[-1] = 0
    assert not logits_close(attention.attend(query, item_emb, history_slot, moved), expected)


# ---- the Transformer's mask and length buckets ----
def test_transformer_with_the_first_place_inverted_key_padding_mask_breaks(dataset, batch_dcn):
    """1st place passed "1 = real item" as src_key_padding_mask (True = ignore), so the encoder
    attended to padding only: scores then depend on how much padding the batch adds (ours do
    not: test_a_rows_score_does_not_depend_on_the_other_rows_of_its_batch), and a row whose
    sequence has no padding at all gets NaN."""
    cls = available_models()["TransformerDCN"]
    buggy = type("FirstPlaceMaskTransformerDCN", (cls,),
                 {"key_padding_mask": staticmethod(lambda sequence_real: sequence_real)})
    params = block_params(dataset, MODEL_BLOCKS["TransformerDCN"], length_buckets=1)
    ours = make_model(params, batch=batch_dcn)
    model = buggy(build_feature_map(params), item_table=ours.item_table, **params).eval()
    model.load_state_dict(ours.state_dict())  # the same weights, only the mask differs
    rows = short_history_rows(batch_dcn)
    alone = logits(model, {name: values[rows] for name, values in batch_dcn.items()})
    together = logits(model, batch_dcn)[rows]
    finite = torch.isfinite(alone) & torch.isfinite(together)
    assert not finite.all() and finite.any()
    assert not logits_close(alone[finite], together[finite])


@pytest.fixture(scope="module")
def batch_dcn(dataset):
    return valid_batch(block_params(dataset, MODEL_BLOCKS["TransformerDCN"]))


@pytest.mark.parametrize("model_name", ["TransformerDCN", "TransformerConcatDCN"])
def test_length_buckets_do_not_change_transformer_outputs(dataset, item_table, batch_dcn,
                                                          model_name):
    params = block_params(dataset, MODEL_BLOCKS[model_name], length_buckets=1)
    one = make_model(params, item_table=item_table, batch=batch_dcn)
    four = make_model(dict(params, length_buckets=4), item_table=item_table, batch=batch_dcn)
    four.load_state_dict(one.state_dict())
    assert logits_close(logits(one, batch_dcn), logits(four, batch_dcn))


# ---- the interest tower (DINInterest, CosineInterest) ----
@pytest.mark.parametrize("model_name", ["DINInterest", "CosineInterest"])
def test_the_tower_scores_the_scaled_cosine_of_target_and_history_content(dataset, item_table,
                                                                           model_name):
    """The sparse computation against the formula on the padded (batch, max_len) grid:
    scale * cosine(P c_target, sum of P c_h over real history items) + content bias. The
    comparison sees a change: without the normalisation the figures differ."""
    params = block_params(dataset, MODEL_BLOCKS[model_name])
    batch = valid_batch(params)
    model = make_model(params, item_table=item_table, batch=batch)
    tower = model.interest
    with torch.no_grad():
        sparse = model.prepare_items(batch)
        item_emb, target_emb = model.embed_item_batch(sparse)
        _, score = tower(item_emb, sparse)
        history, target = model.history_and_target(batch)
        content = model.embed_items(history)[..., tower.columns]
        taste = (tower.projection(content) * (history > 0).unsqueeze(-1)).sum(1)
        target_content = model.embed_items(target)[..., tower.columns]
        projected = tower.projection(target_content)
        bias = tower.content_score(target_content).reshape(-1)
        expected = tower.scale * F.cosine_similarity(projected, taste, dim=-1) + bias
        unnormalised = tower.scale * (projected * taste).sum(-1) + bias
    assert (history > 0).any(1).all(), "every valid row of the tiny data has history"
    assert logits_close(score.reshape(-1), expected)
    assert not logits_close(score.reshape(-1), unnormalised)


def test_the_tower_reads_the_embedding_features_or_the_listed_ones(dataset, item_table):
    params = block_params(dataset, MODEL_BLOCKS["CosineInterest"])
    model = make_model(params, item_table=item_table)
    embedding_dims = [dim for name, dim in zip(model.item_feature_names, model.item_field_dims)
                      if model.feature_map.features[name]["type"] == "embedding"]
    assert len(model.interest.columns) == sum(embedding_dims) > 0
    listed = make_model(dict(params, interest_features=["item_id"]), item_table=item_table)
    assert len(listed.interest.columns) == params["embedding_dim"]
    with pytest.raises(ConfigError, match="interest_features: user_id is not an item-side"):
        make_model(dict(params, interest_features=["user_id"]), item_table=item_table)


def test_the_interest_tower_is_penalised_by_its_own_regularizer(dataset, item_table):
    """With interest_regularizer equal to net_regularizer the penalty is FuxiCTR's; with 0 it
    is FuxiCTR's less the tower's L2 term (and that difference is large enough to see)."""
    params = block_params(dataset, MODEL_BLOCKS["DINInterest"], net_regularizer=0.01,
                          embedding_regularizer=1e-4, interest_regularizer=0.01)
    seed_everything(0)
    model = build_model(params, build_feature_map(params), item_table=item_table)
    fuxictr = BaseModel.regularization_loss(model).item()
    assert math.isclose(model.regularization_loss().item(), fuxictr, rel_tol=1e-5)

    model.interest_regularizer = 0
    tower = sum(w.square().sum() for w in model.interest.parameters()).item()
    assert 0.01 / 2 * tower > 1e-3 * fuxictr
    assert math.isclose(model.regularization_loss().item(), fuxictr - 0.01 / 2 * tower,
                        rel_tol=1e-5)


# ---- the published-recipe models (FlatQIN, TransformerConcatDCN, TargetDCN) ----
def flat_qin_by_hand(model, batch, ranks=None):
    """FlatQIN's logits from the published formulas on the padded (batch, max_len) grid:
    interest = t + W_o(sum_j relu(q . k_j / sqrt(2 item_dim)) v_j) over the real positions j,
    x = [rows, t, interest], then per layer x + PReLU(BN(x * sum_r (W_r x + b_r))) (eval
    mode: dropout off, BN with its running statistics), then the output layer. ranks: the
    maps r to sum (default all)."""
    attention = model.target_attention
    history, target = model.history_and_target(batch)
    items, t = model.embed_items(history), model.embed_items(target)
    q, k, v = attention.W_q(t), attention.W_k(items), attention.W_v(items)
    weights = torch.relu((q.unsqueeze(1) * k).sum(-1) / math.sqrt(2 * model.item_dim))
    weights = weights * (history > 0)
    interest = t + attention.W_o((weights.unsqueeze(-1) * v).sum(1))
    x = torch.cat([model.embed_rows(batch), t, interest], dim=-1)
    for layer in model.interaction_layers:
        rank, width = layer.rank, x.shape[1]
        maps = layer.maps.weight.view(rank, width, width)
        biases = layer.maps.bias.view(rank, width)
        h = sum(x @ maps[r].T + biases[r] for r in (ranks or range(rank)))
        z, norm = x * h, layer.norm
        z = (z - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight \
            + norm.bias
        x = x + torch.where(z >= 0, z, layer.activation.weight * z)
    return model.output(x).reshape(-1)


def test_flat_qin_is_the_published_operator(dataset, item_table):
    """One ReLU head twice the item vector wide, flat quadratic layers summing qin_rank maps,
    one linear output: the model's logits equal the formulas computed by hand, and the
    comparison fails when the hand side leaves out one of the maps."""
    params = block_params(dataset, MODEL_BLOCKS["FlatQIN"])
    batch = valid_batch(params)
    model = make_model(params, item_table=item_table, batch=batch)
    assert model.target_attention.num_heads == 1
    assert model.target_attention.W_q.out_features == 2 * model.item_dim
    assert len(model.interaction_layers) == params["qin_layers"] == 4
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # batch norm statistics and PReLU slopes away from their defaults
        for layer in model.interaction_layers:
            layer.norm.running_mean.normal_(0, 0.1, generator=generator)
            layer.norm.running_var.uniform_(0.5, 2, generator=generator)
            layer.norm.weight.uniform_(0.5, 2, generator=generator)
            layer.activation.weight.fill_(0.1)
        expected = flat_qin_by_hand(model, batch)
        fewer_maps = flat_qin_by_hand(model, batch, ranks=range(params["qin_rank"] - 1))
    assert (batch["item_seq"] > 0).any(1).all(), "every valid row of the tiny data has history"
    assert logits_close(logits(model, batch), expected)
    assert not logits_close(logits(model, batch), fewer_maps)


def test_a_bad_qin_rank_is_a_config_error_before_any_run(dataset, item_table):
    from src.tuning.values import problem
    assert problem("qin_rank", 3) is None and problem("length_buckets", 8) is None
    assert problem("qin_rank", 0) and problem("qin_rank", 2.5) and problem("length_buckets", 0)
    params = block_params(dataset, MODEL_BLOCKS["FlatQIN"], qin_rank=0)
    with pytest.raises(ConfigError, match="qin_rank=0"):
        build_model(params, build_feature_map(params), item_table=item_table)


def test_concat_transformer_with_an_inverted_key_padding_mask_breaks(dataset, item_table,
                                                                     batch_dcn):
    """With the 1st place's "True = real item" as the key padding mask, real positions attend
    to padding only, so a row's score depends on the padding its batch adds: short histories
    alone (some then have no padding) score differently than beside long ones. With ours they
    score the same."""
    cls = available_models()["TransformerConcatDCN"]
    buggy = type("FirstPlaceMaskTransformerConcatDCN", (cls,),
                 {"key_padding_mask": staticmethod(lambda real: real)})
    params = block_params(dataset, MODEL_BLOCKS["TransformerConcatDCN"], length_buckets=1)
    ours = make_model(params, item_table=item_table, batch=batch_dcn)
    model = buggy(build_feature_map(params), item_table=item_table, **params).eval()
    model.load_state_dict(ours.state_dict())  # the same weights, only the mask differs
    rows = short_history_rows(batch_dcn)
    short = {name: values[rows] for name, values in batch_dcn.items()}
    for scored, invariant in ((ours, True), (model, False)):
        alone, together = logits(scored, short), logits(scored, batch_dcn)[rows]
        assert torch.isfinite(alone).all() and torch.isfinite(together).all()
        assert logits_close(alone, together) == invariant, scored


def test_concat_transformer_sees_the_target_at_every_position(dataset, item_table, batch_dcn):
    """Each position is [history item, target]. With the attention's output projection zeroed
    no position sees another (changing one history item then changes only its own position's
    output), yet changing the target changes the output at every real position: the target
    is part of each position, not a separate token."""
    params = block_params(dataset, MODEL_BLOCKS["TransformerConcatDCN"], length_buckets=1)
    model = make_model(params, item_table=item_table, batch=batch_dcn)
    with torch.no_grad():
        for layer in model.encoder_layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
        prepared = model.prepare_items(batch_dcn, dense=True)
        item_emb, _ = model.embed_item_batch(prepared)
        projected = model.item_projection(item_emb)
        cells, real = model.dense_history(projected, prepared), prepared["dense_real"]
        target = projected.index_select(0, prepared["target_slot"])
        before = model.encoder_outputs(cells, real, target)
        other_target = model.encoder_outputs(cells, real, target.roll(1, 0))
        other_item = cells.clone()
        other_item[:, -1] = cells[:, -1].roll(1, 0)  # the most recent item of every row
        other_last = model.encoder_outputs(other_item, real, target)
    targets = batch_dcn["item_id"]
    rows = (targets != targets.roll(1)).nonzero().reshape(-1).tolist()
    positions = [(r, c) for r in rows for c in real[r].nonzero().reshape(-1).tolist()]
    assert len(positions) > 100
    assert all(not logits_close(before[r, c], other_target[r, c]) for r, c in positions)
    older = [(r, c) for r, c in positions if c < real.shape[1] - 1]
    assert older and all(logits_close(before[r, c], other_last[r, c]) for r, c in older)
    changed = [r for r in rows if real[r, -1] and not torch.equal(cells[r, -1], other_item[r, -1])]
    assert changed and all(not logits_close(before[r, -1], other_last[r, -1]) for r in changed)


@pytest.mark.parametrize("model_name,blind", [("TargetDCN", True), ("DIN", False)])
def test_target_dcn_scores_are_blind_to_the_history(dataset, item_table, model_name, blind):
    """TargetDCN's scores are bit-identical under any change of the history (none at all,
    another row's, other items, fewer positions); the same comparisons see the history of a
    model that reads it (DIN)."""
    params = block_params(dataset, MODEL_BLOCKS[model_name])
    batch = valid_batch(params)
    model = make_model(params, item_table=item_table, batch=batch)
    before = logits(model, batch)
    history = batch["item_seq"]
    other_items = (history % (model.item_table.num_items - 1) + 1) * (history > 0)
    for other in (torch.zeros_like(history), history.roll(1, 0), other_items, history[:, -3:]):
        assert torch.equal(before, logits(model, with_history(batch, other))) == blind
