"""Challenge task 1 rules for tuner configs marked `task1: true` (a top-level key).

Task 1 scores an item embedding, not a model: everyone trains the organisers' DIN of
config/din_config/model_config.yaml (DIN_default) on the baseline's dataset config, and only
embedding_regularizer, net_regularizer, net_dropout, learning_rate and batch_size may be
tuned. What a task-1 entry changes is the item embedding: the `item_emb_d128` column
(128 floats per item) of the file that `item_info` points at.

`check_task1` refuses, with one ConfigError listing every offending key=value, a config that:
- has a tuner_space key other than the five knobs, unless every value of that key equals the
  fixed DIN's (writing `embedding_dim: 64` out explicitly changes nothing, so it is allowed)
  or the key is bookkeeping with a single value;
- uses a base_expid whose settings (Base block merged with the expid block, as FuxiCTR loads
  them) differ from the fixed DIN in any key but the five knobs and bookkeeping; a key
  missing on either side counts as a difference;
- has a dataset config whose feature_cols or label_col differ from the baseline's, or that adds
  keys the baseline's dataset config does not have (FuxiCTR merges dataset keys over model keys,
  so e.g. `embedding_dim` or `max_steps` there would change the model behind the tuner's back).
  Only the paths (data_root, train_data, valid_data, test_data, item_info) and data_format /
  rebuild_dataset may differ: they say where the files are, not what is trained.

Bookkeeping keys (model_root, verbose, num_workers, debug_mode, torch_compile,
split_on_device) only decide where files go, how much is printed and how the same arithmetic
is executed; our loader ignores num_workers. Not bookkeeping: epochs, early_stop_patience,
eval_steps and seed decide how long training runs, when the learning rate is divided by 10 and
which checkpoint is kept; max_steps cuts training short; amp_bf16 changes the arithmetic
(bfloat16 forward passes). They stay at the fixed DIN's values (max_steps, amp_bf16: unset).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from fuxictr.utils import load_dataset_config, load_model_config

from ..errors import ConfigError
from ..params import with_option_defaults

REPO = Path(__file__).resolve().parents[2]
FIXED_MODEL_DIR = REPO / "config" / "din_config"
FIXED_EXPID = "DIN_default"
BASELINE_TUNER = REPO / "config" / "DIN_microlens_mmctr_tuner_config_01.yaml"
BASELINE_DATASET_ID = "MicroLens_1M_x1"

KNOBS = ("embedding_regularizer", "net_regularizer", "net_dropout", "learning_rate",
         "batch_size")
# how a run goes, not what it trains: may differ from the fixed DIN's, never vary in a grid
# (not src.params.BOOKKEEPING_KEYS, the keys a run's fingerprint leaves out)
RUN_SETTINGS = ("model_root", "verbose", "num_workers", "debug_mode", "torch_compile",
                "split_on_device", "deterministic", "tensorboard")
IDENTITY = ("model_id", "dataset_id")  # set by the tuner, not training settings
PATH_KEYS = ("data_root", "train_data", "valid_data", "test_data", "item_info")
DATA_FORMAT_KEYS = ("data_format", "rebuild_dataset")
EMBEDDING_FEATURE, EMBEDDING_DIM = "item_emb_d128", 128
MISSING = "<missing>"

RULE = ("task 1 trains the fixed DIN of config/din_config/model_config.yaml (DIN_default) on "
        "the baseline's dataset config and tunes only " + ", ".join(KNOBS))
OFF_SWITCH = "or remove `task1: true` to run it as a task-2 config"


def is_task1(tuner_config: dict[str, Any], path: Path | str) -> bool:
    """True when the tuner config is marked `task1: true`."""
    flag = tuner_config.get("task1", False)
    if not isinstance(flag, bool):
        raise ConfigError(f"{path}: task1={flag!r} is not a boolean. Fix: write `task1: true` "
                          f"to check the config against the task-1 rules, or remove the key")
    return flag


def fixed_model_params() -> dict[str, Any]:
    """The organisers' DIN: Base merged with DIN_default of config/din_config, with our
    option keys at their defaults (a copy of the baseline's file without them is the same DIN)."""
    return with_option_defaults(load_model_config(str(FIXED_MODEL_DIR), FIXED_EXPID))


def baseline_dataset_params() -> dict[str, Any]:
    with open(BASELINE_TUNER) as f:
        return yaml.safe_load(f)["dataset_config"][BASELINE_DATASET_ID]


def _inline_block(tuner_config, section, key, path):
    """The entry named by tuner_config[key] in the tuner yaml's own `section` block (a copy),
    or None when the yaml has no such block and FuxiCTR reads base_config's file instead."""
    if section not in tuner_config:
        return None
    name = tuner_config.get(key)
    block = (tuner_config[section] or {}).get(name)
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: {key}={name!r} is not in its {section} block. "
                          f"Fix: add it or correct {key}")
    return dict(block)


def _base_dir(tuner_config, path):
    """base_config, relative to the current folder; default the tuner yaml's folder."""
    return tuner_config.get("base_config", os.path.dirname(str(path)))


def base_model_params(tuner_config: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """The base_expid's settings as FuxiCTR's enumerate_params loads them: an inline
    model_config block, or Base + expid from base_config."""
    block = _inline_block(tuner_config, "model_config", "base_expid", path)
    if block is not None:
        return block
    expid, base_dir = tuner_config["base_expid"], _base_dir(tuner_config, path)
    try:
        return load_model_config(base_dir, expid)
    except RuntimeError:
        raise ConfigError(f"{path}: base_config={base_dir!r} holds no model_config.yaml "
                          f"(paths are relative to the current folder). Fix: run from the "
                          f"repository root or give an absolute base_config") from None
    except AssertionError:
        raise ConfigError(f"{path}: base_expid={expid!r} is not in {base_dir}/model_config.yaml. "
                          f"Fix: use DIN_default for task 1") from None


def _dataset_params(tuner_config, path):
    block = _inline_block(tuner_config, "dataset_config", "dataset_id", path)
    if block is not None:
        return block
    dataset_id, base_dir = tuner_config.get("dataset_id"), _base_dir(tuner_config, path)
    try:
        params = load_dataset_config(base_dir, dataset_id)
    except RuntimeError:
        raise ConfigError(f"{path}: dataset_id={dataset_id!r} is in neither the tuner config nor "
                          f"{base_dir}/dataset_config.yaml. Fix: copy the baseline's "
                          f"dataset_config block into the tuner config") from None
    params.pop("dataset_id", None)
    return params


def _grid_values(value):
    """The values a tuner_space entry expands to (FuxiCTR: a list is a grid, else one value)."""
    return value if isinstance(value, list) else [value]


def _check_tuner_space(tuner_space, fixed):
    problems = []
    for key, value in tuner_space.items():
        if key in KNOBS:
            continue
        values = _grid_values(value)
        if key in RUN_SETTINGS:
            if len(values) > 1:
                problems.append(f"tuner_space varies the bookkeeping key {key}={value!r}, which "
                                f"only repeats runs (give it one value)")
            continue
        if key in fixed and all(v == fixed[key] for v in values):
            continue  # spelling out the fixed value changes nothing
        problems.append(f"tuner_space sets {key}={value!r} (fixed DIN: "
                        f"{fixed.get(key, MISSING)!r}; remove it from tuner_space)")
    return problems


def _check_model(base, fixed, base_expid):
    problems = []
    skip = set(KNOBS) | set(RUN_SETTINGS) | set(IDENTITY)
    for key in sorted((set(base) | set(fixed)) - skip):
        mine, theirs = base.get(key, MISSING), fixed.get(key, MISSING)
        if mine != theirs:
            problems.append(f"base_expid {base_expid} has {key}={mine!r} (fixed DIN: {theirs!r}; "
                            f"use DIN_default of config/din_config unchanged)")
    return problems


def _feature_name(col):
    return col.get("name") if isinstance(col, dict) else col


def _check_features(mine, baseline):
    if not isinstance(mine, list):
        return [f"dataset feature_cols={mine!r} is not a list (copy the baseline's feature_cols)"]
    names, baseline_names = [_feature_name(c) for c in mine], [_feature_name(c) for c in baseline]
    if names != baseline_names:
        return [f"dataset feature_cols names={names} (baseline: {baseline_names}; keep the "
                f"baseline's features in the baseline's order)"]
    problems = []
    for col, baseline_col in zip(mine, baseline):
        name = baseline_col["name"]
        if col == baseline_col:
            continue
        if baseline_col.get("type") == "embedding":
            fix = (f"keep {{name: {EMBEDDING_FEATURE}, type: embedding, embedding_dim: "
                   f"{EMBEDDING_DIM}}} and put your item embedding in column {EMBEDDING_FEATURE} "
                   f"of the file item_info points at, {EMBEDDING_DIM} floats per item")
        else:
            fix = "copy this feature from the baseline's dataset config"
        for key in sorted(set(col) | set(baseline_col)):
            if col.get(key, MISSING) != baseline_col.get(key, MISSING):
                problems.append(f"dataset feature {name} has {key}={col.get(key, MISSING)!r} "
                                f"(baseline: {baseline_col.get(key, MISSING)!r}; {fix})")
    return problems


def _check_dataset(dataset, baseline, fixed):
    problems = _check_features(dataset.get("feature_cols", MISSING), baseline["feature_cols"])
    if dataset.get("label_col", MISSING) != baseline["label_col"]:
        problems.append(f"dataset label_col={dataset.get('label_col', MISSING)!r} (baseline: "
                        f"{baseline['label_col']!r}; copy the baseline's label_col)")
    allowed = (set(baseline) | set(PATH_KEYS) | set(DATA_FORMAT_KEYS) | set(KNOBS)
               | set(RUN_SETTINGS))
    for key in sorted(set(dataset) - allowed):
        if key in fixed and dataset[key] == fixed[key]:
            continue
        problems.append(f"dataset config adds {key}={dataset[key]!r}, which overrides the "
                        f"model settings (remove it; the baseline's dataset config has only "
                        f"{', '.join(baseline)})")
    return problems


def check_task1(tuner_config: dict[str, Any], base_model_params: dict[str, Any],
                path: Path | str) -> None:
    """Raise ConfigError listing every break of the task-1 rules (see the module docstring).

    tuner_config: the tuner yaml as a dict; base_model_params: its base_expid's settings
    (Base + expid, as fuxictr.utils.load_model_config returns them); path: for messages.
    """
    fixed = fixed_model_params()
    tuner_space = tuner_config.get("tuner_space") or {}
    problems = _check_tuner_space(tuner_space, fixed)
    problems += _check_model(with_option_defaults(base_model_params), fixed,
                             tuner_config.get("base_expid"))
    problems += _check_dataset(_dataset_params(tuner_config, path), baseline_dataset_params(),
                               fixed)
    if problems:
        raise ConfigError(f"{path} is marked task1: true, but {RULE}. Offending: "
                          f"{'; '.join(problems)}. Fix: undo these changes, {OFF_SWITCH}")


def check_tuner_config(tuner_config: dict[str, Any], path: Path | str) -> None:
    """Apply the task-1 rules when the config is marked `task1: true`; else do nothing."""
    if is_task1(tuner_config, path):
        check_task1(tuner_config, base_model_params(tuner_config, path), path)
