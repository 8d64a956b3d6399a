"""The tuner cannot fail silently: crashing runs, resume, killed runs, Ctrl-C
(task-1 rules: test_tuner_task1.py).

Runs go through the real command lines on a small slice of the tiny generated data (4,096
train rows: two batches of 2,048); the exit-status and signal edge cases that real training
cannot produce on demand use a stand-in run_expid script.
"""
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

from .conftest import REPO, tune_cli, wait_for
from .helpers import make_tuner, read_summary, statuses
from .processes import processes_mentioning

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
