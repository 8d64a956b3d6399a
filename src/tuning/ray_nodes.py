"""Before a grid runs on Ray (src/tuning/ray_runner.py): does every node that can take a run
see the data files this machine sees (same size and parquet footer) and share each model_root
(a file written there by the driver is visible from the node, and the node can write)?

check_nodes runs the probe, _node_view, as a Ray task pinned to each node; Ray is imported
only inside it, when a grid runs on Ray."""
import logging
import os
import socket
import uuid
from pathlib import Path

from ..errors import UserError
from .fingerprint import data_files, file_signature

logger = logging.getLogger(__name__)

NODE_CHECK_SECONDS = 120  # how long a node may take to answer the data check
FIX_SHARED = ("put the data and model_root on a file system every node mounts at the same path, "
              "or copy the data to the same path on each node (README, \"Grids on a Ray "
              "cluster\")")


def check_nodes(nodes: list, params: dict) -> None:
    """Every node that can take a run sees the data files this machine sees and shares
    each model_root; else one error naming the first node and path that do not."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    files = sorted({(key, path) for p in params.values()
                    for key, path in data_files(p).items()})
    local = {path: file_signature(path) for _, path in files}
    cwd = os.getcwd()
    relative = any(not os.path.isabs(path) for _, path in files) or any(
        not os.path.isabs(p.get("model_root", "./checkpoints/")) for p in params.values())
    roots = sorted({p.get("model_root", "./checkpoints/") for p in params.values()})
    probes = {}
    try:
        for root in roots:
            probe = Path(root) / f".tuner_probe_{uuid.uuid4().hex[:12]}"
            probe.write_bytes(b"")
            probes[root] = str(probe)
        view = ray.remote(num_cpus=0, max_retries=0)(_node_view)
        answers = {n["NodeID"]: view.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(cwd, [path for _, path in files], probes)
            for n in nodes}
        _, late = ray.wait(list(answers.values()), num_returns=len(answers),
                           timeout=NODE_CHECK_SECONDS)
        for node in nodes:
            ref = answers[node["NodeID"]]
            if ref in late:
                raise UserError(f"Ray {node_name(node)} did not answer the data check within "
                                f"{NODE_CHECK_SECONDS} s. Fix: check that node (ray status), "
                                f"or remove it from the cluster")
            _judge(node, ray.get(ref), cwd, relative, files, local)
    finally:
        for probe in probes.values():
            Path(probe).unlink(missing_ok=True)
    logger.info("Ray: %d node(s) can take a run and see the data and model_root: %s",
                len(nodes), ", ".join(node_name(n) for n in nodes))


def node_name(node: dict) -> str:
    return f"node {node['NodeID'][:8]} ({node.get('NodeManagerAddress', '?')})"


def _judge(node, seen, cwd, relative, files, local):
    """One node's answer to the data check: an error naming the first problem, or nothing."""
    name = f"Ray {node_name(node)}, host {seen['host']},"
    if relative and not seen["cwd"]:
        raise UserError(f"{name} has no folder {cwd} (the tuner's current folder, where the "
                        f"relative paths of the config start); nothing was started. Fix: "
                        f"{FIX_SHARED}")
    for key, path in files:
        there = seen["files"][path]
        if there == "missing":
            raise UserError(f"{name} has no data file {path} ({key}); nothing was started. "
                            f"Fix: {FIX_SHARED}")
        if there != local[path]:
            raise UserError(f"{name} has another {path} ({key}) than this machine (size:footer "
                            f"{there} there, {local[path]} here); nothing was started. Fix: "
                            f"copy the same file to every node")
    for root, problem in seen["roots"].items():
        if problem:
            raise UserError(f"{name}: model_root {root} {problem}; nothing was started. Fix: "
                            f"{FIX_SHARED}; the tuner reads the checkpoints there")


def _node_view(cwd, files, probes):
    """What this node sees (a Ray task pinned to it): the signature of each data file, whether
    the driver's probe file in each model_root is visible and the folder writable."""
    base = Path(cwd)
    roots = {}
    for root, probe in probes.items():
        if not (base / probe).exists():
            roots[root] = ("is another folder there than on the tuner's machine (a file the "
                           "tuner wrote in it is not visible from this node)")
            continue
        try:
            test = base / root / f".tuner_probe_{socket.gethostname()}_{os.getpid()}"
            test.write_bytes(b"")
            test.unlink()
            roots[root] = None
        except OSError as err:
            roots[root] = f"is not writable there ({err.strerror})"
    return {"host": socket.gethostname(), "cwd": base.is_dir(), "roots": roots,
            "files": {path: file_signature(base / path) for path in files}}
