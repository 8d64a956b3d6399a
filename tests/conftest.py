"""Shared fixtures: tiny generated data, tuner configs pointing at it; the dataset block and
item table of the model tests (test_models.py, test_model_parts.py); the data checks' tiny
dataset (test_validation*.py; other modules define a `params` of their own, which wins)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from src.data.features import build_feature_map
from src.data.generator import generate
from src.data.item_table import ItemTable

from .parquet_layouts import to_fixed_size
from .validation_data import make_dataset

REPO = Path(__file__).resolve().parent.parent
DEMO_TUNER = REPO / "config" / "DIN_demo_tuner_config.yaml"


@pytest.fixture(scope="session", autouse=True)
def one_cpu_thread_per_process():
    """Tests run on small batches, where torch's multi-threading buys nothing; on a busy
    machine its spinning threads made one epoch 15x slower. One thread per process, also in
    the command lines the tests start."""
    previous = (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"))
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(previous[0])
    if previous[1] is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = previous[1]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Tiny generated data (the real layout): (data folder, generator summary)."""
    out = tmp_path_factory.mktemp("tiny")
    summary = generate(out, scale="tiny", seed=0, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def small_data(tiny_data, tmp_path_factory):
    """The first rows of the tiny data, same item_info: runs take seconds, not minutes."""
    src_dir = tiny_data[0] / "MicroLens_1M_x1"
    out = tmp_path_factory.mktemp("small")
    dst_dir = out / "MicroLens_1M_x1"
    dst_dir.mkdir()
    for split, rows in (("train", 4096), ("valid", 1024), ("test", 512)):
        pd.read_parquet(src_dir / f"{split}.parquet").head(rows).to_parquet(
            dst_dir / f"{split}.parquet")
    pd.read_parquet(src_dir / "item_info.parquet").to_parquet(dst_dir / "item_info.parquet")
    return out


def run_cli(script, *args, cwd, env=None, timeout=300):
    """One of the entry scripts as a user runs it."""
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def tune_cli(folder, tuner_yaml, *extra, slots=2, env=None):
    return run_cli("run_param_tuner.py", "--config", tuner_yaml, "--gpu", *["-1"] * slots,
                   *extra, cwd=folder, env=env)


def wait_for(predicate, timeout, what):
    """Poll predicate until it holds; fail naming what was awaited after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def write_tuner_config(folder, data_dir, tuner_space=None, name="tiny_tuner_config.yaml",
                       dataset_id="MicroLens_tiny_x1"):
    """A copy of the demo tuner config with absolute paths to data_dir, written into folder.

    tuner_space entries override the demo's; the config folder the tuner writes sits beside.
    """
    with open(DEMO_TUNER) as f:
        config = yaml.safe_load(f)
    dataset = config["dataset_config"].pop("MicroLens_demo_x1")
    split_dir = Path(data_dir) / "MicroLens_1M_x1"
    dataset.update(data_root=str(data_dir), item_info=str(split_dir / "item_info.parquet"),
                   **{f"{s}_data": str(split_dir / f"{s}.parquet")
                      for s in ("train", "valid", "test")})
    config["dataset_config"] = {dataset_id: dataset}
    config["dataset_id"] = dataset_id
    config["base_config"] = str(REPO / "config" / "din_config")
    config["tuner_space"].update(tuner_space or {})
    path = Path(folder) / name
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path


# --- the model tests' data (one instance per test module) ---
@pytest.fixture(scope="module")
def dataset(tiny_data, tmp_path_factory):
    """The demo dataset block pointed at the tiny data, and a folder for checkpoints."""
    folder = tmp_path_factory.mktemp("models")
    data_dir, _ = tiny_data
    with open(write_tuner_config(folder, data_dir)) as f:
        block = yaml.safe_load(f)["dataset_config"]["MicroLens_tiny_x1"]
    return dict(block, dataset_id="MicroLens_tiny_x1", model_root=str(folder / "checkpoints"))


@pytest.fixture(scope="module")
def item_table(dataset):
    """The item table of `dataset`, shared read-only by the tests of one module."""
    return ItemTable.from_parquet(dataset["item_info"], build_feature_map(dict(dataset)))


# --- the data checks' tests (test_validation.py, test_validation_values.py) ---
@pytest.fixture
def params(tmp_path):
    return make_dataset(tmp_path / "data")


@pytest.fixture(params=["list", "fixed_size"])
def any_layout(request, tmp_path):
    """The tiny dataset with its list columns stored as list, or as fixed_size_list."""
    params = make_dataset(tmp_path / "data")
    if request.param == "fixed_size":
        rewritten = [to_fixed_size(params[key])
                     for key in ("item_info", "train_data", "valid_data", "test_data")]
        assert rewritten == [["item_tags", "item_emb_d128"]] + [["item_seq"]] * 3
    return params
