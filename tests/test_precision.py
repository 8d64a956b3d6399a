"""bfloat16 autocast (amp_bf16: True) never reaches scores or the loss, for every model.

Under autocast a bfloat16 probability (8 bits of mantissa) turns a confidently wrong sample
into p = 1.0, whose binary cross-entropy clamps at 100 with a zero gradient, and turns the
scores of a validation split into ties. Each test also computes the broken path (the
probability rounded to bfloat16) to show it would fail there.
"""
import pandas as pd
import pytest
import torch
from fuxictr.pytorch.torch_utils import seed_everything
from torch.nn import functional as F

from src.data.features import build_feature_map
from src.data.loader import MMCTRDataLoader
from src.experiment import build_model
from src.training.evaluation import predict

from .numerics import spread_output
from .model_helpers import (HISTORY_BLIND, MODEL_BLOCKS, UNBOUNDED, batch_norm_statistics,
                            block_params)


def bf16_model(dataset, item_table, model_name):
    params = block_params(dataset, MODEL_BLOCKS[model_name], amp_bf16=True)
    seed_everything(4)
    return build_model(params, build_feature_map(params), item_table=item_table), params


@pytest.mark.parametrize("model_name", sorted(MODEL_BLOCKS))
def test_a_confident_mistake_keeps_its_loss_and_gradient(dataset, item_table,
                                                         model_name):
    model, params = bf16_model(dataset, item_table, model_name)
    loader = MMCTRDataLoader(build_feature_map(params), params["valid_data"], split="valid",
                             batch_size=256)
    batch = next(iter(loader))
    batch = dict(batch, label=torch.zeros_like(batch["label"]))  # every row a non-click
    spread_output(model, batch, target_std=1.0)
    model.train()
    with torch.no_grad():  # push every logit to about +9: confidently wrong
        logit = model.scores(batch)[0]
        model.output_layer().bias.add_(9.0 - logit.mean())
    logit, prob = model.scores(batch)
    assert prob.dtype == torch.float32 and (prob < 1).all()
    loss = F.binary_cross_entropy_with_logits(logit, batch["label"].view(-1, 1))
    assert 7 < loss.item() < 11
    model.zero_grad()
    model.batch_loss(batch).backward()
    assert model.output_layer().bias.grad.abs().item() > 0.5  # d loss / d bias = mean p - 0

    # the broken path: the probability rounded to bfloat16 saturates at 1, clamps, no gradient
    rounded = torch.sigmoid(logit.detach().requires_grad_()).bfloat16().float()
    assert (rounded == 1).float().mean() > 0.9
    assert F.binary_cross_entropy(rounded, batch["label"].view(-1, 1)).item() > 50


@pytest.mark.parametrize("model_name", sorted(MODEL_BLOCKS))
def test_validation_scores_stay_distinct(dataset, item_table, model_name):
    model, params = bf16_model(dataset, item_table, model_name)
    loader = MMCTRDataLoader(build_feature_map(params), params["valid_data"], split="valid",
                             batch_size=1000)
    first = next(iter(loader))
    if model_name in UNBOUNDED:  # batch norm statistics as after training (model_helpers)
        batch_norm_statistics(model, first)
    spread_output(model, first)  # scores over (0, 1), as after training
    scores = torch.from_numpy(predict(model, loader, progress_desc=None))
    assert len(scores) == 5000
    # distinct inputs: a history-blind model sees only the target and the row features
    columns = ["item_id", "likes_level", "views_level"] + (
        [] if model_name in HISTORY_BLIND else ["user_id", "item_seq"])
    valid = pd.read_parquet(params["valid_data"], columns=columns)
    distinct = len(valid.astype(str).drop_duplicates())
    assert scores.unique().numel() / distinct > 0.95
    # the broken path: rounded to bfloat16, most distinct scores become ties
    broken = scores.to(torch.bfloat16)
    assert broken.unique().numel() < 0.5 * scores.unique().numel()
