"""Nothing silently wrong: a submission comes from the run it claims, one writer per grid and
per experiment, logs that explain failures, resume of a killed run (the checks before
training and the error messages: test_lifecycle_checks.py). Real runs through the command
lines on a 4,096-row slice of the tiny data."""
import signal
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
import torch
import yaml

from src.training.checkpoints import atomic_save
from src.errors import ConfigError
from src.predict import combine_scores

from .conftest import REPO, run_cli, tune_cli, wait_for
from .helpers import (DATASET, FAST, SLOW, checkpoints, expanded_expids, expids_of, kill_mid_epoch,
                      last_error, make_tuner, predict, start_run)
from .processes import alive, processes_mentioning


def zip_bytes(path):
    with zipfile.ZipFile(path) as zf:
        return zf.read("prediction.csv")


def same_zip(folder, expid, first, second):
    """Whether the zips of expid that two predictions wrote into folder/first and
    folder/second hold the same prediction.csv."""
    return zip_bytes(folder / first / f"{expid}.zip") == zip_bytes(folder / second / f"{expid}.zip")


# --- 1. a submission always comes from the run it claims ------------------------------------
@pytest.mark.slow
def test_two_configs_differing_only_in_paths_keep_their_own_checkpoints(small_data, tmp_path):
    """The scenario of the issue: a copy of a config with other data (here another item_info)
    is tuned after the first; --expid best on the first still predicts with its own model."""
    other = tmp_path / "other_item_info.parquet"
    items = pd.read_parquet(small_data / "MicroLens_1M_x1" / "item_info.parquet")
    items["item_emb_d128"] = items["item_emb_d128"].apply(lambda v: list(reversed(v)))
    items.to_parquet(other)
    first = make_tuner(tmp_path, small_data, name="first.yaml")
    second = make_tuner(tmp_path, small_data, name="second.yaml", item_info=str(other))
    assert tune_cli(tmp_path, first, slots=1).returncode == 0
    before = predict(tmp_path, first.with_suffix(""), "--out", tmp_path / "before")
    assert before.returncode == 0, before.stderr[-2000:]
    assert expids_of(first) != expanded_expids(second)  # the dataset block is in the expid
    assert tune_cli(tmp_path, second, slots=1).returncode == 0
    after = predict(tmp_path, first.with_suffix(""), "--out", tmp_path / "after")
    assert after.returncode == 0, after.stderr[-2000:]
    assert same_zip(tmp_path, expids_of(first)[0], "before", "after")


@pytest.mark.slow
def test_a_foreign_or_replaced_checkpoint_is_refused_and_retrained(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [3.e-3, 1.e-2]})
    assert tune_cli(tmp_path, tuner_yaml).returncode == 0
    config_dir = tuner_yaml.with_suffix("")
    a, b = expids_of(tuner_yaml)
    best_line = [line for line in (tmp_path / "grid.csv").read_text().splitlines()]
    assert len(best_line) == 2
    model_a, model_b = checkpoints(tmp_path) / f"{a}.model", checkpoints(tmp_path) / f"{b}.model"
    saved_a = model_a.read_bytes()

    # another experiment's checkpoint in its place: refused, naming what differs
    model_a.write_bytes(model_b.read_bytes())
    refused = predict(tmp_path, config_dir, "--expid", a)
    assert refused.returncode == 2
    assert "was not made by experiment" in last_error(refused) and "learning_rate" in \
        last_error(refused) and "Fix: retrain" in last_error(refused)
    assert not list((tmp_path / "submission").glob("*.zip"))

    # the same config's checkpoint, but from another run than the result line: refused
    checkpoint = torch.load(model_b, weights_only=True)
    checkpoint["run_id"] = "some-other-run"
    atomic_save(checkpoint, model_b)
    refused = predict(tmp_path, config_dir, "--expid", b)
    assert refused.returncode == 2 and "was written by run some-other-run" in last_error(refused)

    # the tuner does not call either experiment done: both train again
    model_a.write_bytes(saved_a[:len(saved_a) // 2])  # and a truncated checkpoint
    refused = predict(tmp_path, config_dir, "--expid", a)
    assert refused.returncode == 2 and "is unreadable (truncated or corrupt" in last_error(refused)
    assert "weights_only" not in refused.stderr
    rerun = tune_cli(tmp_path, tuner_yaml)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "done before" not in rerun.stdout and rerun.stdout.count(" ok ") == 2
    assert predict(tmp_path, config_dir).returncode == 0


@pytest.mark.slow
def test_a_capped_run_never_replaces_the_full_run(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data)
    assert tune_cli(tmp_path, tuner_yaml, slots=1).returncode == 0
    (expid,) = expids_of(tuner_yaml)
    config_dir = tuner_yaml.with_suffix("")
    full = (checkpoints(tmp_path) / f"{expid}.model").read_bytes()
    first = predict(tmp_path, config_dir, "--out", tmp_path / "first")
    capped = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, "--max-steps", 1,
                     cwd=tmp_path)
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert (checkpoints(tmp_path) / f"{expid}.model").read_bytes() == full
    assert (checkpoints(tmp_path) / f"{expid}.max_steps_1.model").exists()
    assert f"[exp_id] {expid}.max_steps_1," in (tmp_path / "grid.csv").read_text()
    second = predict(tmp_path, config_dir, "--out", tmp_path / "second")
    assert first.returncode == second.returncode == 0
    assert same_zip(tmp_path, expid, "first", "second")


@pytest.mark.slow
def test_best_is_chosen_among_the_current_grid_as_in_the_summary(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [1.e-2, 3.e-3]})
    assert tune_cli(tmp_path, tuner_yaml).returncode == 0
    old = set(expids_of(tuner_yaml))
    # the grid edited: its old lines stay in the result file but are no longer candidates
    make_tuner(tmp_path, small_data, {"learning_rate": 1.e-4})
    done = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert done.returncode == 0
    (new,) = expids_of(tuner_yaml)
    assert new not in old
    summary = pd.read_csv(tmp_path / "grid_summary.csv")
    assert list(summary["expid"]) == [new]
    predicted = predict(tmp_path, tuner_yaml.with_suffix(""))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert f"submission/{new}.zip" in predicted.stdout
    assert "not in this grid left out" in predicted.stderr


@pytest.mark.slow
def test_ensemble_of_the_two_best(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [1.e-2, 3.e-3]})
    assert tune_cli(tmp_path, tuner_yaml).returncode == 0
    config_dir = tuner_yaml.with_suffix("")
    done = predict(tmp_path, config_dir, "--expid", "best:2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("OK: ") == 1  # the verdict once
    assert "ensemble of 2: validation AUC" in done.stderr
    zips = sorted((tmp_path / "submission").glob("*.zip"))
    assert [z.name[:10] for z in zips] == ["ensemble2_"]
    singles = []
    for expid in expids_of(tuner_yaml):
        assert predict(tmp_path, config_dir, "--expid", expid).returncode == 0
        singles.append(pd.read_csv(tmp_path / "submission" / expid / "prediction.csv"))
    ensemble = pd.read_csv(tmp_path / "submission" / zips[0].stem / "prediction.csv")
    mean = (singles[0]["Task2"] + singles[1]["Task2"]) / 2
    assert (ensemble["Task2"] - mean).abs().max() <= 1e-8  # printed with 8 decimals
    # rank averaging: its own zip beside the mean's, checked (scores in (0, 1]), and the
    # members' ranks averaged (from the printed singles, whose rounding may tie two rows)
    ranked = predict(tmp_path, config_dir, "--expid", "best:2", "--average", "rank")
    assert ranked.returncode == 0 and ranked.stdout.count("OK: ") == 1, ranked.stderr[-2000:]
    assert "rank average" in ranked.stderr
    rank_csv = tmp_path / "submission" / f"{zips[0].stem}_rank" / "prediction.csv"
    rank_scores = pd.read_csv(rank_csv)["Task2"]
    assert rank_scores.min() > 0 and rank_scores.max() <= 1
    by_hand = combine_scores([s["Task2"] for s in singles], "rank")
    assert abs(rank_scores - by_hand).max() <= 1 / len(rank_scores)
    asked = predict(tmp_path, config_dir, "--expid", "best:3")
    assert asked.returncode == 2 and "only 2 experiment(s)" in last_error(asked)


def test_rank_average_is_the_mean_of_normalised_ranks():
    first, second = [0.1, 0.4, 0.35, 0.8], [0.9, 0.2, 0.2, 0.3]
    # ranks / 4: first 1, 3, 2, 4 -> .25 .75 .5 1; second 4, 1.5, 1.5, 3 -> 1 .375 .375 .75
    expected = [(0.25 + 1) / 2, (0.75 + 0.375) / 2, (0.5 + 0.375) / 2, (1 + 0.75) / 2]
    assert combine_scores([first, second], "rank") == pytest.approx(expected)
    assert combine_scores([first], "rank") == pytest.approx(first)  # one member: as it is
    assert combine_scores([first, second], "mean") == pytest.approx(
        [0.5, 0.3, 0.275, 0.55])


def test_rank_and_mean_averages_order_rows_differently():
    # a confident member (scores near 0 and 1) outvotes a timid one under the mean; under
    # rank averaging both count alike, and the order of rows 0 and 1 flips
    confident, timid = [0.99, 0.6, 0.2, 0.1], [0.40, 0.45, 0.44, 0.43]
    mean = combine_scores([confident, timid], "mean")
    rank = combine_scores([confident, timid], "rank")
    assert mean[0] > mean[1]  # 0.695 > 0.525
    assert rank[0] < rank[1]  # (1 + .25) / 2 < (.75 + 1) / 2
    assert ((rank > 0) & (rank <= 1)).all()
    with pytest.raises(ConfigError, match="expected one of mean, rank"):
        combine_scores([confident, timid], "median")


@pytest.mark.slow
def test_a_grid_that_mixes_models_gives_a_zip_for_each_and_for_their_ensemble(small_data,
                                                                               tmp_path):
    blocks = ["DIN_default_cpu", "DINCrossAttention_cpu", "QIN_cpu", "TransformerDCN_cpu",
              "DINInterest_cpu", "CosineInterest_cpu"]
    tuner_yaml = make_tuner(tmp_path, small_data)
    config = yaml.safe_load(tuner_yaml.read_text())
    config.update(base_config=str(REPO / "config" / "task2_config"), base_expid=blocks)
    config["tuner_space"] = {**FAST, "verbose": 0, "deterministic": True}
    tuner_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    done = tune_cli(tmp_path, tuner_yaml)
    assert done.returncode == 0, done.stderr[-2000:]
    config_dir = tuner_yaml.with_suffix("")
    expids = expids_of(tuner_yaml)
    blocks_written = yaml.safe_load((config_dir / "model_config.yaml").read_text())
    assert {blocks_written[e]["model"] for e in expids} == {
        "DIN", "DINCrossAttention", "QIN", "TransformerDCN", "DINInterest", "CosineInterest"}
    singles = []
    for expid in expids:
        done = predict(tmp_path, config_dir, "--expid", expid)
        assert done.returncode == 0 and done.stdout.count("OK: ") == 1, done.stderr[-2000:]
        singles.append(pd.read_csv(tmp_path / "submission" / expid / "prediction.csv")["Task2"])
    done = predict(tmp_path, config_dir, "--expid", *expids)
    assert done.returncode == 0 and done.stdout.count("OK: ") == 1, done.stderr[-2000:]
    assert f"ensemble of {len(blocks)}: validation AUC" in done.stderr
    (zipped,) = (tmp_path / "submission").glob(f"ensemble{len(blocks)}_*.zip")
    ensemble = pd.read_csv(tmp_path / "submission" / zipped.stem / "prediction.csv")["Task2"]
    assert (ensemble - sum(singles) / len(blocks)).abs().max() <= 1e-8  # printed with 8 decimals
    # the members score differently, so the mean is none of them
    assert min((ensemble - single).abs().max() for single in singles) > 1e-4

# --- 2. one writer per grid and per experiment ----------------------------------------------
@pytest.mark.slow
def test_one_tuner_per_grid_and_orphans_stop_themselves(small_data, tmp_path):
    # long enough to be caught training (3,000 steps), short enough to finish on the rerun
    tuner_yaml = make_tuner(tmp_path, small_data, {**SLOW, "epochs": 1000, "eval_steps": 10,
                                                   "max_steps": 3000})
    (expid,) = expanded_expids(tuner_yaml)
    first = subprocess.Popen([sys.executable, str(REPO / "run_param_tuner.py"), "--config",
                              str(tuner_yaml), "--gpu", "-1"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = checkpoints(tmp_path) / f"{expid}.log"
    try:
        wait_for(lambda: log.exists() and "Evaluation" in log.read_text(), 120, "training")
        second = tune_cli(tmp_path, tuner_yaml, slots=1)
        assert second.returncode == 2
        assert f"is in use by pid {first.pid} on host" in last_error(second)
        direct = run_cli("run_expid.py", "--config", tuner_yaml.with_suffix(""), "--expid", expid,
                         cwd=tmp_path)
        assert direct.returncode == 2 and f"experiment {expid} is in use by pid" in \
            last_error(direct)
        first.kill()  # kill -9 the tuner: its run is now an orphan
        first.wait()
        child = [p for p in processes_mentioning(str(tuner_yaml.with_suffix(""))) if p != first.pid]
        wait_for(lambda: not any(alive(p) for p in child), 60, "the orphan to stop")
    finally:
        first.kill()
    assert "the tuner (pid" in log.read_text() and "is gone" in log.read_text()
    rerun = tune_cli(tmp_path, tuner_yaml, slots=1)  # the dead tuner's lock is taken over
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Resumed from the training state" in log.read_text()


# --- 3. logs ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_logs_explain_failures_and_a_refused_run_writes_nothing(small_data, tmp_path):
    # 4095 rows in batches of 2047: the last batch has one row, which batch norm cannot train on
    # (a crash inside torch: the traceback must reach the run's log)
    data = tmp_path / "data"
    (data / "MicroLens_1M_x1").mkdir(parents=True)
    for name in ("valid", "test", "item_info"):
        (data / "MicroLens_1M_x1" / f"{name}.parquet").write_bytes(
            (small_data / "MicroLens_1M_x1" / f"{name}.parquet").read_bytes())
    pd.read_parquet(small_data / "MicroLens_1M_x1" / "train.parquet").head(4095).to_parquet(
        data / "MicroLens_1M_x1" / "train.parquet")
    tuner_yaml = make_tuner(tmp_path, data, {"batch_size": [2047, 4096]})
    done = tune_cli(tmp_path, tuner_yaml)
    assert done.returncode == 2
    crashed, fine = expids_of(tuner_yaml)
    log = (checkpoints(tmp_path) / f"{crashed}.log").read_text()
    assert "Traceback" in log and "Expected more than 1 value per channel" in log
    assert f"read their logs (checkpoints/{DATASET}/<expid>.log)" in last_error(done)

    # the finished run's log survives a refused rerun (here: refused for a GPU it cannot have)
    fine_log = checkpoints(tmp_path) / f"{fine}.log"
    before = fine_log.read_bytes()
    refused = run_cli("run_expid.py", "--config", tuner_yaml.with_suffix(""), "--expid", fine,
                      "--gpu", "7", cwd=tmp_path)
    assert refused.returncode == 2 and fine_log.read_bytes() == before

    # the params block is in the log, not on the console; progress lines are in both
    assert "INFO Params:\n" in before.decode() and "\n  batch_size: 4096\n" in before.decode()
    rerun = run_cli("run_expid.py", "--config", tuner_yaml.with_suffix(""), "--expid", fine,
                    "--fresh", cwd=tmp_path)
    assert rerun.returncode == 0 and "Params:" not in rerun.stderr
    assert "epoch 1: 100% (1/1 batches)" in rerun.stderr and "rows/s" in rerun.stderr


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_says_so_in_its_log(small_data, tmp_path):
    run, expid, log = start_run(tmp_path, make_tuner(tmp_path, small_data, SLOW))
    try:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
    finally:
        run.kill()
    assert run.returncode == -signal.SIGTERM
    assert "Stopped by SIGTERM" in log.read_text()


# --- 4. resume inside a run ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result(small_data, tmp_path):
    """deterministic: True; one run uninterrupted, one killed by SIGKILL mid-epoch and
    started again: the same validation result and the same weights."""
    space = {"batch_size": 64, "eval_steps": 16, "epochs": 2, "early_stop_patience": 100,
             "net_dropout": 0.2, "deterministic": True}
    results = {}
    for name in ("whole", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        tuner_yaml = make_tuner(folder, small_data, space)
        from src.tuning.tuner import expand_grid
        config_dir, (expid,) = expand_grid(tuner_yaml)
        log = checkpoints(folder) / f"{expid}.log"
        if name == "killed":
            kill_mid_epoch(folder, config_dir, expid, log)
        done = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=folder)
        assert done.returncode == 0, done.stderr[-2000:]
        results[name] = ((folder / "grid.csv").read_text().split("[val] ")[1],
                         torch.load(checkpoints(folder) / f"{expid}.model",
                                    weights_only=True)["state_dict"])
        assert not (checkpoints(folder) / f"{expid}.state").exists()
    resumed = log.read_text()
    assert "Resuming epoch 1 at batch" in resumed  # mid-epoch, not from an epoch boundary
    assert results["whole"][0] == results["killed"][0]
    whole, killed = results["whole"][1], results["killed"][1]
    assert all(torch.equal(whole[k], killed[k]) for k in whole)
