"""The three task-2 demo commands (config/Task2_demo_tuner_config.yaml) as a user runs them,
in a temporary copy of the repository, ending in a checked rank-average zip of the 9 members.

One difference from the user's run, for the test's time only: after the generator, the train,
valid and test splits are cut to their first rows (the item files stay whole); the config and
the three commands are unchanged."""
import shutil
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.slow

CONFIG = "config/Task2_demo_tuner_config.yaml"
# the three commands of the config's header and of docs/testing.md
GENERATE = ["-m", "src.datagen", "--scale", "tiny", "--out", "data/demo"]
TUNE = ["run_param_tuner.py", "--config", CONFIG, "--gpu", "-1", "-1"]
PREDICT = ["prediction.py", "--config", "config/Task2_demo_tuner_config", "--expid", "best:9",
           "--average", "rank"]
ROWS = {"train": 2048, "valid": 1024, "test": 512}     # the data-size cut (module docstring)


def run(args, cwd):
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def repo_copy(folder):
    """What the three commands read: the code, the scripts (the tuner starts run_expid.py), the task-2 model blocks and the
    demo config (no data, checkpoints or grid folders of the working copy)."""
    shutil.copytree(REPO / "src", folder / "src",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "config" / "task2_config", folder / "config" / "task2_config")
    shutil.copy(REPO / CONFIG, folder / CONFIG)
    for script in ("run_param_tuner.py", "run_expid.py", "prediction.py"):
        shutil.copy(REPO / script, folder / script)
    return folder


def test_three_commands_end_in_a_checked_rank_average_of_nine_families(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    run(GENERATE, repo)
    splits = repo / "data" / "demo" / "MicroLens_1M_x1"
    for split, rows in ROWS.items():
        path = splits / f"{split}.parquet"
        pd.read_parquet(path).head(rows).to_parquet(path)

    run(TUNE, repo)
    with open(repo / CONFIG) as f:
        families = yaml.safe_load(f)["base_expid"]
    results = pd.read_csv(repo / "Task2_demo_tuner_config.csv", header=None)
    assert len(families) == 9 and len(results) == 9

    predicted = run(PREDICT, repo)
    zips = list((repo / "submission").glob("*.zip"))
    assert len(zips) == 1, predicted.stdout
    checked = subprocess.run(
        [sys.executable, "-m", "src.submission", str(zips[0]), "--test",
         str(splits / "test.parquet")], cwd=repo, capture_output=True, text=True, timeout=300)
    # the zip's manifest is printed first, the check's verdict last
    verdict = checked.stdout.strip().splitlines()[-1]
    assert checked.returncode == 0 and verdict.startswith("OK"), checked.stdout
    assert "ensemble of 9" in checked.stdout  # the manifest names the ensemble
    with zipfile.ZipFile(zips[0]) as archive:
        scores = pd.read_csv(archive.open("prediction.csv"))
    assert list(scores.columns) == ["ID", "Task2"] and len(scores) == ROWS["test"]
    # a rank average of 9 members: normalised ranks in (0, 1], many distinct values
    assert scores["Task2"].between(0, 1, inclusive="right").all()
    assert scores["Task2"].nunique() > ROWS["test"] // 2
    assert "ensemble of 9" in predicted.stderr
    for family in families:
        assert f"member {family}_" in predicted.stderr
