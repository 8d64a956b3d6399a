"""The tuner cannot fail silently: crashing runs, resume, killed runs, Ctrl-C, task-1 rules.

Runs go through the real command lines on a small slice of the tiny generated data (4,096
train rows: two batches of 2,048); the exit-status and signal edge cases that real training
cannot produce on demand use a stand-in run_expid script.
"""
import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from src.tuning import slots, tuner
from src.errors import ConfigError
from src.tuning.task1_rules import check_tuner_config

from .conftest import REPO, processes_mentioning, tune_cli, wait_for
from .helpers import make_tuner, read_summary, statuses

TASK1_CONFIG = REPO / "config" / "DIN_task1_tuner_config.yaml"
BASELINE_CONFIG = REPO / "config" / "DIN_microlens_mmctr_tuner_config_01.yaml"
# batch_size 256 gives 16 batches, a checkpoint after each: a run to kill mid-epoch.
SLOW = {"batch_size": [256, 2048], "eval_steps": 1, "early_stop_patience": 100}


# --- helpers -------------------------------------------------------------------------------
def grid_params(tuner_yaml):
    """{expid: params} of the grid the tuner wrote beside tuner_yaml."""
    with open(Path(tuner_yaml).with_suffix("") / "model_config.yaml") as f:
        return yaml.safe_load(f)


def result_lines(folder, tuner_yaml):
    path = Path(folder) / f"{Path(tuner_yaml).stem}.csv"
    return path.read_text().splitlines() if path.exists() else []


def line_expid(line):
    return line.split(",[exp_id] ")[1].split(",")[0]


# --- a crashing run ------------------------------------------------------------------------
@pytest.mark.slow
def test_crashing_run_fails_the_grid_and_is_named(small_data, tmp_path):
    # a learning rate of 1e30 passes the value checks and diverges at the second batch
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [3.e-3, 1.e+30]})
    # A `python` on PATH that always fails: runs must use the tuner's own interpreter.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("python", "python3"):
        (fake_bin / name).write_text("#!/bin/sh\nexit 97\n")
        (fake_bin / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")

    first = tune_cli(tmp_path, tuner_yaml, env=env)
    params = grid_params(tuner_yaml)
    good = next(e for e, p in params.items() if p["learning_rate"] == 3.e-3)
    bad = next(e for e, p in params.items() if p["learning_rate"] == 1.e+30)
    assert first.returncode == 2, first.stderr[-3000:]
    error = first.stderr.strip().splitlines()[-1]
    assert error.startswith("error: 1 of 2 run(s) failed: ") and bad in error and good not in error
    rows = read_summary(tmp_path, tuner_yaml)
    assert [r["expid"] for r in rows] == [good, bad]  # best first: the failed one has no AUC
    assert rows[0]["status"] == "ok" and 0.0 < float(rows[0]["AUC"]) < 1.0
    assert rows[1]["status"] == "failed (exit 2)" and rows[1]["AUC"] == ""
    assert [line_expid(line) for line in result_lines(tmp_path, tuner_yaml)] == [good]
    # the printed table, best first (it shows the expids after their shared prefix)
    assert first.stdout.index(good[-12:]) < first.stdout.index(bad[-12:])


# --- a run killed mid-epoch ----------------------------------------------------------------
@pytest.mark.slow
def test_killed_run_keeps_its_checkpoint_and_the_tuner_completes_the_grid(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, SLOW)
    config_dir, expids = tuner.expand_grid(tuner_yaml)
    victim = next(e for e, p in grid_params(tuner_yaml).items() if p["batch_size"] == 256)
    folder = tmp_path / "checkpoints" / "MicroLens_tiny_x1"
    checkpoint, log = folder / f"{victim}.model", folder / f"{victim}.log"
    run = subprocess.Popen([sys.executable, str(REPO / "run_expid.py"), "--config", config_dir,
                            "--expid", victim, "--gpu", "-1"], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(checkpoint.exists, 120, "the first checkpoint")
    finally:
        run.kill()
        run.wait()
    assert run.returncode == -signal.SIGKILL
    assert "Training finished" not in log.read_text()  # killed mid-training, not after
    saved = torch.load(checkpoint, map_location="cpu")  # weights_only: the plain-config format
    assert saved["config"]["model_id"] == victim and saved["state_dict"]
    assert result_lines(tmp_path, tuner_yaml) == []

    resumed = tune_cli(tmp_path, tuner_yaml)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert statuses(tmp_path, tuner_yaml) == {e: "ok" for e in expids}
    assert sorted(map(line_expid, result_lines(tmp_path, tuner_yaml))) == sorted(expids)
    assert not list(folder.glob("*.tmp*"))


# --- Ctrl-C --------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_stops_the_runs_and_writes_the_summary(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, SLOW)
    cmd = [sys.executable, str(REPO / "run_param_tuner.py"), "--config", str(tuner_yaml),
           "--gpu", "-1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    config_dir = str(tuner_yaml.with_suffix(""))
    try:
        # the first run has started training once its log exists
        wait_for(lambda: list((tmp_path / "checkpoints").glob("*/*.log")), 120, "the first run")
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = processes_mentioning(config_dir)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted"
    assert left == [], "runs left running after the tuner exited"
    first, second = sorted(grid_params(tuner_yaml))
    assert statuses(tmp_path, tuner_yaml) == {first: "interrupted", second: "not started"}
    assert result_lines(tmp_path, tuner_yaml) == []


# --- exit statuses and stubborn children, with a stand-in run_expid --------------------------
FAKE_RUN_EXPID = textwrap.dedent("""\
    import os, signal, sys, time
    expid = sys.argv[sys.argv.index("--expid") + 1]
    config = sys.argv[sys.argv.index("--config") + 1]
    fingerprint, run = "none", "fake-" + str(os.getpid())
    if os.path.exists(os.path.join(config, "model_config.yaml")):
        # a real grid folder: record what a real run records (fingerprint, run, checkpoint)
        sys.path.insert(0, os.environ["REPO"])
        import torch
        from src.params import RunPaths, load_params
        from src.runs.fingerprint import fingerprint
        params = load_params(config, expid)
        fingerprint = fingerprint(params)
        checkpoint = RunPaths(params).checkpoint
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": {}, "run_id": run}, checkpoint)
    line = (" 20261128-000000,[command] fake,[exp_id] " + expid + ",[dataset_id] d,"
            "[fingerprint] " + fingerprint + ",[run] " + run + ","
            "[train] N.A.,[val] AUC: 0.700000 - logloss: 0.500000\\n")
    def result():
        with open(os.path.basename(config) + ".csv", "a") as f:
            f.write(line)
    if expid.endswith("silent"):
        pass  # exits 0 without a result line
    elif expid in os.environ.get("FAKE_FAIL", "").split():
        sys.exit(1)
    elif expid.endswith("line_then_crash"):
        result()
        sys.exit(3)
    elif expid.endswith("sigkill"):
        os.kill(os.getpid(), signal.SIGKILL)
    elif expid.endswith("stubborn"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open("stubborn.pid.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace("stubborn.pid.tmp", "stubborn.pid")
        time.sleep(120)
    else:
        result()
""")


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    script = tmp_path / "fake_run_expid.py"
    script.write_text(FAKE_RUN_EXPID)
    monkeypatch.setattr(tuner, "RUN_EXPID", script)
    monkeypatch.setattr(slots, "POLL_SECONDS", 0.05)
    monkeypatch.setenv("REPO", str(REPO))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "fake_grid"


def test_ok_needs_exit_zero_and_a_new_result_line(fake_runs, tmp_path):
    expids = ["E_ok", "E_line_then_crash", "E_silent", "E_sigkill"]
    records, interrupted = tuner.run_queue(fake_runs, expids, [-1, -1])
    assert not interrupted
    assert {e: r["status"] for e, r in records.items()} == {
        "E_ok": "ok", "E_line_then_crash": "failed (exit 3)",
        "E_silent": "failed (no result line)", "E_sigkill": "failed (killed by SIGKILL)"}
    rows, _ = tuner.write_summary(fake_runs, expids, records)
    assert [(r["expid"], r["AUC"]) for r in rows][:2] == [("E_ok", 0.7), ("E_line_then_crash", None)]

    # a zero exit cannot borrow an older line of its expid: ok needs a NEW line
    lines = (tmp_path / "fake_grid.csv").read_text().splitlines()
    ok_line = next(line for line in lines if line_expid(line) == "E_ok")
    (tmp_path / "fake_grid.csv").write_text(ok_line.replace("E_ok", "E_silent") + "\n")
    records, _ = tuner.run_queue(fake_runs, ["E_silent"], [-1])
    assert records["E_silent"]["status"] == "failed (no result line)"


@pytest.mark.slow
def test_resume_retries_failed_and_missing_and_force_reruns_all(fake_runs, small_data, tmp_path,
                                                               monkeypatch):
    """tune() as run_param_tuner.py calls it (real grid, real data check), runs faked."""
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [1.e-3, 3.e-3]})
    _, (good, bad) = tuner.expand_grid(tuner_yaml)

    def tune(**kwargs):
        rows = tuner.tune(tuner_yaml, [-1], **kwargs)[1]
        return {r["expid"]: r["status"] for r in rows}, sorted(
            map(line_expid, result_lines(tmp_path, tuner_yaml)))

    monkeypatch.setenv("FAKE_FAIL", bad)
    with pytest.raises(tuner.GridFailed) as err:
        tune()
    assert f"1 of 2 run(s) failed: {bad}. Fix: " in str(err.value) and good not in str(err.value)
    assert statuses(tmp_path, tuner_yaml) == {good: "ok", bad: "failed (exit 1)"}
    monkeypatch.delenv("FAKE_FAIL")

    # a rerun retries only the failed one
    assert tune() == ({good: "done before", bad: "ok"}, sorted([good, bad]))
    # a deleted result line: only that expid runs again, no duplicate lines
    lines = result_lines(tmp_path, tuner_yaml)
    kept = next(line for line in lines if line_expid(line) == bad)
    (tmp_path / f"{tuner_yaml.stem}.csv").write_text(kept + "\n")
    assert tune() == ({good: "ok", bad: "done before"}, sorted([good, bad]))
    assert result_lines(tmp_path, tuner_yaml)[0] == kept
    # --force reruns both
    assert tune(force=True) == ({good: "ok", bad: "ok"}, sorted([good, bad] * 2))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_terminates_then_kills_stubborn_runs(signum, fake_runs, tmp_path, monkeypatch):
    """Ctrl-C, or SIGTERM to the tuner: SIGTERM to the run, SIGKILL when it ignores that."""
    monkeypatch.setattr(slots, "STOP_TIMEOUT_SECONDS", 1)
    pid_file = tmp_path / "stubborn.pid"
    handler_before = signal.getsignal(signal.SIGTERM)

    def press_ctrl_c():
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    started = time.monotonic()
    records, interrupted = tuner.run_queue(fake_runs, ["E_stubborn", "E_queued_ok"], [-1])
    assert interrupted and time.monotonic() - started < 30
    assert records["E_stubborn"]["status"] == "interrupted"
    assert records["E_queued_ok"]["status"] == "not started"
    with pytest.raises(ProcessLookupError):  # it ignored SIGTERM, so it got SIGKILL
        os.kill(int(pid_file.read_text()), 0)
    rows, path = tuner.write_summary(fake_runs, ["E_stubborn", "E_queued_ok"], records)
    assert path.exists() and {r["status"] for r in rows} == {"interrupted", "not started"}
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the tuner's handler is gone


# --- task-1 rules --------------------------------------------------------------------------
def shipped_task1():
    with open(TASK1_CONFIG) as f:
        return yaml.safe_load(f)


def test_shipped_task1_config_is_the_baseline_config_and_passes(monkeypatch):
    config = shipped_task1()
    assert config.pop("task1") is True
    assert config == yaml.safe_load(BASELINE_CONFIG.read_text())
    monkeypatch.chdir(REPO)  # base_config is relative to the current folder, as in FuxiCTR
    check_tuner_config(shipped_task1(), TASK1_CONFIG)


def _dataset(config):
    return config["dataset_config"]["MicroLens_1M_x1"]


def _features(config):
    return {col["name"]: col for col in _dataset(config)["feature_cols"]}


ALLOWED = {
    "knobs varied": lambda c: c["tuner_space"].update(
        net_dropout=[0, 0.1, 0.2], learning_rate=[1.e-3, 5.e-4], batch_size=[4096, 8192],
        net_regularizer=[0, 1.e-6], embedding_regularizer=[1.e-6, 1.e-7]),
    "fixed value spelt out": lambda c: c["tuner_space"].update(
        embedding_dim=64, dnn_hidden_units=[[1024, 512, 256]]),
    "bookkeeping": lambda c: c["tuner_space"].update(verbose=0, model_root="/tmp/ckpt/"),
    "own item embedding file": lambda c: _dataset(c).update(
        item_info="/elsewhere/my_item_info.parquet", train_data="/elsewhere/train.parquet"),
}

REFUSED = {
    "embedding_dim varied": (lambda c: c["tuner_space"].update(embedding_dim=[32, 64]),
                             "tuner_space sets embedding_dim=[32, 64] (fixed DIN: 64"),
    "smaller dnn": (lambda c: c["tuner_space"].update(dnn_hidden_units=[[512, 256]]),
                    "dnn_hidden_units=[[512, 256]]"),
    "more epochs": (lambda c: c["tuner_space"].update(epochs=5), "epochs=5 (fixed DIN: 100"),
    "varied bookkeeping": (lambda c: c["tuner_space"].update(verbose=[0, 1]),
                           "bookkeeping key verbose=[0, 1]"),
    "embedding dim": (lambda c: _features(c)["item_emb_d128"].update(embedding_dim=64),
                      "feature item_emb_d128 has embedding_dim=64 (baseline: 128"),
    "embedding renamed": (lambda c: _features(c)["item_emb_d128"].update(name="item_emb_v1"),
                          "feature_cols names="),
    "vocab changed": (lambda c: _features(c)["item_id"].update(vocab_size=2001),
                      "feature item_id has vocab_size=2001 (baseline: 91718"),
    "feature dropped": (lambda c: _features(c)["item_tags"].update(active=False),
                        "feature item_tags has active=False"),
    "dataset overrides model": (lambda c: _dataset(c).update(embedding_dim=32),
                                "dataset config adds embedding_dim=32"),
    "marker not a bool": (lambda c: c.update(task1="yes"), "task1='yes' is not a boolean"),
}


@pytest.mark.parametrize("change", list(ALLOWED), ids=list(ALLOWED))
def test_task1_allows(change, monkeypatch):
    monkeypatch.chdir(REPO)
    config = shipped_task1()
    ALLOWED[change](config)
    check_tuner_config(config, TASK1_CONFIG)


@pytest.mark.parametrize("change", list(REFUSED), ids=list(REFUSED))
def test_task1_refuses(change, monkeypatch):
    monkeypatch.chdir(REPO)
    config = shipped_task1()
    edit, expected = REFUSED[change]
    edit(config)
    with pytest.raises(ConfigError) as err:
        check_tuner_config(config, TASK1_CONFIG)
    assert expected in str(err.value)
    assert "Fix: " in str(err.value)
    other = copy.deepcopy(config)  # the same change without the marker is a task-2 config
    other.pop("task1")
    check_tuner_config(other, TASK1_CONFIG)


@pytest.mark.parametrize("key, value, refusal", [
    ("attention_hidden_units", [64], "attention_hidden_units=[64] (fixed DIN: [512, 256]"),
    ("amp_bf16", True, "amp_bf16=True (fixed DIN: False"),
    ("max_steps", 100, "max_steps=100 (fixed DIN: None"),
    ("lr_scheduler", "cosine", "lr_scheduler='cosine' (fixed DIN: 'plateau'"),
    ("deterministic", True, None),  # how it runs, not what is trained
    ("torch_compile", True, None),  # how it runs, not what is trained
    ("model_root", "/elsewhere/", None),
])
def test_task1_checks_the_base_model(key, value, refusal, tmp_path):
    model = yaml.safe_load((REPO / "config/din_config/model_config.yaml").read_text())
    model["DIN_default"][key] = value
    (tmp_path / "model_config.yaml").write_text(yaml.safe_dump(model))
    config = shipped_task1()
    config["base_config"] = str(tmp_path)
    if refusal is None:
        check_tuner_config(config, TASK1_CONFIG)
        return
    with pytest.raises(ConfigError) as err:
        check_tuner_config(config, TASK1_CONFIG)
    assert f"base_expid DIN_default has {refusal}" in str(err.value)


def test_task1_names_a_missing_inline_block_entry(monkeypatch):
    """An inline model_config or dataset_config block without the entry the config names."""
    monkeypatch.chdir(REPO)
    config = shipped_task1()
    config["model_config"] = {"Base": {}}
    with pytest.raises(ConfigError, match=r"base_expid='DIN_default' is not in its model_config "
                                          r"block. Fix: add it or correct base_expid"):
        check_tuner_config(config, TASK1_CONFIG)
    config = shipped_task1()
    config["dataset_id"] = "other"
    with pytest.raises(ConfigError, match=r"dataset_id='other' is not in its dataset_config "
                                          r"block. Fix: add it or correct dataset_id"):
        check_tuner_config(config, TASK1_CONFIG)


def test_task1_refusal_comes_before_any_run(tmp_path):
    config = shipped_task1()
    config["base_config"] = str(REPO / "config" / "din_config")
    config["tuner_space"]["embedding_dim"] = [16, 32]
    tuner_yaml = tmp_path / "task1_grid.yaml"
    tuner_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    refused = tune_cli(tmp_path, tuner_yaml, slots=1)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    # the rule check, not the data check (its data paths point at nothing here), refused it
    assert "embedding_dim=[16, 32]" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task1_grid.yaml"]


# --- the summary shows what each run tried -------------------------------------------------
def test_summary_shows_the_values_the_grid_varies(fake_runs, small_data, tmp_path, capsys):
    """Only the keys with several values become columns, in the csv (full names and values)
    and in the printed table (abbreviated, at most 100 characters wide)."""
    space = {"learning_rate": [1.e-3, 3.e-3], "net_dropout": 0.2,
             "dnn_hidden_units": [[64, 32], [128, 64, 32]]}
    tuner_yaml = make_tuner(tmp_path, small_data, space)
    tuner.tune(tuner_yaml, [-1, -1])
    params = grid_params(tuner_yaml)
    assert len(params) == 4
    summary = read_summary(tmp_path, tuner_yaml)
    varied = ["learning_rate", "dnn_hidden_units"]  # in the tuner config's order
    assert list(summary[0]) == ["expid", *varied, "status", "AUC", "logloss", "seconds"]
    assert sorted(row["expid"] for row in summary) == sorted(params)
    for row in summary:
        tried = params[row["expid"]]
        assert float(row["learning_rate"]) == tried["learning_rate"]
        assert yaml.safe_load(row["dnn_hidden_units"]) == tried["dnn_hidden_units"]
    table = capsys.readouterr().out.split("\nsummary: ")[0].splitlines()
    assert max(map(len, table)) <= 100
    header = next(i for i, line in enumerate(table) if line.split()[-4:] == [
        "status", "AUC", "logloss", "seconds"])
    assert header > 0 and "lr=learning_rate" in " ".join(table[:header])
    assert table[header].split()[:3] == ["expid", "lr", "dnn_units"]
    assert "dropout" not in table[header]  # fixed in this grid: no column
    assert len(table) == header + 1 + len(params)
    for line in table[header + 1:]:
        shown = line.split()[0]
        (expid,) = [e for e in params if e.endswith(shown)]  # the unique tail of one expid
        assert float(line.split()[1]) == params[expid]["learning_rate"]
        assert line.split()[2] == str(params[expid]["dnn_hidden_units"]).replace(" ", "")


def test_summary_table_fits_100_columns_without_losing_the_expid_tail():
    keys = ["learning_rate", "embedding_regularizer", "dnn_hidden_units", "net_dropout",
            "attention_hidden_units"]
    rows = [{"expid": f"DIN_MicroLens_1M_x1_{i:03d}_0123abcd", "status": status, "AUC": auc,
             "logloss": 0.5, "seconds": 12.0,
             "values": {"learning_rate": 10.0 ** -i, "embedding_regularizer": 1e-6,
                        "dnn_hidden_units": [1024, 512, 256], "net_dropout": 0.1,
                        "attention_hidden_units": [64, 32]}}
            for i, (status, auc) in enumerate([("ok", 0.81), ("failed (killed by SIGKILL)", None),
                                               ("done before", 0.8)], 1)]
    table = tuner.format_table(rows, keys).splitlines()
    assert max(map(len, table)) <= 100
    assert "expid = DIN_MicroLens_1M_x1_<shown>" in table[0]
    body = [line for line in table if line[:3].isdigit()]
    assert [line.split()[0] for line in body] == ["001_0123abcd", "002_0123abcd", "003_0123abcd"]
    assert [line.split()[1] for line in body] == ["0.1", "0.01", "0.001"]


def test_check_only_checks_everything_and_writes_no_grid(small_data, tmp_path):
    """--check answers a good config with OK and trains nothing; a bad value or a data problem
    is the same one-line refusal as a real run's, exit 2."""
    tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [1.e-3, 3.e-3]})
    checked = tune_cli(tmp_path, tuner_yaml, "--check", slots=1)
    assert checked.returncode == 0, checked.stderr
    assert "OK:" in checked.stdout and "2 experiment(s)" in checked.stdout
    assert not (tmp_path / "grid").exists()  # no grid folder, no result lines, no runs
    assert not list(tmp_path.glob("grid*.csv"))
    bad = make_tuner(tmp_path, small_data, {"max_len": [32, 100]}, name="bad.yaml")
    refused = tune_cli(tmp_path, bad, "--check", slots=1)
    assert refused.returncode == 2
    assert "max_len=100" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "bad").exists()
