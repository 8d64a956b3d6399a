"""Whose run files these are, where a new run writes, and when it replaces a finished run.

Run files live at <model_root>/<dataset_id>/<expid>.*, so two config folders with the same
expids (a copy of a tuner config with one more grid point, the same relative config in two
working folders with one absolute model_root) would write the same files. The first run of an
expid writes an owner record beside its checkpoint, `<expid>.owner.json`: where its config
folder is, seen from the run files' folder (so a working folder moved or copied as a whole,
config and checkpoints together, still owns its runs), its absolute path for messages, and the
fingerprint it was claimed with. A run of any other config folder
is refused before it writes anything, naming that folder: the finished runs of one config are
never overwritten by another. Files from before owner records are claimed by the first config
that runs them again.

A finished run is never replaced by a run that has not finished. When an experiment has a
finished checkpoint, a new run trains beside it (RunPaths(partial=True): its own checkpoint,
training state and history) and `promote` renames its files over the finished ones only when
it has finished; a run killed, stopped or crashed before that leaves the finished files as they
were, and a rerun continues from its own training state. The log is only ever appended to.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import UserError
from ..params import RunPaths, host
from .checkpoint import read_checkpoint
from .results import latest_results, results_path


def config_identity(config_dir: Path | str) -> str:
    """A config folder as messages name it: its absolute, resolved path."""
    return str(Path(config_dir).resolve())


def config_from_runs(paths: RunPaths, config_dir: Path | str) -> str:
    """A config folder as the owner record compares it: its path relative to the run files'
    folder, unchanged when both move together, different for another config folder."""
    return os.path.relpath(Path(config_dir).resolve(), Path(paths.folder).resolve())


def _same_owner(owner: dict, paths, config_dir) -> bool:
    if "config_from_runs" in owner:
        return owner["config_from_runs"] == config_from_runs(paths, config_dir)
    return owner.get("config_dir") in (None, config_identity(config_dir))  # an older record


def read_owner(path: Path | str) -> dict:
    """The owner record at path ({} when there is none or it cannot be read)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_owner(paths: RunPaths, config_dir: Path | str) -> dict:
    """The owner record of the run files at paths ({} if none); UserError, naming the owner,
    when another config folder owns them."""
    owner = read_owner(paths.owner)
    if owner and not _same_owner(owner, paths, config_dir):
        raise UserError(
            f"experiment {paths.name}: its files in {paths.folder} belong to the config folder "
            f"{owner['config_dir']} (fingerprint {owner.get('fingerprint')}, owner record "
            f"{paths.owner}), not to {config_identity(config_dir)}; training here would "
            f"overwrite that config's runs. Fix: give this config its own model_root, or, if "
            f"that config folder's runs are no longer needed, delete "
            f"{paths.folder}/{paths.name}.*")
    return owner


def claim(paths: RunPaths, config_dir: Path | str, fingerprint: str) -> None:
    """Make config_dir the owner of the run files at paths, or refuse (check_owner). Call
    under the experiment's lock, before anything is written."""
    if check_owner(paths, config_dir):
        return
    record = {"config_dir": config_identity(config_dir),
              "config_from_runs": config_from_runs(paths, config_dir), "fingerprint": fingerprint,
              "host": host(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    paths.folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(paths.owner) as tmp:
        tmp.write_text(json.dumps(record), encoding="utf-8")


def run_paths(params: dict[str, Any]) -> RunPaths:
    """Where a new run of params writes: beside the experiment's files (partial) when it has a
    finished checkpoint (one without a training state: a killed first run leaves one) or when
    a run beside it was cut short, else the experiment's own files."""
    final, partial = RunPaths(params), RunPaths(params, partial=True)
    if partial.state.exists() or partial.checkpoint.exists():
        return partial
    if final.checkpoint.exists() and not final.state.exists():
        return partial
    return final


def finished_run(paths: RunPaths, config_dir: Path | str,
                 fingerprint: str) -> dict[str, Any] | None:
    """The result line of the experiment's finished run when its checkpoint was made with
    fingerprint (the same settings and data) by the run that line names, else None."""
    if not paths.checkpoint.exists():
        return None
    try:
        saved = read_checkpoint(paths.checkpoint)
    except UserError:
        return None
    if saved.get("fingerprint") != fingerprint:
        return None
    line = latest_results(results_path(config_dir), {paths.name: fingerprint}).get(paths.name)
    return line if line is not None and line.get("run") == saved.get("run_id") else None


def keep_finished(final: RunPaths, config_dir: Path | str | None, fingerprint: str) -> None:
    """Refuse (UserError) a run by hand of an experiment whose finished run was made with the
    same settings and data: nothing new was asked for, and --fresh retrains it."""
    line = finished_run(final, config_dir, fingerprint) if config_dir is not None else None
    if line is not None:
        raise UserError(
            f"experiment {final.name} has finished with these settings and data (run "
            f"{line.get('run')}, validation AUC {line['val'].get('AUC')}, line {line.get('line')} "
            f"of {results_path(config_dir)}): kept, nothing trained. Fix: add --fresh to train it "
            f"again (the finished run is replaced only when the new one finishes)")


def promote(work: RunPaths, final: RunPaths) -> None:
    """The files of a run that finished beside the experiment's (work.partial) renamed over
    them: checkpoint first, then history and TensorBoard events. Each rename is atomic."""
    if not work.partial:
        return
    os.replace(work.checkpoint, final.checkpoint)
    if work.history.exists():
        os.replace(work.history, final.history)
    if work.tensorboard.exists():
        shutil.rmtree(final.tensorboard, ignore_errors=True)
        os.replace(work.tensorboard, final.tensorboard)
