"""The option schema (src/options.py): strict keys, values checked before the first run, every
shipped config accepted, and the generated config reference in step with the schema."""
from pathlib import Path

import pytest
import yaml

from src.errors import ConfigError, DataError
from src.models import available_models, model_arguments
from src.options import MODEL_ARGUMENTS, keys_of, toolkit_defaults
from src.tuning import reference
from src.tuning.grid import expand
from src.tuning.keys import check_model_file
from src.tuning.tuner import validate_grid_data
from src.tuning.values import check_grid_values
from tests.conftest import REPO, run_cli, tune_cli, write_tuner_config

SHIPPED_TUNER_CONFIGS = sorted((REPO / "config").glob("*.yaml")) + \
    sorted((REPO / "config" / "compare").glob("*.yaml"))
SHIPPED_MODEL_CONFIGS = sorted((REPO / "config").glob("*/model_config.yaml"))


@pytest.mark.parametrize("path", SHIPPED_TUNER_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_tuner_config_is_accepted(path, monkeypatch):
    monkeypatch.chdir(REPO)  # their base_config paths are relative to the repository
    grid = expand(path.relative_to(REPO))
    assert grid.expids


@pytest.mark.parametrize("path", SHIPPED_MODEL_CONFIGS, ids=lambda p: p.parent.name)
def test_every_block_of_the_shipped_model_configs_is_accepted(path):
    blocks = yaml.safe_load(path.read_text())
    check_model_file(blocks, path, [b for b in blocks if b != "Base"])


def _typo_config_dir(folder, data_dir, tuner_space=None):
    """A tuner config whose base_config is a copy of config/din_config with the key
    attention_dropout misspelt in the DIN_default block."""
    base = Path(folder) / "din_typo"
    base.mkdir()
    text = (REPO / "config" / "din_config" / "model_config.yaml").read_text()
    assert "    attention_dropout: 0.1\n" in text
    (base / "model_config.yaml").write_text(
        text.replace("    attention_dropout: 0.1\n", "    attention_dropuot: 0.1\n"))
    tuner_yaml = write_tuner_config(folder, data_dir, tuner_space)
    config = yaml.safe_load(tuner_yaml.read_text())
    config["base_config"] = str(base)
    tuner_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return tuner_yaml, base


def _one_line_refusal(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr  # (log lines of the script may come before it)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_a_typo_in_a_block_is_refused_by_the_tuner_naming_file_block_and_key(tmp_path):
    """With the right name in tuner_space and the typo in the block, the block's key is the
    one named as wrong (the old hint pointed at the tuner_space key)."""
    tuner_yaml, base = _typo_config_dir(tmp_path, tmp_path / "no_data",
                                        {"attention_dropout": [0.1, 0.2]})
    result = tune_cli(tmp_path, tuner_yaml)
    _one_line_refusal(result, str(base / "model_config.yaml"), "block DIN_default",
                      "unknown key 'attention_dropuot'", "did you mean 'attention_dropout'")
    assert not (tmp_path / tuner_yaml.stem).exists(), "nothing written for a refused config"


def _config_folder(tmp_path, tuner_yaml):
    """The config folder run_expid.py reads: the grid as the tuner writes it, then the typo
    put back into its block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        config = yaml.safe_load(tuner_yaml.read_text())
        config["base_config"] = str(REPO / "config" / "din_config")
        fixed = tmp_path / "fixed.yaml"
        fixed.write_text(yaml.safe_dump(config, sort_keys=False))
        grid = expand(fixed)
        folder = grid.write()
    blocks = yaml.safe_load((folder / "model_config.yaml").read_text())
    expid = grid.expids[0]
    blocks[expid]["attention_dropuot"] = blocks[expid].pop("attention_dropout")
    (folder / "model_config.yaml").write_text(yaml.safe_dump(blocks, sort_keys=False))
    return folder, expid


@pytest.mark.parametrize("script", ["run_expid.py", "prediction.py"])
def test_a_typo_in_a_block_is_refused_by_run_expid_and_prediction(script, small_data, tmp_path):
    tuner_yaml, _ = _typo_config_dir(tmp_path, small_data)
    folder, expid = _config_folder(tmp_path, tuner_yaml)
    result = run_cli(script, "--config", folder, "--expid", expid, "--gpu", "-1", cwd=tmp_path)
    _one_line_refusal(result, str(folder / "model_config.yaml"), f"block {expid}",
                      "unknown key 'attention_dropuot'", "did you mean 'attention_dropout'")
    assert not (tmp_path / "checkpoints").exists(), "refused before any run"


def test_a_key_of_another_model_is_refused_naming_that_model(tmp_path):
    tuner_yaml = write_tuner_config(tmp_path, tmp_path / "no_data", {"qin_layers": 2})
    with pytest.raises(ConfigError, match=r"tuner_space key 'qin_layers'"):
        expand(tuner_yaml)
    blocks = {"Base": {}, "DIN_x": {"model": "DIN", "qin_layers": 2}}
    with pytest.raises(ConfigError, match=r"block DIN_x: unknown key 'qin_layers'.*of FlatQIN, "
                                          r"QIN"):
        check_model_file(blocks, "m.yaml", ["DIN_x"])


def test_a_model_argument_missing_from_the_block_can_be_tuned(tmp_path):
    """Keys come from the constructor, not the block: split_attention is DIN's, unlisted."""
    grid = expand(write_tuner_config(tmp_path, tmp_path / "no_data",
                                     {"split_attention": [True, False]}))
    assert [grid.params(e)["split_attention"] for e in grid.expids] == [True, False] * 2


@pytest.mark.parametrize("key, value, named", [
    ("monitor", "auc", "did you mean 'AUC'"),
    ("monitor", {"AUC": 1, "loss": -1}, "monitor="),
    ("metrics", [["AUC", "HitRate"]], "metrics=['AUC', 'HitRate']"),
    ("metrics", [["AUC", "gAUC"]], "need group_id"),
])
def test_an_evaluation_name_the_metrics_lack_is_refused_before_any_run(key, value, named,
                                                                      tmp_path):
    """`monitor: auc` trained a full epoch, then crashed with a traceback."""
    tuner_yaml = write_tuner_config(tmp_path, tmp_path / "no_data",
                                    {key: value, "group_id": None})
    with pytest.raises(ConfigError, match=r"found before any run") as refused:
        expand(tuner_yaml)
    assert named in str(refused.value) and key in str(refused.value)


def test_max_len_longer_than_the_histories_is_refused_before_the_first_run(small_data, tmp_path):
    """max_len: [64, 32, 100] trained two runs, then failed on the third; the data check now
    reads the longest max_len of the grid and names that grid point."""
    grid = expand(write_tuner_config(tmp_path, small_data, {"max_len": [64, 32, 100]}))
    longest = [e for e in grid.expids if grid.params(e)["max_len"] == 100][0]
    with pytest.raises(DataError, match=rf"expid {longest} \(max_len=100\).*shorter than "
                                        rf"max_len=100"):
        validate_grid_data(grid)
    validate_grid_data(expand(write_tuner_config(tmp_path, small_data, {"max_len": [64, 32]},
                                                 name="fine.yaml")))


def test_every_model_argument_has_a_check_and_a_doc():
    """The constructors decide which keys a model takes; the schema must declare a check and
    doc for each, and nothing it declares may be left over."""
    declared = keys_of("training", "bookkeeping", "dataset")
    used = set()
    for model in available_models():
        arguments = set(model_arguments(model)) - declared
        assert arguments <= set(MODEL_ARGUMENTS), (model, arguments - set(MODEL_ARGUMENTS))
        used |= arguments
    assert set(MODEL_ARGUMENTS) == used


def test_toolkit_options_are_the_model_defaults():
    """A filled option's default is the default of the constructor that reads it."""
    arguments = model_arguments("DIN")
    for key, default in toolkit_defaults().items():
        if key in arguments:
            assert arguments[key] == default, key


def test_the_config_reference_is_the_generated_one():
    committed = reference.PAGE.read_text() if reference.PAGE.exists() else ""
    assert committed == reference.markdown(), (
        f"{reference.PAGE} is out of date with src/options.py or a model constructor. "
        f"Fix: run `{reference.COMMAND}` and commit the page")


def test_a_key_a_model_takes_at_one_value_only_is_checked_before_any_run(monkeypatch):
    """DINInterest blocks copy DIN's din_use_softmax: False (YAML <<); True is refused up
    front, not when the model is built mid-grid."""
    monkeypatch.chdir(REPO)
    grid = expand(Path("config/compare/interest_tuner_config.yaml"))
    interest = [e for e in grid.expids if grid.params(e)["model"] == "DINInterest"]
    assert interest and all(grid.params(e)["din_use_softmax"] is False for e in interest)
    with pytest.raises(ConfigError, match=r"din_use_softmax=True must be False for model "
                                          r"DINInterest"):
        check_grid_values({e: dict(grid.params(e), din_use_softmax=True) for e in interest},
                          "interest")
