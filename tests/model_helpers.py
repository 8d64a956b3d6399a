"""What the model tests share (test_models.py, test_model_parts.py): the CPU-sized block of
every model class and its params on the tiny data (the fixture `dataset` of conftest.py), a
batch, a model with its logits spread over (0, 1).
"""
import torch
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import load_model_config
from torch import nn

from src.data.features import build_feature_map
from src.data.loader import MMCTRDataLoader
from src.experiment import build_model

from .conftest import REPO
from .numerics import spread_output

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
# items of constant 3.0 (test_models.change_padding_contents) read as history overflow some
# rows' logits.
UNBOUNDED = {"FlatQIN"}
BATCH = 256


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


def short_history_rows(batch, longest=4):
    """Rows with 1..longest history items: alone, they make a batch `longest` positions wide."""
    lengths = (batch["item_seq"] > 0).sum(1)
    rows = ((lengths > 0) & (lengths <= longest)).nonzero().reshape(-1)
    assert len(rows) > 10 and lengths.max() > 2 * longest
    return rows
