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
from pathlib import Path

import pytest

from .conftest import REPO, run_cli, tune_cli, wait_for
from .helpers import (checkpoints, expanded_expids, last_error, make_tuner, read_summary,
                      statuses)
from .processes import alive, descendants, parent

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed (pip install -r requirements-ray.txt)")

# Ray for tests: no usage statistics, servers on the loopback interface only (read by Ray at
# import, so set before the first import of ray, and passed to every command line)
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# 16 batches of 256, an evaluation (checkpoint and training state) after each: a run to stop
SLOW = {"epochs": 1, "batch_size": 256, "eval_steps": 1, "early_stop_patience": 100}


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
def ray_cli(folder, tuner_yaml, *extra, address="local"):
    return run_cli("run_param_tuner.py", "--config", tuner_yaml, "--ray", address,
                   "--gpus-per-run", 0, *extra, cwd=folder, env=dict(os.environ, **RAY_ENV))


def ray_popen(folder, tuner_yaml, *extra, address="local"):
    """The tuner in the background, its output to files (a pipe nobody reads would fill up and
    block it); finish(proc) waits for it and returns (stdout, stderr)."""
    out, err = (open(Path(folder) / f"tuner.{name}", "w") for name in ("out", "err"))
    with out, err:
        return subprocess.Popen([sys.executable, str(REPO / "run_param_tuner.py"), "--config",
                                 str(tuner_yaml), "--ray", address, "--gpus-per-run", "0",
                                 *extra], cwd=folder, stdout=out, stderr=err, text=True,
                                start_new_session=True, env=dict(os.environ, **RAY_ENV))


def finish(proc, folder, timeout):
    proc.wait(timeout=timeout)
    return tuple((Path(folder) / f"tuner.{name}").read_text() for name in ("out", "err"))


def lines(folder, tuner_yaml):
    from src.runs.results import read_results
    return read_results(Path(folder) / f"{Path(tuner_yaml).stem}.csv")


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
@pytest.mark.slow
def test_a_local_ray_grid_gives_the_lines_and_summary_of_the_slot_tuner(small_data, tmp_path):
    """deterministic: True (the demo's): the same result lines (expid, fingerprint, metrics),
    summary and exit status; a run that fails for its own reasons (a learning rate of 1e30:
    NaN loss) fails alike and is not retried; a rerun retries only it; prediction accepts the
    checkpoints the Ray runs wrote. The slot tuner runs with a `ray` package that fails on
    import: without --ray, neither the tuner nor its runs import Ray."""
    space = {"learning_rate": [3.e-3, 1.e-2, 1.e+30]}
    folders = {name: tmp_path / name for name in ("slots", "ray")}
    for folder in folders.values():
        folder.mkdir()
        make_tuner(folder, small_data, space)
    good, other, diverging = expanded_expids(folders["ray"] / "grid.yaml")
    poison = tmp_path / "poison" / "ray"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('ray imported without --ray')\n")
    env = dict(os.environ, PYTHONPATH=str(poison.parent))
    slots = tune_cli(folders["slots"], folders["slots"] / "grid.yaml", env=env)
    ray = ray_cli(folders["ray"], folders["ray"] / "grid.yaml")

    def content(name):
        found = sorted((r["exp_id"], r["fingerprint"], r["dataset_id"], tuple(r["val"].items()))
                       for r in lines(folders[name], "grid.yaml"))
        rows = [(r["expid"], r["status"], r["AUC"], r["logloss"])
                for r in read_summary(folders[name], "grid.yaml")]
        return found, rows

    for done in (slots, ray):
        assert done.returncode == 2, done.stderr[-3000:]
        assert last_error(done).startswith(f"error: 1 of 3 run(s) failed: {diverging}. Fix: ")
        # the grid's progress as runs end, for both executors
        assert "grid: 1 done, 0 failed, 1 running, 1 queued;" in done.stderr
        assert "grid: 2 done, 1 failed, 0 running, 0 queued;" in done.stderr
    assert content("ray") == content("slots")
    assert {e: s for e, s, *_ in content("ray")[1]} == {good: "ok", other: "ok",
                                                      diverging: "failed (exit 2)"}
    assert len(content("ray")[0]) == 2
    log = (checkpoints(folders["ray"]) / f"{diverging}.log").read_text()
    assert log.count("Start training") == 1 and "training diverged" in log  # not retried
    assert "was lost" not in ray.stderr
    for line in lines(folders["ray"], "grid.yaml"):  # what reruns the run by hand
        assert line["command"] == (f"python {REPO / 'run_expid.py'} --config "
                                   f"{folders['ray'] / 'grid'} --expid {line['exp_id']} --gpu -1")

    again = ray_cli(folders["ray"], folders["ray"] / "grid.yaml")
    assert again.returncode == 2
    assert statuses(folders["ray"], "grid.yaml") == {good: "done before", other: "done before",
                                                     diverging: "failed (exit 2)"}
    assert len(lines(folders["ray"], "grid.yaml")) == 2
    predicted = run_cli("prediction.py", "--config", "grid", "--expid", "best", cwd=folders["ray"])
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    best = read_summary(folders["ray"], "grid.yaml")[0]["expid"]
    assert f"submission/{best}.zip" in predicted.stdout


# --- a cluster of two nodes --------------------------------------------------------------
@pytest.mark.slow
def test_runs_land_on_both_nodes_and_a_run_of_a_lost_node_is_retried_once(cluster, small_data,
                                                                          tmp_path):
    """One CPU per node, one per run: one run per node. The worker node is removed while its
    run trains; the run restarts on the head node once that is free, continues from its
    training state (the same run id), and gets one result line."""
    tuner_yaml = make_tuner(tmp_path, small_data, {**SLOW, "epochs": 3,
                                                   "learning_rate": [3.e-3, 1.e-2]})
    worker = next(iter(cluster.worker_nodes))
    worker_raylet = worker.all_processes["raylet"][0].process.pid
    head_raylet = cluster.head_node.all_processes["raylet"][0].process.pid
    expids = expanded_expids(tuner_yaml)
    proc = ray_popen(tmp_path, tuner_yaml, address=cluster.address)
    try:
        placed = {}

        def both_placed():  # the pid of each run's lock is a worker process of one raylet
            for expid in expids:
                pid = lock_holder(tmp_path, expid)
                if pid and alive(pid):
                    placed[expid] = parent(pid)
            return set(placed.values()) == {worker_raylet, head_raylet}

        wait_for(both_placed, 180, "a run on each node")
        victim = next(e for e, raylet in placed.items() if raylet == worker_raylet)
        state = checkpoints(tmp_path) / f"{victim}.state"
        wait_for(state.exists, 120, "the victim's first training state")
        cluster.remove_node(worker)
        out, err = finish(proc, tmp_path, 600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-4000:]
    assert statuses(tmp_path, tuner_yaml) == {e: "ok" for e in expids}
    found = lines(tmp_path, tuner_yaml)
    assert sorted(r["exp_id"] for r in found) == sorted(expids)  # recorded once each
    assert f"{victim}: its worker process or node was lost" in err
    log = (checkpoints(tmp_path) / f"{victim}.log").read_text()
    assert "Resumed from the training state" in log
    first_run = log.split(", run ", 1)[1].split(";", 1)[0]  # the id the first attempt logged
    assert next(r["run"] for r in found if r["exp_id"] == victim) == first_run
    head = cluster.head_node.node_id[:8]
    assert f"{victim} ok, on node {head}" in err  # finished on the other node


# A worker node as ray.cluster_utils.Cluster.add_node starts one, in a process of its own
# (`ray start` refuses to join a loopback-only cluster); it stops on SIGTERM.
NODE_SCRIPT = """
import signal, sys, time
from ray._private.node import Node
from ray._private.parameter import RayParams
params = RayParams(gcs_address=sys.argv[1], num_cpus=1, object_store_memory=150 * 1024 ** 2,
                   min_worker_port=0, max_worker_port=0, include_log_monitor=False,
                   node_manager_port=0)
node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
while True:
    time.sleep(1)
"""


def start_node_without(folder, address):
    """A Ray node joining address from its own mount namespace, in which folder is an empty
    tmpfs: a node that does not see the data. Skips where mount namespaces are not allowed."""
    unshare = shutil.which("unshare")
    prefix = [unshare, "--mount", "--propagation", "private"] if os.geteuid() == 0 else \
        [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"]
    if not unshare or subprocess.run(prefix + ["true"], capture_output=True).returncode != 0:
        pytest.skip("mount namespaces (unshare) are not allowed here")
    script = 'mount -t tmpfs tmpfs "$1" && exec "$2" -c "$3" "$4"'
    return subprocess.Popen(prefix + ["sh", "-c", script, "sh", str(folder), sys.executable,
                                      NODE_SCRIPT, address],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, **RAY_ENV))


@pytest.mark.parametrize("hidden", ["data", "model_root"])
@pytest.mark.slow
def test_a_node_without_the_data_is_named_and_nothing_starts(cluster, small_data, tmp_path,
                                                             hidden):
    """A node that does not see the data, or has its own folder where model_root is: one
    error naming the node and the path, and nothing written or started."""
    import ray
    for node in list(cluster.worker_nodes):
        cluster.remove_node(node)
    data, root = small_data / "MicroLens_1M_x1", tmp_path / "checkpoints"
    root.mkdir()
    node = start_node_without(data if hidden == "data" else root, cluster.address)
    try:
        ray.init(address=cluster.address)
        try:
            wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, 120, "the second node")
            blind = next(n for n in ray.nodes() if n["Alive"]
                         and n["NodeID"] != cluster.head_node.node_id)["NodeID"]
        finally:
            ray.shutdown()
        tuner_yaml = make_tuner(tmp_path, small_data, {"learning_rate": [3.e-3, 1.e-2]})
        done = ray_cli(tmp_path, tuner_yaml, address=cluster.address)
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    assert done.returncode == 2, done.stderr[-3000:]
    error = last_error(done)
    assert error.startswith(f"error: Ray node {blind[:8]} (127.0.0.1), host ")
    if hidden == "data":
        assert f"has no data file {data}/" in error
    else:
        assert ": model_root ./checkpoints/ is another folder there than on the tuner's " \
               "machine" in error
    assert "nothing was started" in error
    assert "Fix: put the data and model_root on a file system every node mounts" in error
    assert not tuner_yaml.with_suffix("").exists()  # no grid folder
    assert not list(tmp_path.glob("*.csv")) and not list(root.iterdir())  # no run, no probe


# --- Ctrl-C ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_cancels_the_runs_writes_the_summary_and_a_rerun_resumes(small_data, tmp_path):
    # 3 epochs: both runs are still training once both have saved a training state
    tuner_yaml = make_tuner(tmp_path, small_data, {**SLOW, "epochs": 3,
                                                   "learning_rate": [3.e-3, 1.e-2]})
    expids = expanded_expids(tuner_yaml)
    proc = ray_popen(tmp_path, tuner_yaml)
    try:
        # both runs have saved a training state: they are well under way
        wait_for(lambda: all((checkpoints(tmp_path) / f"{e}.state").exists() for e in expids),
                 180, "both runs training")
        ray_processes = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = finish(proc, tmp_path, 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in ray_processes), 60, "Ray's processes to end")
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted"
    assert statuses(tmp_path, tuner_yaml) == {e: "interrupted" for e in expids}
    assert lines(tmp_path, tuner_yaml) == []
    for expid in expids:  # whole training states and checkpoints, a note in each log
        assert (checkpoints(tmp_path) / f"{expid}.state").exists()
        assert "(tuner) the run was cancelled: the tuner was interrupted" in \
            (checkpoints(tmp_path) / f"{expid}.log").read_text()

    rerun = ray_cli(tmp_path, tuner_yaml)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert statuses(tmp_path, tuner_yaml) == {e: "ok" for e in expids}
    assert sorted(r["exp_id"] for r in lines(tmp_path, tuner_yaml)) == sorted(expids)
    for expid in expids:
        assert "Resumed from the training state" in \
            (checkpoints(tmp_path) / f"{expid}.log").read_text()


# --- ASHA ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_asha_stops_the_bad_points_early_and_finds_the_full_grids_best(small_data, tmp_path):
    """A learning rate of 10 or 100 saturates the model at once (validation AUC 0.5). One run
    at a time (each takes every CPU of the instance), the good point first: ASHA (grace period
    1, reduction factor 2) stops the bad points at their first evaluation; the good one trains
    to its end. Stopped runs keep a line (their best checkpoint's AUC), their checkpoint and
    their training state. Rerun with ASHA, nothing runs; rerun without, the stopped runs train
    on to their end: the full grid, whose best is the best ASHA found."""
    space = {"epochs": 2, "batch_size": 256, "eval_steps": 8, "early_stop_patience": 100,
             "learning_rate": [3.e-3, 10.0, 100.0]}
    tuner_yaml = make_tuner(tmp_path, small_data, space)
    good, *bad = expanded_expids(tuner_yaml)
    asha = ("--cpus-per-run", os.cpu_count(), "--scheduler", "asha", "--reduction-factor", 2)
    done = ray_cli(tmp_path, tuner_yaml, *asha)
    assert done.returncode == 0, done.stderr[-3000:]
    assert statuses(tmp_path, tuner_yaml) == {good: "ok", **{e: "stopped early" for e in bad}}
    assert read_summary(tmp_path, tuner_yaml)[0]["expid"] == good
    found = {r["exp_id"]: r for r in lines(tmp_path, tuner_yaml)}
    assert sorted(found) == sorted([good, *bad])
    import torch
    for expid in bad:
        log = (checkpoints(tmp_path) / f"{expid}.log").read_text()
        assert "Stopped early by the scheduler (ASHA) after evaluation 1 (step 8)" in log
        assert "Evaluation @epoch 1 - batch 16" not in log and "Training finished" not in log
        assert f"{expid}: stopped early by ASHA after evaluation 1 (step 8)" in done.stderr
        assert found[expid]["val"]["AUC"] == pytest.approx(0.5)
        saved = torch.load(checkpoints(tmp_path) / f"{expid}.model", weights_only=True)
        assert saved["run_id"] == found[expid]["run"]  # the line's checkpoint, kept
        assert (checkpoints(tmp_path) / f"{expid}.state").exists()
    assert "grid: 3 done (2 stopped early), 0 failed, 0 running, 0 queued;" in done.stderr
    predicted = run_cli("prediction.py", "--config", "grid", "--expid", "best", cwd=tmp_path)
    assert predicted.returncode == 0 and f"submission/{good}.zip" in predicted.stdout

    again = ray_cli(tmp_path, tuner_yaml, *asha)
    assert again.returncode == 0, again.stderr[-3000:]
    assert statuses(tmp_path, tuner_yaml) == {good: "done before",
                                              **{e: "stopped before" for e in bad}}
    assert len(lines(tmp_path, tuner_yaml)) == 3

    full = ray_cli(tmp_path, tuner_yaml)
    assert full.returncode == 0, full.stderr[-3000:]
    assert statuses(tmp_path, tuner_yaml) == {good: "done before", **{e: "ok" for e in bad}}
    assert read_summary(tmp_path, tuner_yaml)[0]["expid"] == good  # the full grid's best
    for expid in bad:
        log = (checkpoints(tmp_path) / f"{expid}.log").read_text()
        assert "Resumed from the training state" in log and "Training finished" in log
        assert [r["run"] for r in lines(tmp_path, tuner_yaml) if r["exp_id"] == expid][-1] == \
            found[expid]["run"]  # the same run, continued
