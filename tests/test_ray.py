"""Grids on Ray (src/tuning/ray_runner.py) with a real Ray on this machine, loopback only: a
local instance, a two-node cluster (ray.cluster_utils.Cluster), a node that cannot see the
data (a node started in its own mount namespace). The runs are real runs on a 4,096-row slice
of the tiny generated data. Skipped where Ray is not installed (requirements-ray.txt)."""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, run_cli, tune_cli, write_tuner_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed (pip install -r requirements-ray.txt)")

# Ray for tests: no usage statistics, servers on the loopback interface only (read by Ray at
# import, so set before the first import of ray, and passed to every command line)
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
FAST = {"epochs": 1, "batch_size": 2048, "learning_rate": 3.e-3}
# 16 batches of 256, an evaluation (checkpoint and training state) after each: a run to stop
SLOW = {"epochs": 1, "batch_size": 256, "eval_steps": 1, "early_stop_patience": 100}
DATASET = "MicroLens_tiny_x1"


@pytest.fixture(scope="module", autouse=True)
def ray_environment():
    before = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def cluster():
    """A head node and a worker node on this machine, one CPU each (no driver connected)."""
    from ray.cluster_utils import Cluster
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                          "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1)
        yield nodes
    finally:
        nodes.shutdown()


# --- helpers -------------------------------------------------------------------------------
def make_tuner(folder, data_dir, space, name="grid.yaml"):
    return write_tuner_config(folder, data_dir, {**FAST, **space}, name=name)


def ray_cli(folder, tuner_yaml, *extra, address="local"):
    return run_cli("run_param_tuner.py", "--config", tuner_yaml, "--ray", address,
                   "--gpus-per-run", 0, *extra, cwd=folder, env=dict(os.environ, **RAY_ENV))


def ray_popen(folder, tuner_yaml, *extra, address="local"):
    return subprocess.Popen([sys.executable, str(REPO / "run_param_tuner.py"), "--config",
                             str(tuner_yaml), "--ray", address, "--gpus-per-run", "0", *extra],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=dict(os.environ, **RAY_ENV))


def expids_of(tuner_yaml):
    from src.tuning.grid import expand
    return expand(tuner_yaml).expids


def grid_params(tuner_yaml):
    from src.tuning.grid import expand
    grid = expand(tuner_yaml)
    return {e: grid.params(e) for e in grid.expids}


def lines(folder, tuner_yaml):
    from src.tuning.results import read_results
    return read_results(Path(folder) / f"{Path(tuner_yaml).stem}.csv")


def summary(folder, tuner_yaml):
    import csv
    with open(Path(folder) / f"{Path(tuner_yaml).stem}_summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def statuses(folder, tuner_yaml):
    return {row["expid"]: row["status"] for row in summary(folder, tuner_yaml)}


def checkpoints(folder):
    return Path(folder) / "checkpoints" / DATASET


def last_error(done):
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def descendants(pid):
    """Pids of the live descendants of pid."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent(pid):
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def lock_holder(folder, expid):
    """The pid that took the experiment's lock last (the lock file keeps it), or None."""
    import json
    path = checkpoints(folder) / f"{expid}.lock"
    try:
        return json.loads(path.read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


# --- the command line --------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--gpu", "-1", "--scheduler", "asha"], "--scheduler need(s) --ray"),
    (["--gpu", "-1", "--cpus-per-run", "2"], "--cpus-per-run need(s) --ray"),
    (["--ray", "local", "--gpu", "0"], "--gpu chooses slots on this machine"),
    (["--ray", "local", "--retries", "-1"], "--retries -1 must be a whole number >= 0"),
    (["--ray", "local", "--scheduler", "asha", "--reduction-factor", "1"],
     "--reduction-factor 1.0 must be > 1"),
])
def test_options_of_one_executor_are_refused_with_the_other(small_data, tmp_path, args, message):
    tuner_yaml = make_tuner(tmp_path, small_data, {})
    done = run_cli("run_param_tuner.py", "--config", tuner_yaml, *args, cwd=tmp_path,
                   env=dict(os.environ, **RAY_ENV))
    assert done.returncode == 2, done.stderr[-2000:]
    assert last_error(done).startswith("error: ") and message in last_error(done)
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_asha_needs_auc_as_the_monitor(small_data, tmp_path):
    tuner_yaml = make_tuner(tmp_path, small_data, {"monitor": "logloss", "monitor_mode": "min"})
    done = ray_cli(tmp_path, tuner_yaml, "--scheduler", "asha")
    assert done.returncode == 2
    assert "--scheduler asha ranks runs by validation AUC" in last_error(done)
    assert "monitor='logloss'" in last_error(done)
    assert not tuner_yaml.with_suffix("").exists()


# --- the same grid, two executors --------------------------------------------------------
def test_a_local_ray_grid_gives_the_lines_and_summary_of_the_slot_tuner(small_data, tmp_path):
    """deterministic: True (the demo's): the same result lines (expid, fingerprint, metrics)
    and summary; a rerun resumes; prediction accepts the checkpoints the Ray runs wrote. The
    slot tuner runs with a `ray` package that fails on import: without --ray, neither the
    tuner nor its runs import Ray."""
    space = {"learning_rate": [3.e-3, 1.e-2]}
    folders = {name: tmp_path / name for name in ("slots", "ray")}
    for folder in folders.values():
        folder.mkdir()
        make_tuner(folder, small_data, space)
    poison = tmp_path / "poison" / "ray"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the tuner imported ray without --ray')\n")
    env = dict(os.environ, PYTHONPATH=str(poison.parent))
    slots = tune_cli(folders["slots"], folders["slots"] / "grid.yaml", env=env)
    assert slots.returncode == 0, slots.stderr[-3000:]
    ray = ray_cli(folders["ray"], folders["ray"] / "grid.yaml")
    assert ray.returncode == 0, ray.stderr[-3000:]

    def content(name):
        found = sorted((r["exp_id"], r["fingerprint"], r["dataset_id"], tuple(r["val"].items()))
                       for r in lines(folders[name], "grid.yaml"))
        rows = [(r["expid"], r["status"], r["AUC"], r["logloss"])
                for r in summary(folders[name], "grid.yaml")]
        return found, rows

    assert content("ray") == content("slots")
    assert len(content("ray")[0]) == 2 and {r[1] for r in content("ray")[1]} == {"ok"}
    for done in (slots, ray):  # the grid's progress as runs end, for both executors
        assert "grid: 1 done, 0 failed, 1 running, 0 queued;" in done.stderr
        assert "grid: 2 done, 0 failed, 0 running, 0 queued;" in done.stderr
    for line in lines(folders["ray"], "grid.yaml"):  # what reruns the run by hand
        assert line["command"] == (f"python {REPO / 'run_expid.py'} --config "
                                   f"{folders['ray'] / 'grid'} --expid {line['exp_id']} --gpu -1")

    again = ray_cli(folders["ray"], folders["ray"] / "grid.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(statuses(folders["ray"], "grid.yaml").values()) == {"done before"}
    assert len(lines(folders["ray"], "grid.yaml")) == 2
    predicted = run_cli("prediction.py", "--config", "grid", "--expid", "best", cwd=folders["ray"])
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    best = summary(folders["ray"], "grid.yaml")[0]["expid"]
    assert f"submission/{best}.zip" in predicted.stdout
