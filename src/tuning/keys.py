"""Strict keys: every key of a model block, the Base block, a dataset block and tuner_space
must be one the schema (src/options.py) or the block's model constructor knows.

Keys reach the model through **kwargs chains that end in FuxiCTR's BaseModel(**kwargs), which
swallows any name: `attention_dropuot: 0.1` trained silently with the default. So a config
with an unknown key is refused before any run, in one line naming file, block and key with a
"did you mean". Reading the constructors imports torch (about 1 s idle, 5 s on a busy 2-core
machine); the schema alone does not.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import available_models, model_arguments
from ..options import keys_of
from ..params import read_yaml

MODEL_BLOCK_KEYS = ("training", "bookkeeping", "dataset")


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def model_keys(models: Iterable[str]) -> set[str]:
    """The keys a block training one of models may hold."""
    known = keys_of(*MODEL_BLOCK_KEYS)
    for model in models:
        if model in available_models():
            known |= set(model_arguments(model))
    return known


def _refuse(where, unknown, known, fix):
    key = unknown[0]
    others = f" (and {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
    owners = sorted(m for m in available_models() if key in model_arguments(m))
    elsewhere = f"; it is an argument of {', '.join(owners)}" if owners else ""
    raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, sorted(known))}"
                      f"{others}{elsewhere}. Fix: {fix}")


def check_model_block(block: dict[str, Any], where: str, model: str | None = None) -> None:
    """where: '<file>, block <name>'. model: the model the block trains (Base merged)."""
    model = model or block.get("model")
    if model is not None and model not in available_models():
        names = sorted(available_models())
        raise ConfigError(f"{where}: model={model!r} is not a model of src/models"
                          f"{did_you_mean(model, names)}. Fix: use one of {', '.join(names)}")
    known = model_keys([model] if model else available_models())
    unknown = [k for k in block if k not in known]
    if unknown:
        _refuse(where, unknown, known, "correct the key (docs/config_reference.md lists every "
                                       "key of every model)")


def check_base_block(block: dict[str, Any], where: str) -> None:
    """The Base block is merged under every model block: its keys must be known to one."""
    check_model_block(block, where, model=None)


def check_dataset_block(block: dict[str, Any], where: str) -> None:
    known = keys_of("dataset")
    unknown = [k for k in block if k not in known]
    if unknown:
        _refuse(where, unknown, known, "a dataset block holds only " + ", ".join(sorted(known)))


def check_model_file(blocks: dict[str, Any], path: Path | str, expids: Iterable[str]) -> None:
    """Base and the expids' blocks of a model_config.yaml's content."""
    base = blocks.get("Base") or {}
    if base:
        check_base_block(base, f"{path}, block Base")
    for expid in expids:
        block = blocks.get(expid) or {}
        check_model_block(block, f"{path}, block {expid}", block.get("model", base.get("model")))


def check_config_dir(config_dir: Path | str, expid: str) -> None:
    """The keys of expid in a config folder (run_expid.py, prediction.py): Base, its block,
    its dataset block."""
    path = Path(config_dir) / "model_config.yaml"
    blocks = read_yaml(path) or {}
    check_model_file(blocks, path, [expid])
    params = {**(blocks.get("Base") or {}), **(blocks.get(expid) or {})}
    datasets_path = Path(config_dir) / "dataset_config.yaml"
    datasets = (read_yaml(datasets_path) or {}) if datasets_path.is_file() else {}
    dataset = datasets.get(params.get("dataset_id"))
    if isinstance(dataset, dict):
        check_dataset_block(dataset, f"{datasets_path}, block {params['dataset_id']}")
