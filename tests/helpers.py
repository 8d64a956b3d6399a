"""Helpers of the tests that run the tuner on the tiny data (test_tuner, test_lifecycle,
test_ray): one short tuner config and what a grid leaves behind."""
import csv
from pathlib import Path

import yaml

from .conftest import write_tuner_config

# one epoch of two 2,048-row batches on the 4,096-row slice (small_data)
FAST = {"epochs": 1, "batch_size": 2048, "learning_rate": 3.e-3}
DATASET = "MicroLens_tiny_x1"  # write_tuner_config's dataset_id


def make_tuner(folder, data_dir, space=None, name="grid.yaml", **dataset):
    """The demo tuner config on data_dir with FAST and then space in its tuner_space; dataset
    entries override the dataset block's (e.g. train_data=...)."""
    path = write_tuner_config(folder, data_dir, {**FAST, **(space or {})}, name=name)
    if dataset:
        config = yaml.safe_load(path.read_text())
        config["dataset_config"][DATASET].update(dataset)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def expanded_expids(tuner_yaml):
    """The expids of tuner_yaml's grid as the tuner expands it (nothing needs to be written)."""
    from src.tuning.grid import expand
    return expand(tuner_yaml).expids


def checkpoints(folder):
    """Where a grid run in folder keeps its checkpoints, logs and states."""
    return Path(folder) / "checkpoints" / DATASET


def read_summary(folder, tuner_yaml):
    """Summary rows in file order."""
    with open(Path(folder) / f"{Path(tuner_yaml).stem}_summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def statuses(folder, tuner_yaml):
    return {row["expid"]: row["status"] for row in read_summary(folder, tuner_yaml)}


def last_error(done):
    """The last line a finished command printed on stderr ('' for none)."""
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
