"""A feature's own embedding_regularizer (src/models/regularizer.py): the penalty equals a hand
computation with FuxiCTR's formula, composes with the interest tower's regulariser, and bad
values are ConfigErrors before training."""
import pytest
import torch
import yaml
from fuxictr.pytorch.models import BaseModel

from src.data.checks import validate_dataset
from src.data.features import build_feature_map
from src.errors import ConfigError
from src.tuning.values import check_grid_values

from .conftest import REPO
from .validation_data import make_dataset

USER_WEIGHT, EMB_WEIGHT, NET_WEIGHT, INTEREST_WEIGHT = 2.e-4, 1.e-5, 1.e-3, 3.e-2


@pytest.fixture
def params(tmp_path):
    return make_dataset(tmp_path / "data")


def user_entry(params):
    return next(c for c in params["feature_cols"] if c["name"] == "user_id")


def model_params(params, tmp_path, block="DIN_default_cpu", **extra):
    blocks = yaml.safe_load((REPO / "config/task2_config/model_config.yaml").read_text())
    return {**blocks["Base"], **blocks[block], **params, "embedding_dim": 4,
            "dnn_hidden_units": [8], "attention_hidden_units": [4], "model_id": "reg",
            "gpu": -1, "model_root": str(tmp_path / "ckpt"),
            "embedding_regularizer": EMB_WEIGHT, "net_regularizer": NET_WEIGHT, **extra}


def build(params, tmp_path, **extra):
    from src.experiment import build_model
    model = build_model(model_params(params, tmp_path, **extra))
    for param in model.parameters():  # away from FuxiCTR's near-zero initial embeddings
        torch.nn.init.normal_(param, std=0.5) if param.requires_grad else None
    return model


def by_hand(model, user_weight):
    """sum of w / 2 * (squared entries) per parameter: user_id's table with user_weight, the
    other embedding tables with EMB_WEIGHT, the interest tower with INTEREST_WEIGHT, the
    rest with NET_WEIGHT."""
    total = 0.0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".embedding_layers.user_id." in name:
            weight = user_weight
        elif name.startswith("embedding_layer."):
            weight = EMB_WEIGHT
        elif name.startswith("interest."):
            weight = INTEREST_WEIGHT
        else:
            weight = NET_WEIGHT
        total += weight / 2 * float((param.detach().double() ** 2).sum())
    return total


def test_without_feature_weights_the_penalty_is_fuxictrs(params, tmp_path):
    user_entry(params).update(type="categorical", vocab_size=1000)
    model = build(params, tmp_path)
    ours = float(model.regularization_loss().detach())
    assert ours == pytest.approx(float(BaseModel.regularization_loss(model).detach()), rel=1e-6)
    assert ours == pytest.approx(by_hand(model, EMB_WEIGHT), rel=1e-5)


@pytest.mark.parametrize("block", ["DIN_default_cpu", "DINInterest_cpu"])
def test_user_id_takes_its_own_weight(params, tmp_path, block):
    user_entry(params).update(type="categorical", vocab_size=1000,
                              embedding_regularizer=USER_WEIGHT)
    model = build(params, tmp_path, block=block, interest_regularizer=INTEREST_WEIGHT)
    table = model.embedding_layer.embedding_layer.embedding_layers["user_id"].weight
    assert table.shape[0] == 1000
    penalty = float(model.regularization_loss().detach())
    assert penalty == pytest.approx(by_hand(model, USER_WEIGHT), rel=1e-5)
    # the user table's share is large enough that ignoring the key would be seen
    assert penalty != pytest.approx(by_hand(model, EMB_WEIGHT), rel=1e-3)
    # and the gradient of the table is the feature's weight times the table
    model.zero_grad()
    model.regularization_loss().backward()
    torch.testing.assert_close(table.grad, USER_WEIGHT * table.detach(), rtol=1e-4, atol=0)


def test_a_zero_weight_leaves_the_table_unpenalised(params, tmp_path):
    user_entry(params).update(type="categorical", vocab_size=1000, embedding_regularizer=0)
    model = build(params, tmp_path)
    assert float(model.regularization_loss().detach()) == pytest.approx(by_hand(model, 0.0), rel=1e-5)


@pytest.mark.parametrize("value, message", [
    (-1.e-4, "is not a number >= 0"),
    ("strong", "is not a number >= 0"),
    ("2e-4", "YAML reads 2e-4 without a dot as a string: write 0.0002"),
    (True, "is not a number >= 0"),
    (float("nan"), "is not a number >= 0"),
])
def test_bad_weight_is_a_config_error_before_training(params, tmp_path, value, message):
    user_entry(params).update(type="categorical", vocab_size=1000, embedding_regularizer=value)
    for check in (validate_dataset, build_feature_map):
        with pytest.raises(ConfigError, match=message) as err:
            check(params)
        assert "embedding_regularizer=" in str(err.value) and "user_id" in str(err.value)
    with pytest.raises(ConfigError, match="entry 'user_id': embedding_regularizer is not") as err:
        check_grid_values({"reg": model_params(params, tmp_path)}, "tuner.yaml")
    assert message in str(err.value) and "found before any run" in str(err.value)


def test_on_a_meta_feature_it_is_a_config_error(params):
    user_entry(params).update(embedding_regularizer=1.e-4)  # user_id is meta here
    for check in (validate_dataset, build_feature_map):
        with pytest.raises(ConfigError, match="on a meta feature, which has no embedding"):
            check(params)


def test_the_key_passes_every_config_check(params, tmp_path):
    user_entry(params).update(type="categorical", vocab_size="auto", oov=True,
                              embedding_regularizer=USER_WEIGHT)
    validate_dataset(params)
    check_grid_values({"reg": model_params(params, tmp_path)}, "tuner.yaml")
    from src.data.vocab import resolve_vocab_sizes
    spec = build_feature_map(resolve_vocab_sizes(params)).features["user_id"]
    assert spec["embedding_regularizer"] == USER_WEIGHT
