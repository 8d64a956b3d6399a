"""Finished work is never overwritten (project issue 20, cases a-e): a rerun, a retrain cut
short, a crash, another config or working folder sharing the files, a second trainer of the
same experiment. Real runs of the entry scripts on the small generated data, real signals."""
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO, run_cli, tune_cli, wait_for, write_tuner_config

DATASET = "MicroLens_tiny_x1"
FAST = {"epochs": 1, "batch_size": 2048, "learning_rate": 3.e-3}
# 16 steps, an evaluation every 4: long enough to be caught mid-run
SLOW = {"epochs": 1, "batch_size": 256, "eval_steps": 4, "early_stop_patience": 100,
        "learning_rate": 3.e-3}


def expand(folder, data, space, name="grid.yaml"):
    from src.tuning.tuner import expand_grid
    tuner_yaml = write_tuner_config(folder, data, space, name=name)
    config_dir, expids = expand_grid(tuner_yaml)
    return tuner_yaml, config_dir, expids


def run_files(folder, expid, root=None):
    """{suffix: bytes} of an experiment's finished files and the result file(s) of folder."""
    base = Path(root or Path(folder) / "checkpoints") / DATASET
    files = {s: (base / f"{expid}{s}").read_bytes() for s in (".model", ".history.csv", ".log")}
    files.update({p.name: p.read_bytes() for p in Path(folder).glob("*.csv")
                  if not p.name.endswith("_summary.csv")})
    return files


def assert_kept(before, after):
    """The finished run's checkpoint, history and result lines as they were; its log only
    appended to."""
    assert after[".model"] == before[".model"]
    assert after[".history.csv"] == before[".history.csv"]
    assert after[".log"].startswith(before[".log"]) and len(before[".log"]) > 0
    for name in before:
        if name.endswith(".csv") and name != ".history.csv":
            assert after[name] == before[name], name


def last_error(done):
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def start_expid(folder, config_dir, expid, *extra, **popen):
    return subprocess.Popen([sys.executable, str(REPO / "run_expid.py"), "--config",
                             str(config_dir), "--expid", expid, *extra], cwd=folder, **popen)


def log_of(folder, expid):
    return Path(folder) / "checkpoints" / DATASET / f"{expid}.log"


def has_line(log, *parts):
    return log.exists() and any(all(p in line for p in parts)
                                for line in log.read_text().splitlines())


# --- (c) a rerun of a finished run; a retrain stopped by SIGTERM -------------------------------
@pytest.mark.slow  # five processes: about 2 minutes on a busy 2-core machine, 40 s idle
def test_a_finished_run_is_kept_and_a_retrain_replaces_it_only_when_it_finishes(small_data,
                                                                                tmp_path):
    _, config_dir, (expid,) = expand(tmp_path, small_data, SLOW)
    first = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = run_files(tmp_path, expid)

    # the same settings and data without --fresh: kept, nothing trained, told how to retrain
    again = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=tmp_path)
    assert again.returncode == 2 and "kept, nothing trained" in last_error(again)
    assert "--fresh" in last_error(again) and "Traceback" not in again.stderr
    assert run_files(tmp_path, expid) == before

    # --fresh, stopped by SIGTERM after it saved its own best checkpoint: nothing lost
    log = log_of(tmp_path, expid)
    retrain = start_expid(tmp_path, config_dir, expid, "--fresh",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: has_line(log, f"P{retrain.pid} ", "Save best model") and
                 log.with_name(f"{expid}.partial.state").exists(), 120,
                 "the retrain's first checkpoint and training state")
        retrain.send_signal(signal.SIGTERM)
        retrain.wait(timeout=60)
    finally:
        retrain.kill()
    assert retrain.returncode == -signal.SIGTERM
    assert_kept(before, run_files(tmp_path, expid))
    assert "Stopped by SIGTERM" in log.read_text()

    # the retrain continues from its own state and, finished, replaces the finished run
    resumed = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = run_files(tmp_path, expid)
    assert "Resumed from the training state" in after[".log"].decode()
    assert after[".model"] != before[".model"]
    assert after["grid.csv"].decode().count("[exp_id]") == 2
    assert not list((tmp_path / "checkpoints" / DATASET).glob("*.partial.*"))
    assert run_cli("prediction.py", "--config", config_dir, "--expid", expid,
                   cwd=tmp_path).returncode == 0


# --- (d) a run that passes the checks and then crashes -------------------------------------------
@pytest.mark.slow  # 20-45 s on a busy 2-core machine
def test_a_crashed_run_keeps_the_finished_runs_log_history_and_checkpoint(small_data, tmp_path):
    _, config_dir, (expid,) = expand(tmp_path, small_data, FAST)
    first = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = run_files(tmp_path, expid)
    # 4,096 train rows in batches of 4,095: the second batch has one row, which batch norm
    # cannot train on (a crash inside torch, after every check passed)
    model_yaml = Path(config_dir) / "model_config.yaml"
    blocks = yaml.safe_load(model_yaml.read_text())
    blocks[expid]["batch_size"] = 4095
    model_yaml.write_text(yaml.safe_dump(blocks, sort_keys=False))
    crashed = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=tmp_path)
    assert crashed.returncode == 1
    after = run_files(tmp_path, expid)
    assert_kept(before, after)
    assert "Expected more than 1 value per channel" in after[".log"].decode()


# --- (a) a copy of a tuner config with one more grid point, (b) two working folders -----------
@pytest.mark.slow  # 20-45 s on a busy 2-core machine
def test_a_copy_of_a_tuner_config_does_not_retrain_the_firsts_runs(small_data, tmp_path):
    first = write_tuner_config(tmp_path, small_data, {**FAST, "learning_rate": [3.e-3]},
                               name="first.yaml")
    second = write_tuner_config(tmp_path, small_data, {**FAST, "learning_rate": [3.e-3, 1.e-2]},
                                name="second.yaml")
    assert tune_cli(tmp_path, first, slots=1).returncode == 0
    (expid,) = yaml.safe_load((tmp_path / "first" / "model_config.yaml").read_text()).keys() \
        - {"Base"}
    before = run_files(tmp_path, expid)
    refused = tune_cli(tmp_path, second, slots=1)
    assert refused.returncode == 2
    assert f"belong to the config folder {tmp_path / 'first'}" in last_error(refused)
    assert "own model_root" in last_error(refused)
    after = run_files(tmp_path, expid)
    assert after == before
    assert not (tmp_path / "second").exists()  # refused before the grid folder is written
    assert run_cli("prediction.py", "--config", tmp_path / "first", cwd=tmp_path).returncode == 0


@pytest.mark.slow  # 20-45 s on a busy 2-core machine
def test_two_working_folders_with_one_absolute_model_root_do_not_share_runs(small_data,
                                                                          tmp_path):
    root = tmp_path / "shared_checkpoints"
    folders = [tmp_path / "w1", tmp_path / "w2"]
    for folder in folders:
        folder.mkdir()
        tuner_yaml = write_tuner_config(folder, small_data, {**FAST, "model_root": str(root)},
                                        name="grid.yaml")
    assert tune_cli(folders[0], tuner_yaml.name, slots=1).returncode == 0
    (expid,) = yaml.safe_load((folders[0] / "grid" / "model_config.yaml").read_text()).keys() \
        - {"Base"}
    before = run_files(folders[0], expid, root)
    refused = tune_cli(folders[1], tuner_yaml.name, slots=1)
    assert refused.returncode == 2
    assert f"belong to the config folder {folders[0] / 'grid'}" in last_error(refused)
    # run_expid.py of the second folder is refused the same way
    from src.tuning.tuner import expand_grid
    expand_grid(folders[1] / "grid.yaml")
    direct = run_cli("run_expid.py", "--config", "grid", "--expid", expid, "--fresh",
                     cwd=folders[1])
    assert direct.returncode == 2 and "belong to the config folder" in last_error(direct)
    assert run_files(folders[0], expid, root) == before


# --- (e) run_expid.py by hand and a tuner on the same experiment --------------------------------
@pytest.mark.slow  # 20-45 s on a busy 2-core machine
def test_a_tuner_does_not_retrain_what_a_hand_started_run_finished(small_data, tmp_path):
    tuner_yaml, config_dir, (expid,) = expand(tmp_path, small_data, SLOW)
    log = log_of(tmp_path, expid)
    hand = start_expid(tmp_path, config_dir, expid, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    tuner_err = tmp_path / "tuner.err"
    tuner = None
    try:
        wait_for(lambda: has_line(log, "Evaluation"), 120, "the hand-started run's evaluation")
        hand.send_signal(signal.SIGSTOP)  # it holds the experiment's lock while the tuner starts
        with open(tuner_err, "w") as err:
            tuner = subprocess.Popen([sys.executable, str(REPO / "run_param_tuner.py"),
                                      "--config", str(tuner_yaml), "--gpu", "-1"],
                                     cwd=tmp_path, stdout=subprocess.PIPE, stderr=err, text=True)
        wait_for(lambda: "is being trained by" in tuner_err.read_text(), 120,
                 "the tuner to wait for the hand-started run")
        hand.send_signal(signal.SIGCONT)
        assert hand.wait(timeout=120) == 0
        out, _ = tuner.communicate(timeout=300)
    finally:
        hand.send_signal(signal.SIGCONT)
        hand.kill()
        if tuner is not None:
            tuner.kill()
    assert tuner.returncode == 0, tuner_err.read_text()[-2000:]
    assert (tmp_path / "grid.csv").read_text().count("[exp_id]") == 1  # trained once
    summary = pd.read_csv(tmp_path / "grid_summary.csv")
    assert summary["status"][0] == "done before" and summary["AUC"][0] > 0


# --- the rules, on files alone (fast) ----------------------------------------------------------
def test_a_new_run_writes_beside_a_finished_checkpoint_only(tmp_path):
    from src.tuning.run_files import run_paths
    params = {"model_id": "E", "dataset_id": "D", "model_root": str(tmp_path)}
    folder = tmp_path / "D"
    folder.mkdir()
    assert not run_paths(params).partial  # nothing there: the experiment's own files
    (folder / "E.model").write_bytes(b"x")
    (folder / "E.state").write_bytes(b"x")
    assert not run_paths(params).partial  # a first run killed part-way continues in place
    (folder / "E.state").unlink()
    paths = run_paths(params)  # finished: beside it
    assert paths.partial and paths.checkpoint == folder / "E.partial.model"
    assert paths.history == folder / "E.partial.history.csv" and paths.log == folder / "E.log"
    (folder / "E.model").unlink()
    (folder / "E.partial.state").write_bytes(b"x")
    assert run_paths(params).partial  # a retrain cut short continues beside


def test_files_of_another_config_folder_are_refused_naming_it(tmp_path):
    from src.errors import UserError
    from src.params import RunPaths
    from src.tuning.run_files import claim
    paths = RunPaths({"model_id": "E", "dataset_id": "D", "model_root": str(tmp_path)})
    claim(paths, tmp_path / "first", "f1")
    before = paths.owner.read_bytes()
    claim(paths, tmp_path / "first", "f2")  # the owner again: fine, the record stays
    with pytest.raises(UserError, match=f"belong to the config folder {tmp_path / 'first'} "
                                        f"\\(fingerprint f1"):
        claim(paths, tmp_path / "second", "f1")
    assert paths.owner.read_bytes() == before
    assert [p.name for p in paths.folder.iterdir()] == ["E.owner.json"]


def test_a_working_folder_moved_as_a_whole_still_owns_its_runs(tmp_path):
    """Config folder and run files moved together (a copied project, a renamed parent folder)
    keep their owner; a config folder elsewhere beside the moved files is still refused."""
    import shutil

    from src.errors import UserError
    from src.params import RunPaths
    from src.tuning.run_files import claim

    def paths_in(work):
        return RunPaths({"model_id": "E", "dataset_id": "D", "model_root": str(work / "ckpt")})

    old = tmp_path / "old"
    (old / "grid").mkdir(parents=True)
    claim(paths_in(old), old / "grid", "f1")
    new = tmp_path / "new"
    shutil.move(old, new)
    claim(paths_in(new), new / "grid", "f1")  # the same relative place: its own files
    with pytest.raises(UserError, match="belong to the config folder"):
        claim(paths_in(new), tmp_path / "elsewhere" / "grid", "f1")
