"""Checkpoint files: written atomically, read with one clear error, and what they hold.

A checkpoint (<run>.model) holds {"state_dict", "config", "fingerprint", "run_id",
"fingerprint_record", "weights_sha256"}: the weights with the config and run that made them and
their hash (state_hash.py), checked by whoever loads them. A training state
(<run>.state) holds everything a rerun needs to continue where an evaluation left off,
random generators included. Both are read with torch.load(weights_only=True), so they hold
plain values only (see plain()).

This module imports torch and numpy only: the tuner reads checkpoints with it without
importing the models (and FuxiCTR).
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..errors import UserError
from ..runs.checkpoint import read_checkpoint
from .state_hash import CHECKPOINT_KEY, state_hash, verify_weights


def atomic_save(content: Any, path: str | os.PathLike, what: str = "checkpoint") -> None:
    """torch.save through atomic_write: a reader (or a run killed mid-save) never sees half a
    file. A failed save leaves no temporary file and says which path could not be written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_write(path) as tmp:
            torch.save(content, tmp)
    except (OSError, RuntimeError) as err:  # torch reports some failed writes as RuntimeError
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise UserError(f"cannot write the {what} {path}: {reason}. Fix: free disk space in "
                        f"{folder} or point model_root at a writable folder with room") from None


def plain(value: Any) -> Any:
    """value as plain Python values, so torch.load(weights_only=True) can read it back."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save_weights(model: nn.Module, path: str | os.PathLike, run_info: dict | None = None) -> str:
    """The weights with the config (model.config: the params that built the model), the
    run_info (fingerprint, run_id) of the run that made them and their hash, written
    atomically: a run killed mid-save keeps its previous best checkpoint intact. Returns the
    hash."""
    weights = model.state_dict()
    digest = state_hash(weights)
    atomic_save({"state_dict": weights, "config": plain(getattr(model, "config", {})),
                 **plain(run_info or {}), CHECKPOINT_KEY: digest}, path)
    return digest


def load_weights(model: nn.Module, path: str | os.PathLike,
                 device: torch.device | None = None) -> dict:
    """Load the weights of checkpoint path into model (moved to device, when given) after
    checking them against the hash the checkpoint recorded (a damaged file is a
    DamagedCheckpoint naming it); returns what the checkpoint records of its run (fingerprint,
    run_id, weights_sha256: None for a checkpoint written before weights were hashed)."""
    saved = read_checkpoint(path)
    if device is not None:
        model.to(device)
    state_dict = saved.get("state_dict", saved)
    verify_weights(state_dict, saved.get(CHECKPOINT_KEY), path)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise UserError(f"checkpoint {path} does not fit this model ("
                        f"{str(err).splitlines()[0][:200]}). Fix: retrain the experiment, or "
                        f"predict with the config that trained it") from None
    return {CHECKPOINT_KEY: None,
            **{k: v for k, v in saved.items() if k not in ("state_dict", "config")}}


# ---- random generators, for the training state ----
def numpy_state_plain(state: tuple) -> list:
    """numpy's global generator state as plain values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = state
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def numpy_state(plain_state: list) -> tuple:
    """The inverse of numpy_state_plain: a state np.random.set_state takes."""
    name, keys, pos, has_gauss, cached = plain_state
    return (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)


def random_states(device: torch.device) -> dict:
    """The global generators of torch (and CUDA's on a GPU run), Python and numpy: a resumed
    run draws the same dropout masks and shuffles as the interrupted one would have."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            "python_rng": random.getstate(),
            "numpy_rng": numpy_state_plain(np.random.get_state())}


def restore_random_states(state: dict, device: torch.device) -> None:
    """Set the generators saved by random_states."""
    np.random.set_state(numpy_state(state["numpy_rng"]))
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
