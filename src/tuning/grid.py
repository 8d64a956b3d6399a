"""A tuner config expanded into its grid of experiments: checked in memory, written last.

The baseline's tuner configs keep working unchanged (FuxiCTR's format): `base_config` +
`base_expid` name the model block (Base merged under it), `dataset_id` + `dataset_config` the
dataset block, `tuner_space` the keys to vary (a list is a grid axis, a scalar a fixed value).
What differs from FuxiCTR's enumerate_params, and why:
- nothing is written until every check has passed (keys, values, task-1 rules, and the
  caller's data checks): a refused config leaves no folder behind, and nothing is printed;
- expids hash the dataset block too (`<base>_<NNN>_<md5[:8]>`): two configs that differ only
  in their data paths get different expids, so one never overwrites the other's checkpoints;
- a dataset key with several values gives one dataset block per value (FuxiCTR silently kept
  the last one), named `<dataset_id>_<md5[:8]>` of the block;
- `base_expid` may be a list, for a grid that mixes models: each tuner_space key applies to
  the base blocks that have it (it must be in at least one, or in the dataset block);
- every key of the model blocks (Base included), the dataset block and tuner_space must be
  known to the schema (src/options.py) or the block's model constructor (src/tuning/keys.py),
  else the config is refused with a "did you mean", the blocks' keys checked first;
- a tuner_space key applies to each base block that lists it or whose model knows it; this
  toolkit's options (src/options.toolkit_defaults) at their defaults do not enter the expid's
  hash, so listing them (or a new option) in a Base block renames no experiment.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write
from ..errors import ConfigError
from ..options import keys_of, toolkit_defaults, with_option_defaults
from ..params import read_yaml
from .keys import (check_base_block, check_dataset_block, check_model_block, did_you_mean,
                   model_keys)
from .task1_rules import check_tuner_config
from .values import check_grid_values

# What expand appends to a block's prefix: _<grid number, 3 digits>_<8 hex digits of hash>.
EXPID_TAIL = re.compile(r"_(\d{3})_[0-9a-f]{8}$")

logger = logging.getLogger(__name__)

MODEL_CONFIG, DATASET_CONFIG = "model_config.yaml", "dataset_config.yaml"


class Grid:
    """The experiments of one tuner config: {expid: params (model keys + dataset_id)} and
    {dataset_id: dataset block}, in grid order, the folder they are written to, and the
    tuner_space keys the grid varies (those with two or more values)."""

    def __init__(self, tuner_yaml: Path | str, config_dir: Path | str,
                 experiments: dict[str, dict[str, Any]], datasets: dict[str, dict[str, Any]],
                 varied: Iterable[str] = ()) -> None:
        self.tuner_yaml, self.config_dir = Path(tuner_yaml), Path(config_dir)
        self.experiments, self.datasets = experiments, datasets
        self.varied = list(varied)

    @property
    def expids(self) -> list[str]:
        return list(self.experiments)

    def params(self, expid: str) -> dict[str, Any]:
        """The merged params of expid, as load_params reads them from the written folder."""
        params = dict(self.experiments[expid])
        params.update(self.datasets[params["dataset_id"]])
        params["model_id"] = expid
        return with_option_defaults(params)

    def write(self) -> Path:
        """Write model_config.yaml and dataset_config.yaml into config_dir, each through a
        temporary file and a rename, so a reader never sees half a file."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for name, content in ((DATASET_CONFIG, self.datasets), (MODEL_CONFIG, self.experiments)):
            path = self.config_dir / name
            with atomic_write(path) as tmp, open(tmp, "w") as f:
                yaml.safe_dump(content, f, default_flow_style=None, sort_keys=False, indent=4)
        return self.config_dir


def config_dir_of(tuner_yaml: Path | str) -> Path:
    """Where the grid of X.yaml is written: the folder X beside it (as FuxiCTR does)."""
    tuner_yaml = Path(tuner_yaml)
    return tuner_yaml.with_name(tuner_yaml.name[:-len(".yaml")] if tuner_yaml.name.endswith(
        ".yaml") else tuner_yaml.name + "_grid")


def load_tuner_config(tuner_yaml: Path | str) -> dict[str, Any]:
    tuner_yaml = Path(tuner_yaml)
    if not tuner_yaml.is_file():
        raise ConfigError(f"--config {tuner_yaml}: no such tuner config file")
    config = read_yaml(tuner_yaml)
    if not isinstance(config, dict) or "tuner_space" not in config or "base_expid" not in config:
        raise ConfigError(f"{tuner_yaml}: a tuner config needs base_expid and tuner_space keys")
    if not isinstance(config["tuner_space"], dict):
        raise ConfigError(f"{tuner_yaml}: tuner_space={config['tuner_space']!r} is not a mapping "
                          f"of keys to values. Fix: write one `key: value` or `key: [v1, v2]` "
                          f"per line under tuner_space")
    return config


def _base_dir(config, tuner_yaml):
    return config.get("base_config", os.path.dirname(str(tuner_yaml)) or ".")


def model_block(config: dict[str, Any], base_expid: str, tuner_yaml: Path | str) -> dict[str, Any]:
    """Base merged with base_expid's block, from the tuner yaml's inline model_config or from
    base_config/model_config.yaml (paths relative to the current folder, as in FuxiCTR)."""
    if "model_config" in config:
        blocks, where = config["model_config"] or {}, f"{tuner_yaml} (model_config)"
    else:
        path = Path(_base_dir(config, tuner_yaml)) / MODEL_CONFIG
        if not path.is_file():
            raise ConfigError(f"{tuner_yaml}: base_config={_base_dir(config, tuner_yaml)!r} holds "
                              f"no {MODEL_CONFIG} (paths are relative to the current folder, "
                              f"{os.getcwd()}). Fix: run from the repository root or give an "
                              f"absolute base_config")
        blocks, where = read_yaml(path) or {}, str(path)
    if base_expid not in blocks:
        known = [k for k in blocks if k != "Base"]
        raise ConfigError(f"{tuner_yaml}: base_expid={base_expid!r} is not a block of {where}"
                          f"{did_you_mean(base_expid, known)}. Known: {', '.join(known)}")
    block = dict(blocks.get("Base") or {})
    if block:
        check_base_block(block, f"{where}, block Base")
    block.update(blocks[base_expid] or {})
    check_model_block(blocks[base_expid] or {}, f"{where}, block {base_expid}", block.get("model"))
    block.pop("model_id", None)
    return block


def dataset_block(config: dict[str, Any], dataset_id: str,
                  tuner_yaml: Path | str) -> dict[str, Any]:
    if "dataset_config" in config:
        blocks, where = config["dataset_config"] or {}, f"{tuner_yaml} (dataset_config)"
    else:
        path = Path(_base_dir(config, tuner_yaml)) / DATASET_CONFIG
        blocks, where = (read_yaml(path) or {}) if path.is_file() else {}, str(path)
    if dataset_id not in blocks or not isinstance(blocks[dataset_id], dict):
        raise ConfigError(f"{tuner_yaml}: dataset_id={dataset_id!r} is not a block of {where}"
                          f"{did_you_mean(dataset_id, list(blocks))}. Fix: add the dataset block "
                          f"or correct dataset_id")
    check_dataset_block(blocks[dataset_id], f"{where}, block {dataset_id}")
    return dict(blocks[dataset_id])


def _axis(value):
    """A tuner_space value as its list of grid values (a scalar is one value)."""
    return value if isinstance(value, list) else [value]


def _identity(params):
    """params without the option keys left at their defaults: a new option added to the
    toolkit (with its default) does not rename every existing experiment."""
    defaults = toolkit_defaults()
    return {k: v for k, v in params.items() if not (k in defaults and v == defaults[k])}


def _digest(*parts):
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.md5(text.encode("utf-8")).hexdigest()[:8]


def _dataset_key(key, dataset):
    return key in dataset or key in keys_of("dataset")


def _applies(key, block):
    """Whether a tuner_space key changes this model block."""
    return key in block or key in model_keys([block.get("model")]) - keys_of("dataset")


def _check_keys(tuner_space, model_blocks, dataset, tuner_yaml):
    known = set(dataset) | model_keys([b.get("model") for b in model_blocks.values()])
    problems = []
    for key in tuner_space:
        if key not in known:
            problems.append(f"tuner_space key {key!r} is known to no model block ("
                            f"{', '.join(model_blocks)}) nor the dataset block"
                            f"{did_you_mean(key, sorted(known))}")
    if problems:
        raise ConfigError(f"{tuner_yaml}: {'; '.join(problems)}. Fix: correct the key "
                          f"(docs/config_reference.md lists every key of every model)")


def expand(tuner_yaml: Path | str, config: dict[str, Any] | None = None) -> Grid:
    """The checked Grid of tuner_yaml (nothing written). Raises ConfigError naming every bad
    key or value."""
    config = config or load_tuner_config(tuner_yaml)
    check_tuner_config(config, tuner_yaml)
    base_expids = _axis(config["base_expid"])
    model_blocks = {b: model_block(config, b, tuner_yaml) for b in base_expids}
    dataset_id = config.get("dataset_id") or next(iter(model_blocks.values())).get("dataset_id")
    dataset = dataset_block(config, dataset_id, tuner_yaml)
    tuner_space = config["tuner_space"]
    _check_keys(tuner_space, model_blocks, dataset, tuner_yaml)

    # one dataset block per combination of the dataset keys in tuner_space
    dataset_axes = {k: _axis(v) for k, v in tuner_space.items() if _dataset_key(k, dataset)}
    datasets = {}
    for values in itertools.product(*dataset_axes.values()):
        block = dict(dataset, **dict(zip(dataset_axes, values)))
        name = dataset_id if len(values) == 0 or all(len(v) == 1 for v in dataset_axes.values()) \
            else f"{dataset_id}_{_digest(block)}"
        datasets[name] = block

    experiments = {}
    number = 0
    for base_expid, block in model_blocks.items():
        # FuxiCTR renames a template block (dataset_id TBD) to <model>_<dataset_id>; a grid
        # of several blocks keeps their names, which tell two blocks of one model apart
        template = block.get("dataset_id") in (None, "TBD")
        prefix = (base_expid if len(model_blocks) > 1 else
                  f"{block.get('model')}_{dataset_id}" if template else base_expid)
        model_axes = {k: _axis(v) for k, v in tuner_space.items()
                      if not _dataset_key(k, dataset) and _applies(k, block)}
        for values in itertools.product(*model_axes.values()):
            for name, data_block in datasets.items():
                params = dict(block, **dict(zip(model_axes, values)), dataset_id=name)
                number += 1
                expid = f"{prefix}_{number:03d}_{_digest(_identity(params), data_block)}"
                experiments[expid] = params
    varied = [k for k, v in tuner_space.items()
              if len({json.dumps(x, sort_keys=True, default=str) for x in _axis(v)}) > 1]
    grid = Grid(tuner_yaml, config_dir_of(tuner_yaml), experiments, datasets, varied)
    check_grid_values({expid: grid.params(expid) for expid in experiments}, tuner_yaml)
    return grid


def read_written_expids(config_dir: Path | str) -> list[str]:
    """The expids of a grid folder the tuner wrote ([] when there is none)."""
    path = Path(config_dir) / MODEL_CONFIG
    if not path.is_file():
        return []
    return [k for k in (read_yaml(path) or {}) if k != "Base"]
