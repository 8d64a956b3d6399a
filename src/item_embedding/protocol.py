"""The fixed task-1 DIN protocol as tuner configs: one per item_info file.

Each config has the format of the baseline's task-1 config (config/
DIN_microlens_mmctr_tuner_config_01.yaml): base_config din_config, base_expid DIN_default, one
dataset block. Only item_info differs between files, so the DIN, data and schedule are the
same for all and only the five knobs the challenge allows may vary in the grid.

Protocol choices and why:
- model "baseline" (default) is DIN_default unchanged: the comparable task-1 protocol.
  model "demo" takes the small dims of config/DIN_demo_tuner_config.yaml so a CPU can run
  mid-scale data; its AUCs rank embeddings but are NOT comparable to task-1 numbers.
- epochs/early_stop_patience default to the baseline's (100/3); fewer epochs is a CPU budget
  choice, recorded in the table.
- train_rows, when set, trains on a fixed random subset of train.parquet (same rows for
  every file); valid and test stay complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from ..atomic import atomic_write
from ..errors import ConfigError, DataError
from ..tuning.task1_rules import (FIXED_EXPID, FIXED_MODEL_DIR, KNOBS, BASELINE_DATASET_ID,
                           baseline_dataset_params)

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEMO_TUNER = REPO / "config" / "DIN_demo_tuner_config.yaml"
SPLIT_DIR = "MicroLens_1M_x1"
# The five knobs task 1 allows to tune; everything else about the DIN is fixed.
TASK1_KNOBS = KNOBS
# Knob values outside the grid: the baseline's task-1 config (its first embedding_regularizer).
DEFAULT_KNOBS = {"embedding_regularizer": 1.e-6, "net_regularizer": 0, "net_dropout": 0.1,
                 "learning_rate": 1.e-3, "batch_size": 8192}
# Two grid points by default; --grid replaces this.
DEFAULT_GRID = {"net_dropout": [0.1, 0.3]}
# Architecture keys the demo model changes; read from the demo config, never restated here.
DEMO_MODEL_KEYS = ("embedding_dim", "dnn_hidden_units", "attention_hidden_units")
MODELS = ("baseline", "demo")
BASELINE_TAGS_VOCAB = 11740


def _load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def parse_grid(items: Iterable[str] | None) -> dict[str, list[Any]]:
    """["net_dropout=0.1,0.3", ...] -> {"net_dropout": [0.1, 0.3]}; only task-1 knobs."""
    grid = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise ConfigError(f"--grid {item!r}: expected KEY=V1[,V2...], e.g. "
                              f"learning_rate=1e-3,3e-3")
        if key not in TASK1_KNOBS:
            raise ConfigError(f"--grid {item!r}: task 1 only allows tuning "
                              f"{', '.join(TASK1_KNOBS)}; {key!r} is fixed by the protocol")
        try:
            parsed = [yaml.safe_load(v) for v in values.split(",")]
            parsed = [int(v) if key == "batch_size" else float(v) for v in parsed]
        except (TypeError, ValueError, yaml.YAMLError):
            raise ConfigError(f"--grid {item!r}: values must be numbers") from None
        grid[key] = parsed
    return grid


def dataset_id_for(path: Path | str) -> str:
    stem = re.sub(r"[^0-9A-Za-z_]+", "_", Path(path).stem).strip("_") or "item_info"
    return f"{BASELINE_DATASET_ID}_{stem}"


def tags_vocab(item_info: Path | str) -> int:
    """max tag id + 1, or the baseline's vocab (11,740) when that is larger."""
    tags = pq.read_table(item_info, columns=["item_tags"]).column("item_tags")
    top = pc.max(pc.list_flatten(tags)).as_py() if len(tags) else 0
    return max(BASELINE_TAGS_VOCAB, int(top or 0) + 1)


def train_subset(data_dir: Path | str, rows: int, work_dir: Path | str) -> Path:
    """A fixed random subset of train.parquet (rows kept in file order), written once and
    reused; its name carries a digest of the source so another data folder never reuses it."""
    source = (Path(data_dir) / SPLIT_DIR / "train.parquet").resolve()
    if not source.is_file():
        raise DataError(source, "file not found", fix="--data-dir must hold MicroLens_1M_x1/")
    stat = source.stat()
    digest = hashlib.md5(f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{rows}".encode()).hexdigest()
    out = Path(work_dir) / "data" / f"train_{rows}_{digest[:8]}.parquet"
    if out.is_file():
        return out
    table = pq.read_table(source)
    if rows >= table.num_rows:
        logger.info("--train-rows %d >= %d rows of %s: using all of it", rows, table.num_rows,
                    source)
        return source
    keep = np.sort(np.random.default_rng(0).choice(table.num_rows, rows, replace=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table.take(keep), tmp)
    logger.info("wrote a %d-row training subset to %s", rows, out)
    return out


def tuner_config(item_info: Path | str, data_dir: Path | str, model: str = "baseline",
                 grid: dict[str, list[Any]] | None = None, knobs: dict[str, Any] | None = None,
                 epochs: int | None = None, patience: int | None = None,
                 seeds: Iterable[int] | None = None,
                 train_data: Path | str | None = None) -> dict[str, Any]:
    """The tuner config dict for one item_info file (paths absolute, so it runs from any
    folder)."""
    if model not in MODELS:
        raise ConfigError(f"--model {model!r}: expected one of {', '.join(MODELS)}")
    item_info, data_dir = Path(item_info).resolve(), Path(data_dir).resolve()
    dataset = baseline_dataset_params()  # a fresh copy: read from the baseline's tuner config
    split = data_dir / SPLIT_DIR
    n_rows = pq.ParquetFile(item_info).metadata.num_rows
    dataset.update(data_root=str(data_dir) + "/", item_info=str(item_info),
                   train_data=str(train_data or split / "train.parquet"),
                   valid_data=str(split / "valid.parquet"), test_data=str(split / "test.parquet"))
    vocab = {"item_id": n_rows, "item_tags": tags_vocab(item_info)}
    for col in dataset["feature_cols"]:
        if col["name"] in vocab:
            col["vocab_size"] = vocab[col["name"]]
    dataset_id = dataset_id_for(item_info)

    space = {**DEFAULT_KNOBS, **(knobs or {})}
    for key, values in (DEFAULT_GRID if grid is None else grid).items():
        space[key] = values
    if model == "demo":
        demo_space = _load_yaml(DEMO_TUNER)["tuner_space"]
        space.update({k: demo_space[k] for k in DEMO_MODEL_KEYS})
    if epochs is not None:
        space["epochs"] = int(epochs)
    if patience is not None:
        space["early_stop_patience"] = int(patience)
    if seeds:
        space["seed"] = [int(s) for s in seeds]
    return {
        "base_config": str(FIXED_MODEL_DIR),
        "base_expid": FIXED_EXPID,
        "dataset_id": dataset_id,
        "dataset_config": {dataset_id: dataset},
        "tuner_space": space,
    }


def dataset_fingerprint(config: dict[str, Any], item_info: Path | str) -> str:
    """What, besides the model params hashed into expids, decides a run's result: the
    dataset block and the bytes of item_info. FuxiCTR's expids hash only model params, so a
    rebuilt file under the same name would otherwise be skipped as "done before"."""
    digest = hashlib.sha1()
    with open(item_info, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    digest.update(json.dumps(config["dataset_config"], sort_keys=True).encode())
    return digest.hexdigest()[:12]


def write_tuner_config(config: dict[str, Any], path: Path | str, header: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        f.write(header)
        yaml.safe_dump(config, f, sort_keys=False, default_flow_style=None, width=120)
    return path
