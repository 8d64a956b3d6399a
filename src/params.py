"""An experiment's settings and where its files go.

load_params merges a config folder's Base block, the expid's block and its dataset block, as
FuxiCTR does; the run's log and checkpoint live at <model_root>/<dataset_id>/<expid>.*.
Every key's default, type and check is declared in src/options.py. Nothing here imports torch.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .options import bookkeeping_keys, with_option_defaults

# Keys that say where files go or how much is printed, not what is trained.
BOOKKEEPING_KEYS = bookkeeping_keys()


def read_yaml(path: Path | str) -> Any:
    """A YAML file's content; a syntax error becomes a ConfigError naming file and line."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)}). "
                          f"Fix: correct the YAML syntax there") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror})") from None


def require_config_dir(config_dir: Path | str) -> None:
    if not (Path(config_dir) / "model_config.yaml").is_file():
        hint = (f" (run_param_tuner.py writes {str(config_dir)[:-5]}/ from {config_dir})"
                if str(config_dir).endswith(".yaml") else "")
        raise ConfigError(f"--config {config_dir}: not a folder holding model_config.yaml and "
                          f"dataset_config.yaml{hint}")


def config_expids(config_dir: Path | str) -> list[str]:
    """The experiment ids of a config folder, in file order."""
    require_config_dir(config_dir)
    blocks = read_yaml(Path(config_dir) / "model_config.yaml") or {}
    return [k for k in blocks if k != "Base"]


def load_params(config_dir: Path | str, expid: str, gpu: int = -1) -> dict[str, Any]:
    """Base + expid block of model_config.yaml, merged with its dataset block; gpu set."""
    require_config_dir(config_dir)
    blocks = read_yaml(Path(config_dir) / "model_config.yaml") or {}
    if expid not in blocks or expid == "Base":
        known = [k for k in blocks if k != "Base"]
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20
                                          else "")
        raise ConfigError(f"--expid {expid}: not found in {config_dir}/model_config.yaml. "
                          f"Fix: use one of {listed or '(none)'}, or --expid best")
    params = dict(blocks.get("Base") or {})
    params.update(blocks[expid] or {})
    dataset_id = params.get("dataset_id")
    datasets_path = Path(config_dir) / "dataset_config.yaml"
    datasets = (read_yaml(datasets_path) or {}) if datasets_path.is_file() else {}
    if dataset_id not in datasets:
        raise ConfigError(f"--config {config_dir}: dataset_id={dataset_id!r} of expid {expid} is "
                          f"not in {datasets_path}. Fix: add its dataset block")
    params.update(datasets[dataset_id] or {})
    params["dataset_id"] = dataset_id
    params["model_id"] = expid
    params["gpu"] = gpu
    return with_option_defaults(params)


class RunPaths:
    """Where one run's files go: <model_root>/<dataset_id>/<run name>.{log,model,state,lock}
    and .history.csv (one row per evaluation); TensorBoard events, when asked for, in
    <model_root>/tensorboard/<run name>/.

    A run capped with --max-steps N is named `<expid>.max_steps_N`, so it never replaces the
    checkpoint, log or result of the full run of the same expid.

    partial=True: the files of a new run of an experiment that has a finished run, written
    beside it (`<run name>.partial.{model,state,history.csv}`) and renamed over the finished
    files only when the new run finishes (src/experiment.py). Log, lock and owner record
    (`.owner.json`, src/tuning/owner.py) are the experiment's, whatever the run."""

    def __init__(self, params: dict[str, Any], partial: bool = False) -> None:
        self.expid = params["model_id"]
        self.name = self.expid + (f".max_steps_{params['max_steps']}"
                                  if params.get("capped") else "")
        self.partial = partial
        self.root = Path(params.get("model_root", "./checkpoints/"))
        self.folder = self.root / params["dataset_id"]

    def _file(self, suffix):
        return self.folder / f"{self.name}{suffix}"

    def _run_file(self, suffix):
        return self._file((".partial" if self.partial else "") + suffix)

    log = property(lambda self: self._file(".log"))
    checkpoint = property(lambda self: self._run_file(".model"))
    state = property(lambda self: self._run_file(".state"))
    lock = property(lambda self: self._file(".lock"))
    owner = property(lambda self: self._file(".owner.json"))
    history = property(lambda self: self._run_file(".history.csv"))
    tensorboard = property(lambda self: self.root / "tensorboard" / (
        self.name + (".partial" if self.partial else "")))


def log_file(params: dict[str, Any]) -> Path:
    """Where a run's log goes: next to its checkpoint, as in FuxiCTR."""
    return RunPaths(params).log


def host() -> str:
    return socket.gethostname()
