"""Each model's own parts on tiny generated data, against the computations they replace or the
published operators: the DIN's split attention, the sparse target attention, the Transformer's
mask and length buckets, the interest tower, FlatQIN, TransformerConcatDCN and TargetDCN.
(What every model must do: test_models.py; shared helpers: model_helpers.py.)

Logits are compared with logits_close after spread_output (tests/numerics.py), never
probabilities with absolute tolerances; each invariance has a counterpart showing that the
comparison sees a real change.
"""
import math

import pytest
import torch
from fuxictr.pytorch.layers import MultiHeadTargetAttention
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import seed_everything
from torch.nn import functional as F

from src.data.features import build_feature_map
from src.errors import ConfigError
from src.experiment import build_model
from src.models import available_models
from src.models.attention import SparseTargetAttention

from .model_helpers import (MODEL_BLOCKS, block_params, logits, make_model, short_history_rows,
                            valid_batch, with_history)
from .numerics import logits_close


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
