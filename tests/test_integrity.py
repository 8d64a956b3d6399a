"""Faults found by fault injection (issue 20), each reproduced for real: damaged weights, an
unfinished run, a test file saved again or missing a column, a full disk while the zip is
written, a validation file with one class. Real runs of the entry scripts on a slice of the
tiny data; the grid is trained once per module and each test works on its own copy."""
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from src.errors import SubmissionError
from src.training.state_hash import state_hash
from src.submission import check_submission, write_submission

from .conftest import REPO, run_cli, tune_cli, wait_for, write_tuner_config

DATASET = "MicroLens_tiny_x1"
SPLITS = Path("data") / "MicroLens_1M_x1"
# an item-side level from the split rows: the case where the old fingerprint covered test
LEVEL = {"name": "item_likes_level", "active": True, "dtype": "int", "type": "categorical",
         "vocab_size": 11, "source": "item", "from_splits": "likes_level"}


# --- set-up: one trained grid, copied per test ---------------------------------------------------
def make_grid(folder, small_data, space):
    """A one-experiment grid in folder with its own copy of the data, all paths relative to
    folder (so a copy of the folder is a complete, independent set-up)."""
    shutil.copytree(small_data / "MicroLens_1M_x1", folder / SPLITS)
    path = write_tuner_config(folder, folder / "data", space, name="grid.yaml")
    config = yaml.safe_load(path.read_text())
    dataset = config["dataset_config"][DATASET]
    for key in ("train_data", "valid_data", "test_data", "item_info"):
        dataset[key] = f"./{SPLITS}/{Path(dataset[key]).name}"
    dataset["data_root"] = "./data/"
    dataset["feature_cols"].append(dict(LEVEL))
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    from src.tuning.tuner import expand_grid
    _, (expid,) = expand_grid(path)
    return expid


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory):
    """(folder, expid) of a finished one-run grid (its result line, checkpoint, no state)."""
    folder = tmp_path_factory.mktemp("trained")
    expid = make_grid(folder, small_data, {"epochs": 1, "batch_size": 2048,
                                           "learning_rate": 3.e-3})
    done = tune_cli(folder, "grid.yaml", slots=1)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder, expid


@pytest.fixture
def copy(trained, tmp_path):
    """A copy of the trained folder for one test: (folder, expid)."""
    folder, expid = trained
    shutil.copytree(folder, tmp_path / "work")
    return tmp_path / "work", expid


def checkpoint_of(folder, expid):
    return folder / "checkpoints" / DATASET / f"{expid}.model"


def predict(folder, *extra, **kwargs):
    return subprocess.run([sys.executable, str(REPO / "prediction.py"), "--config", "grid",
                           *map(str, extra)], cwd=folder, capture_output=True, text=True,
                          timeout=300, **kwargs)


def error_line(done):
    """The one line a refusal prints (and that nothing else, a traceback, was printed)."""
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.stderr.strip().splitlines()[-1]


def zips(folder):
    return sorted(p.name for p in (folder / "submission").rglob("*") if p.is_file()) \
        if (folder / "submission").exists() else []


def edit_checkpoint(path, change, rehash=False):
    """Change the weights of a checkpoint as a tool outside this toolkit would: load, edit,
    save (its recorded hash kept as it was, or recomputed with rehash)."""
    saved = torch.load(path, weights_only=True)
    change(saved["state_dict"])
    if rehash:
        saved["weights_sha256"] = state_hash(saved["state_dict"])
    torch.save(saved, path)


def output_weight(state_dict):
    """The name of the output layer's weight: the last 2-D tensor with one output row."""
    return [k for k, v in state_dict.items() if v.ndim == 2 and v.shape[0] == 1][-1]


# --- damaged weights -------------------------------------------------------------------------------
def test_state_hash_sees_every_bit_dtype_and_shape():
    weights = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor(1.5)}
    base = state_hash(weights)
    assert base == state_hash({k: v.clone() for k, v in weights.items()})
    flipped = {**weights, "a": -weights["a"]}  # the sign bits; -0.0 differs from 0.0 too
    assert state_hash(flipped) != base
    assert state_hash({**weights, "a": weights["a"].reshape(3, 2)}) != base
    assert state_hash({**weights, "a": weights["a"].double()}) != base
    assert state_hash({**weights, "b": weights["b"].bfloat16()}) != state_hash(
        {**weights, "b": torch.tensor(1.0).bfloat16()})
    assert state_hash(dict(reversed(list(weights.items())))) != base


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_flipped_output_weights_are_refused_and_the_tuner_retrains_them(copy):
    """Issue 20.1: the sign of the output layer's weights flipped in the best checkpoint."""
    folder, expid = copy
    checkpoint = checkpoint_of(folder, expid)
    edit_checkpoint(checkpoint, lambda sd: sd[output_weight(sd)].neg_())
    refused = predict(folder, "--expid", "best")
    assert refused.returncode == 2
    line = error_line(refused)
    assert str(checkpoint) in line and "is damaged" in line and "Fix: retrain" in line
    assert zips(folder) == []

    rerun = tune_cli(folder, "grid.yaml", slots=1)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "done before" not in rerun.stdout and " ok " in rerun.stdout
    assert f"{expid} runs again: checkpoint checkpoints/{DATASET}/{expid}.model is damaged" \
        in rerun.stderr
    assert predict(folder, "--expid", "best").returncode == 0


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_weights_replaced_with_a_consistent_hash_are_refused_by_the_result_line(copy):
    """Issue 20.1: three tensors zeroed (every row then scored alike), the checkpoint's own
    hash recomputed: the result line still knows the weights its run evaluated."""
    folder, expid = copy
    checkpoint = checkpoint_of(folder, expid)

    def zero_three(state_dict):
        for name in [k for k, v in state_dict.items() if v.is_floating_point()][-3:]:
            state_dict[name].zero_()
    edit_checkpoint(checkpoint, zero_three, rehash=True)
    refused = predict(folder, "--expid", expid)
    assert refused.returncode == 2
    line = error_line(refused)
    assert str(checkpoint) in line and "holds other weights" in line and "grid.csv" in line
    assert zips(folder) == []
    rerun = tune_cli(folder, "grid.yaml", slots=1)
    assert "done before" not in rerun.stdout and "holds other weights" in rerun.stderr


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_result_lines_without_a_weights_hash_are_used_and_called_unverified(copy):
    """Lines written before weights were hashed: prediction and the tuner keep them, saying
    that the weights could not be verified."""
    folder, expid = copy
    lines = (folder / "grid.csv").read_text()
    assert ",[weights] " in lines
    (folder / "grid.csv").write_text("".join(
        part.split(",[weights] ")[0] + ",[train]" + part.split(",[train]", 1)[1]
        for part in lines.splitlines(keepends=True)))
    done = predict(folder, "--expid", expid)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "has no weights hash" in done.stderr and "cannot be verified" in done.stderr
    rerun = tune_cli(folder, "grid.yaml", slots=1)
    assert rerun.returncode == 0 and "done before" in rerun.stdout
    assert "kept unverified" in rerun.stderr


def test_a_constant_score_column_is_refused(tmp_path):
    ids = np.arange(20)
    pd.DataFrame({"ID": ids}).to_parquet(tmp_path / "test.parquet")
    zip_path = write_submission(ids, {"Task2": np.full(20, 0.2388)}, tmp_path, "flat")
    with pytest.raises(SubmissionError, match=r"column Task2: every row has the score 0.2388"):
        check_submission(zip_path, tmp_path / "test.parquet")
    cli = subprocess.run([sys.executable, "-m", "src.submission", str(zip_path), "--test",
                          str(tmp_path / "test.parquet")], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 2 and "constant column" in error_line(cli)
    varied = write_submission(ids, {"Task2": np.linspace(0.1, 0.9, 20)}, tmp_path, "varied")
    assert check_submission(varied, tmp_path / "test.parquet").startswith("OK")


# --- an unfinished run -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def killed(small_data, tmp_path_factory):
    """(folder, expid) of a run killed after its third evaluation: state on disk, no line."""
    folder = tmp_path_factory.mktemp("killed")
    expid = make_grid(folder, small_data, {"batch_size": 256, "eval_steps": 1, "epochs": 3,
                                           "early_stop_patience": 100, "learning_rate": 3.e-3})
    log = folder / "checkpoints" / DATASET / f"{expid}.log"
    run = subprocess.Popen([sys.executable, str(REPO / "run_expid.py"), "--config", "grid",
                            "--expid", expid], cwd=folder, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: log.exists() and log.read_text().count("Evaluation @") >= 3, 180,
                 "three evaluations")
    finally:
        run.kill()
        run.wait()
    state = folder / "checkpoints" / DATASET / f"{expid}.state"
    wait_for(state.exists, 5, "the training state")
    assert not (folder / "grid.csv").exists()
    return folder, expid


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_an_unfinished_run_is_refused_unless_allowed(killed):
    """Issue 20.2: prediction of a run killed after three evaluations."""
    folder, expid = killed
    refused = predict(folder, "--expid", expid, "--out", "refused")
    assert refused.returncode == 2
    line = error_line(refused)
    assert f"experiment {expid} of grid is unfinished" in line and ".state" in line
    assert "rerun the tuner (python run_param_tuner.py --config grid.yaml" in line
    assert "--allow-unfinished" in line and not list((folder / "refused").rglob("*.*"))
    allowed = predict(folder, "--expid", expid, "--allow-unfinished", "--out", "allowed")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "not on record" in allowed.stderr and (folder / "allowed" / f"{expid}.zip").exists()


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_a_damaged_training_state_is_not_resumed(killed, tmp_path):
    folder, expid = killed
    shutil.copytree(folder, tmp_path / "work")
    folder = tmp_path / "work"
    state_path = folder / "checkpoints" / DATASET / f"{expid}.state"
    state = torch.load(state_path, weights_only=True)
    state["model"][output_weight(state["model"])].neg_()
    torch.save(state, state_path)
    done = run_cli("run_expid.py", "--config", "grid", "--expid", expid, cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (f"Starting from scratch: training state checkpoints/{DATASET}/{expid}.state is "
            f"damaged") in done.stderr
    assert "Resumed from the training state" not in done.stderr


# --- the test file is not part of a run's identity ---------------------------------------------------
@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_a_test_file_saved_again_keeps_the_results(copy):
    """Issue 20.3: the same test rows written with another compression."""
    folder, expid = copy
    test = folder / SPLITS / "test.parquet"
    before = test.read_bytes()
    pd.read_parquet(test).to_parquet(test, compression="gzip")
    assert test.read_bytes() != before
    done = predict(folder, "--expid", "best")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder / "submission" / f"{expid}.zip").exists()
    rerun = tune_cli(folder, "grid.yaml", slots=1)
    assert rerun.returncode == 0 and "done before" in rerun.stdout


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_a_missing_test_column_is_named(copy):
    folder, expid = copy
    test = folder / SPLITS / "test.parquet"
    pd.read_parquet(test).drop(columns=["likes_level"]).to_parquet(test)
    refused = predict(folder, "--expid", "best")
    assert refused.returncode == 2
    line = error_line(refused)
    assert f"file {SPLITS / 'test.parquet'}" in line and "column 'likes_level'" in line
    assert "missing column" in line and zips(folder) == []


# --- writing the zip on a full disk ------------------------------------------------------------------
def _small_file_limit():
    """In the child: files may not grow past 2 kB (the csv of 512 rows is ~8 kB); the signal
    that would kill the process is ignored, so writes fail with EFBIG as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_a_full_disk_while_writing_the_zip_is_one_line_and_leaves_nothing(copy):
    folder, expid = copy
    refused = predict(folder, "--expid", expid, preexec_fn=_small_file_limit)
    assert refused.returncode == 2
    line = error_line(refused)
    assert f"cannot write the submission submission/{expid}.zip" in line
    assert "File too large" in line and "nothing was written" in line
    assert zips(folder) == [] and not (folder / "submission" / expid).exists()


# --- a validation file with one class -----------------------------------------------------------------
@pytest.mark.slow  # trains a grid through the tuner (shared per module)
def test_a_validation_file_with_one_class_is_refused_before_training(copy):
    """Issue 20.4: training crashed after its first epoch (Only one class present in y_true)."""
    folder, expid = copy
    valid = folder / SPLITS / "valid.parquet"
    frame = pd.read_parquet(valid)
    frame["label"] = np.zeros(len(frame), dtype=frame["label"].dtype)
    frame.to_parquet(valid)
    refused = run_cli("run_expid.py", "--config", "grid", "--expid", expid, cwd=folder)
    assert refused.returncode == 2
    line = error_line(refused)
    assert f"file {SPLITS / 'valid.parquet'}" in line and "column 'label'" in line
    assert "holds only the label 0" in line and "both classes" in line
    assert "Start training" not in refused.stderr
