"""Nothing silently wrong, before and around the runs: every check before training, and the
messages of what is refused (the runs themselves: test_lifecycle.py). Real runs through the
command lines on a 4,096-row slice of the tiny data."""
import os

import pandas as pd
import pytest
import torch
import yaml

from src.training.checkpoints import atomic_save
from src.tuning.slots import slot_environment
from src.errors import UserError

from .conftest import REPO, run_cli, tune_cli
from .helpers import (DATASET, FAST, SLOW, checkpoints, expids_of, last_error, make_tuner, predict,
                      start_run)


# --- 1. checks before training ---------------------------------------------------------------
@pytest.mark.parametrize("key, value, message", [
    ("learning_rate", "fast", "learning_rate='fast' must be a number > 0"),
    ("learning_rate", "1e-2", "YAML reads 1e-2 without a dot as a string; write 0.01"),
    ("batch_size", -5, "batch_size=-5 must be a whole number >= 1"),
    ("net_dropout", 1.5, "net_dropout=1.5 must be a number in [0, 1)"),
    ("embedding_dim", 0, "embedding_dim=0 must be a whole number >= 1"),
    ("optimizer", "nosuch", "optimizer='nosuch' must be one of adam"),
    ("dnn_activations", "relux", "dnn_activations='relux' must be one of relu"),
])
def test_bad_grid_values_are_refused_before_anything_runs(small_data, tmp_path, key, value,
                                                           message):
    tuner_yaml = make_tuner(tmp_path, small_data, {key: [value, FAST.get(key, 0.1)]}
                            if key != "learning_rate" else {key: [3.e-3, value]})
    done = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert done.returncode == 2
    assert message in last_error(done) and "(in DIN_MicroLens_tiny_x1_00" in last_error(done)
    assert len(done.stderr.strip().splitlines()) == 1  # one line, nothing before it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_misspelt_key_gets_a_did_you_mean_and_writes_nothing(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, {"learnig_rate": [1.e-3]})
    done = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert done.returncode == 2
    assert "tuner_space key 'learnig_rate'" in last_error(done)
    assert "did you mean 'learning_rate'?" in last_error(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_data_error_leaves_no_grid_folder(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, train_data=str(tmp_path / "missing.parquet"))
    done = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert done.returncode == 2 and "missing.parquet" in last_error(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_unwritable_model_root_is_refused_before_training(small_data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    tuner_yaml = make_tuner(tmp_path, small_data, {"model_root": str(blocker / "checkpoints")})
    done = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert done.returncode == 2
    assert f"model_root {blocker / 'checkpoints'} is not writable" in last_error(done)


def test_a_failed_save_names_the_path_and_leaves_no_temporary_file(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / "x.model"
    with pytest.raises(UserError, match=f"cannot write the checkpoint {target}"):
        atomic_save({"w": torch.zeros(3)}, target)
    folder = tmp_path / "ok"
    folder.mkdir()
    atomic_save({"w": torch.zeros(3)}, folder / "x.model")
    assert sorted(p.name for p in folder.iterdir()) == ["x.model"]


def test_gpu_without_cuda_is_refused_before_any_data_is_read(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    tuner_yaml = make_tuner(tmp_path, tmp_path / "no_data")
    done = run_cli("run_param_tuner.py", "--config", tuner_yaml, "--gpu", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "--gpu 0: torch" in last_error(done) and "sees 0 CUDA device(s)" in last_error(done)
    assert "install a CUDA build of torch" in last_error(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_each_gpu_slot_sees_only_its_gpu():
    env, gpu = slot_environment([2, 3], 1, base_env={})
    assert (env["CUDA_VISIBLE_DEVICES"], gpu) == ("3", 0)
    env, gpu = slot_environment([0, 1], 1, base_env={"CUDA_VISIBLE_DEVICES": "4,6"})
    assert (env["CUDA_VISIBLE_DEVICES"], gpu) == ("6", 0)
    env, gpu = slot_environment([-1, -1], 0, base_env={})
    assert gpu == -1 and "CUDA_VISIBLE_DEVICES" not in env and env["OMP_NUM_THREADS"]


# --- 2. messages ---------------------------------------------------------------------------------
def test_unknown_expid_lists_the_known_ones_and_best_hint_fits_the_cpu(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [1.e-2, 3.e-3]})
    from src.tuning.tuner import expand_grid
    config_dir, expids = expand_grid(tuner_yaml)
    done = predict(tmp_path, config_dir, "--expid", "nosuch")
    assert done.returncode == 2 and all(e in last_error(done) for e in expids)
    best = predict(tmp_path, config_dir)
    assert best.returncode == 2 and "--gpu -1" in last_error(best)


def test_non_utf8_result_file_names_file_and_line(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data)
    from src.tuning.tuner import expand_grid
    expand_grid(tuner_yaml)
    (tmp_path / "grid.csv").write_bytes(b" 2026,[exp_id] x,[val] AUC: 0.5\n\xff\xfe broken\n")
    done = predict(tmp_path, tuner_yaml.with_suffix(""))
    assert done.returncode == 2
    assert "result file grid.csv, line 2: not UTF-8 text" in last_error(done)
    assert "Traceback" not in done.stderr


def test_every_option_key_can_be_tuned(small_data, tmp_path):
    """Option keys are gridded like any other key, also absent from the model block."""
    from src.tuning.grid import expand
    tuner_yaml = make_tuner(tmp_path, small_data, {
        "amp_bf16": [False, True], "lr_scheduler": ["plateau", "cosine"], "weight_decay": 1.e-5,
        "deterministic": True, "max_steps": 5})
    grid = expand(tuner_yaml)
    assert len(grid.expids) == 4
    assert {(p["amp_bf16"], p["lr_scheduler"]) for p in map(grid.params, grid.expids)} == {
        (False, "plateau"), (False, "cosine"), (True, "plateau"), (True, "cosine")}
    assert os.listdir(tmp_path) == ["grid.yaml"]  # expand writes nothing


@pytest.mark.slow
def test_the_tuner_does_not_train_beside_a_live_run_of_the_same_experiment(small_data, tmp_path,
                                                                           monkeypatch):
    """A run started by hand (or by another tool) holds its experiment's lock: the tuner waits
    for it, then refuses that experiment instead of training it a second time beside it."""
    from src.tuning import tuner
    tuner_yaml = make_tuner(tmp_path, small_data, {**SLOW, "epochs": 100})
    run, expid, log = start_run(tmp_path, tuner_yaml)
    try:
        monkeypatch.setattr(tuner, "ORPHAN_WAIT_SECONDS", 1)
        monkeypatch.chdir(tmp_path)
        with pytest.raises(tuner.GridFailed):
            tuner.tune(tuner_yaml, [-1])
        status = pd.read_csv(tmp_path / "grid_summary.csv")["status"][0]
        assert status.startswith(f"failed (busy: pid {run.pid} on host")
        assert run.poll() is None  # the hand-started run goes on
    finally:
        run.kill()
        run.wait()


def test_room_for_checkpoints_is_checked_from_the_parameter_count(tmp_path):
    from src.environment import BYTES_PER_PARAMETER, check_room
    from src.params import RunPaths
    import shutil
    paths = RunPaths({"model_id": "x", "dataset_id": "d", "model_root": str(tmp_path)})
    paths.folder.mkdir(parents=True)
    free = shutil.disk_usage(paths.folder).free
    fits = torch.nn.Linear(10, 10)
    check_room(fits, paths)

    class Huge(torch.nn.Module):  # parameters on the meta device take no memory
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.empty(free // BYTES_PER_PARAMETER + 1,
                                                    device="meta"))
    with pytest.raises(UserError, match=f"model_root folder {paths.folder} has .* MB free"):
        check_room(Huge(), paths)


@pytest.mark.slow
def test_an_unwritable_submission_folder_is_refused_before_scoring(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data)
    assert tune_cli(tmp_path, tuner_yaml, slots=1).returncode == 0
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = predict(tmp_path, tuner_yaml.with_suffix(""), "--out", blocker / "sub")
    assert done.returncode == 2
    assert f"submission folder {blocker / 'sub'} is not writable" in last_error(done)
    assert "scoring" not in done.stderr


@pytest.mark.slow
def test_vocab_size_auto_is_recorded_in_the_checkpoint(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data)
    config = yaml.safe_load(tuner_yaml.read_text())
    for col in config["dataset_config"][DATASET]["feature_cols"]:
        if "vocab_size" in col:
            col["vocab_size"] = "auto"
    tuner_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    done = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert done.returncode == 0, done.stderr[-2000:]
    (expid,) = expids_of(tuner_yaml)
    saved = torch.load(checkpoints(tmp_path) / f"{expid}.model", weights_only=True)
    sizes = {c["name"]: c.get("vocab_size") for c in saved["config"]["feature_cols"]}
    items = pd.read_parquet(small_data / "MicroLens_1M_x1" / "item_info.parquet")
    assert sizes["item_id"] == len(items)
    assert sizes["item_tags"] == max(max(t) for t in items["item_tags"]) + 1
    assert predict(tmp_path, tuner_yaml.with_suffix("")).returncode == 0


@pytest.mark.parametrize("config_dir", ["din_config", "task2_config"])
def test_every_shipped_model_block_passes_the_value_checks(small_data, tmp_path, config_dir):
    """A grid on any block of the shipped model configs is accepted as it is."""
    from src.tuning.grid import expand
    blocks = [b for b in yaml.safe_load((REPO / "config" / config_dir / "model_config.yaml")
                                        .read_text()) if b != "Base"]
    tuner_yaml = make_tuner(tmp_path, small_data)
    config = yaml.safe_load(tuner_yaml.read_text())
    config.update(base_config=str(REPO / "config" / config_dir), base_expid=blocks)
    config["tuner_space"] = {"epochs": 1}
    tuner_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    grid = expand(tuner_yaml)
    assert sorted({grid.params(e)["model"] for e in grid.expids}) == sorted(
        {yaml.safe_load((REPO / "config" / config_dir / "model_config.yaml").read_text())[b]
         .get("model") for b in blocks})
    assert len(grid.expids) == len(blocks)


def test_cpu_threads_follow_the_request_the_environment_determinism_and_the_load(monkeypatch):
    from src.environment import cpu_threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads(3) == (3, "--threads")
    assert cpu_threads(None, deterministic=True) == (1, "deterministic: True")
    cores = len(os.sched_getaffinity(0))
    count, why = cpu_threads()
    assert 1 <= count <= cores and why.startswith(f"{cores} cores, load ")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(None, deterministic=True) == (2, "OMP_NUM_THREADS")


def test_deterministic_turns_on_torchs_deterministic_kernels(monkeypatch):
    from src.environment import set_up_torch
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    threads = torch.get_num_threads()
    try:
        set_up_torch({"deterministic": True, "seed": 1}, threads=1)
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.get_num_threads() == 1
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
