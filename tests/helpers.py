"""Helpers of the tests that run the tuner and the entry scripts on the tiny data (test_tuner,
test_lifecycle*, test_ray, test_report): one short tuner config, what a grid leaves behind,
a prediction, a run started (or killed) in the background."""
import csv
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO, run_cli, wait_for, write_tuner_config

# one epoch of two 2,048-row batches on the 4,096-row slice (small_data)
FAST = {"epochs": 1, "batch_size": 2048, "learning_rate": 3.e-3}
DATASET = "MicroLens_tiny_x1"  # write_tuner_config's dataset_id
# small batches, an evaluation every step, no early stop: a run that is still training when
# a test looks at it
SLOW = {"batch_size": 256, "eval_steps": 1, "early_stop_patience": 100, "epochs": 3}


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


def expids_of(tuner_yaml):
    """The expids of the model_config.yaml a tuner wrote for tuner_yaml, in its order."""
    text = (Path(tuner_yaml).with_suffix("") / "model_config.yaml").read_text()
    return list(yaml.safe_load(text))


def predict(folder, config_dir, *extra):
    return run_cli("prediction.py", "--config", config_dir, *extra, cwd=folder)


def start_expid(folder, config_dir, expid):
    """run_expid.py on one experiment in the background, its output discarded."""
    return subprocess.Popen([sys.executable, str(REPO / "run_expid.py"), "--config", config_dir,
                             "--expid", expid], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def start_run(folder, tuner_yaml):
    """Expand the grid of tuner_yaml, start its one experiment with run_expid.py and wait for
    its first evaluation; (process, expid, log path)."""
    from src.tuning.tuner import expand_grid
    config_dir, (expid,) = expand_grid(tuner_yaml)
    run = start_expid(folder, config_dir, expid)
    log = checkpoints(folder) / f"{expid}.log"
    try:
        wait_for(lambda: log.exists() and "Evaluation" in log.read_text(), 120, "training")
    except AssertionError:
        run.kill()
        raise
    return run, expid, log


def kill_mid_epoch(folder, config_dir, expid, log):
    """Start the experiment with run_expid.py and SIGKILL it once its log reaches batch 32: of
    a 64-batch epoch with an evaluation and a state saved every 16 batches, mid-epoch after a
    save. It must not have finished."""
    run = start_expid(folder, config_dir, expid)
    try:
        wait_for(lambda: log.exists() and "batch 32:" in log.read_text(), 120,
                 "the run's second evaluation")
        run.kill()
        run.wait()
    finally:
        run.kill()
    assert "Training finished" not in log.read_text()
