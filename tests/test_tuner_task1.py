"""Task-1 rules of the tuner (src/tuning/task1_rules.py): a config marked task1 may vary only
what keeps the organisers' DIN fixed, and a refusal comes before any run."""
import copy

import pytest
import yaml

from src.errors import ConfigError
from src.tuning.task1_rules import check_tuner_config

from .conftest import REPO, tune_cli

TASK1_CONFIG = REPO / "config" / "DIN_task1_tuner_config.yaml"
BASELINE_CONFIG = REPO / "config" / "DIN_microlens_mmctr_tuner_config_01.yaml"


def shipped_task1():
    with open(TASK1_CONFIG) as f:
        return yaml.safe_load(f)


def test_shipped_task1_config_is_the_baseline_config_and_passes(monkeypatch):
    config = shipped_task1()
    assert config.pop("task1") is True
    assert config == yaml.safe_load(BASELINE_CONFIG.read_text())
    monkeypatch.chdir(REPO)  # base_config is relative to the current folder, as in FuxiCTR
    check_tuner_config(shipped_task1(), TASK1_CONFIG)


def _dataset(config):
    return config["dataset_config"]["MicroLens_1M_x1"]


def _features(config):
    return {col["name"]: col for col in _dataset(config)["feature_cols"]}


ALLOWED = {
    "knobs varied": lambda c: c["tuner_space"].update(
        net_dropout=[0, 0.1, 0.2], learning_rate=[1.e-3, 5.e-4], batch_size=[4096, 8192],
        net_regularizer=[0, 1.e-6], embedding_regularizer=[1.e-6, 1.e-7]),
    "fixed value spelt out": lambda c: c["tuner_space"].update(
        embedding_dim=64, dnn_hidden_units=[[1024, 512, 256]]),
    "bookkeeping": lambda c: c["tuner_space"].update(verbose=0, model_root="/tmp/ckpt/"),
    "own item embedding file": lambda c: _dataset(c).update(
        item_info="/elsewhere/my_item_info.parquet", train_data="/elsewhere/train.parquet"),
}

REFUSED = {
    "embedding_dim varied": (lambda c: c["tuner_space"].update(embedding_dim=[32, 64]),
                             "tuner_space sets embedding_dim=[32, 64] (fixed DIN: 64"),
    "smaller dnn": (lambda c: c["tuner_space"].update(dnn_hidden_units=[[512, 256]]),
                    "dnn_hidden_units=[[512, 256]]"),
    "more epochs": (lambda c: c["tuner_space"].update(epochs=5), "epochs=5 (fixed DIN: 100"),
    "varied bookkeeping": (lambda c: c["tuner_space"].update(verbose=[0, 1]),
                           "bookkeeping key verbose=[0, 1]"),
    "embedding dim": (lambda c: _features(c)["item_emb_d128"].update(embedding_dim=64),
                      "feature item_emb_d128 has embedding_dim=64 (baseline: 128"),
    "embedding renamed": (lambda c: _features(c)["item_emb_d128"].update(name="item_emb_v1"),
                          "feature_cols names="),
    "vocab changed": (lambda c: _features(c)["item_id"].update(vocab_size=2001),
                      "feature item_id has vocab_size=2001 (baseline: 91718"),
    "feature dropped": (lambda c: _features(c)["item_tags"].update(active=False),
                        "feature item_tags has active=False"),
    "dataset overrides model": (lambda c: _dataset(c).update(embedding_dim=32),
                                "dataset config adds embedding_dim=32"),
    "marker not a bool": (lambda c: c.update(task1="yes"), "task1='yes' is not a boolean"),
}


@pytest.mark.parametrize("change", list(ALLOWED), ids=list(ALLOWED))
def test_task1_allows(change, monkeypatch):
    monkeypatch.chdir(REPO)
    config = shipped_task1()
    ALLOWED[change](config)
    check_tuner_config(config, TASK1_CONFIG)


@pytest.mark.parametrize("change", list(REFUSED), ids=list(REFUSED))
def test_task1_refuses(change, monkeypatch):
    monkeypatch.chdir(REPO)
    config = shipped_task1()
    edit, expected = REFUSED[change]
    edit(config)
    with pytest.raises(ConfigError) as err:
        check_tuner_config(config, TASK1_CONFIG)
    assert expected in str(err.value)
    assert "Fix: " in str(err.value)
    other = copy.deepcopy(config)  # the same change without the marker is a task-2 config
    other.pop("task1")
    check_tuner_config(other, TASK1_CONFIG)


@pytest.mark.parametrize("key, value, refusal", [
    ("attention_hidden_units", [64], "attention_hidden_units=[64] (fixed DIN: [512, 256]"),
    ("amp_bf16", True, "amp_bf16=True (fixed DIN: False"),
    ("max_steps", 100, "max_steps=100 (fixed DIN: None"),
    ("lr_scheduler", "cosine", "lr_scheduler='cosine' (fixed DIN: 'plateau'"),
    ("deterministic", True, None),  # how it runs, not what is trained
    ("torch_compile", True, None),  # how it runs, not what is trained
    ("model_root", "/elsewhere/", None),
])
def test_task1_checks_the_base_model(key, value, refusal, tmp_path):
    model = yaml.safe_load((REPO / "config/din_config/model_config.yaml").read_text())
    model["DIN_default"][key] = value
    (tmp_path / "model_config.yaml").write_text(yaml.safe_dump(model))
    config = shipped_task1()
    config["base_config"] = str(tmp_path)
    if refusal is None:
        check_tuner_config(config, TASK1_CONFIG)
        return
    with pytest.raises(ConfigError) as err:
        check_tuner_config(config, TASK1_CONFIG)
    assert f"base_expid DIN_default has {refusal}" in str(err.value)


def test_task1_names_a_missing_inline_block_entry(monkeypatch):
    """An inline model_config or dataset_config block without the entry the config names."""
    monkeypatch.chdir(REPO)
    config = shipped_task1()
    config["model_config"] = {"Base": {}}
    with pytest.raises(ConfigError, match=r"base_expid='DIN_default' is not in its model_config "
                                          r"block. Fix: add it or correct base_expid"):
        check_tuner_config(config, TASK1_CONFIG)
    config = shipped_task1()
    config["dataset_id"] = "other"
    with pytest.raises(ConfigError, match=r"dataset_id='other' is not in its dataset_config "
                                          r"block. Fix: add it or correct dataset_id"):
        check_tuner_config(config, TASK1_CONFIG)


def test_task1_refusal_comes_before_any_run(tmp_path):
    config = shipped_task1()
    config["base_config"] = str(REPO / "config" / "din_config")
    config["tuner_space"]["embedding_dim"] = [16, 32]
    tuner_yaml = tmp_path / "task1_grid.yaml"
    tuner_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    refused = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    # the rule check, not the data check (its data paths point at nothing here), refused it
    assert "embedding_dim=[16, 32]" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task1_grid.yaml"]
