"""A content hash of a model's weights, so a damaged checkpoint is refused instead of scored.

Every checkpoint (and training state) records the sha256 of its weights when it is written;
the run's result line records the hash of the checkpoint it was evaluated with. Whoever loads
weights (prediction, a resumed run, the tuner deciding a run is `done before`) recomputes the
hash and compares: a flipped sign bit or a zeroed tensor changes it, a copy of the file to
another machine does not.

The hash covers, in state_dict order, each entry's name, dtype, shape and raw bytes, so it
depends only on the weights, not on how torch laid out the file (zip layout, pickle
protocol) or on the device they were saved from.

torch is imported when a hash is computed, not with this module: the tuner imports it at its
top and stays torch-free until it checks a checkpoint.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError

CHECKPOINT_KEY = "weights_sha256"  # in a checkpoint, beside state_dict
STATE_KEY = "model_sha256"  # in a training state, beside model


class DamagedCheckpoint(UserError):
    """A checkpoint's weights do not match the hash recorded when it was written."""


def state_hash(state_dict: Mapping[str, Any]) -> str:
    """sha256 (hex) over the names, dtypes, shapes and bytes of a state_dict, in its order."""
    import torch
    digest = hashlib.sha256()
    for name, value in state_dict.items():
        digest.update(f"{name}\0".encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            digest.update(f"{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
            # a byte view works for every dtype (bfloat16 too) and for 0-d tensors once flat
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:  # extra state of a module: plain values
            digest.update(f"{type(value).__name__}\0{value!r}\0".encode())
    return digest.hexdigest()


def verify_weights(state_dict: Mapping[str, Any], recorded: str | None, path: Path | str,
                   what: str = "checkpoint") -> str:
    """The hash of state_dict; DamagedCheckpoint (one line naming path) when it differs from
    recorded, the hash written with the file. recorded None (a file written before weights
    were hashed) is not checked: the caller decides what an unverifiable file is worth."""
    actual = state_hash(state_dict)
    if recorded is not None and actual != recorded:
        raise DamagedCheckpoint(
            f"{what} {path} is damaged: its weights hash to sha256 {actual[:16]}..., not the "
            f"{recorded[:16]}... recorded when it was written. Fix: retrain the experiment "
            f"(rerun the tuner: it retrains experiments whose checkpoint is damaged)")
    return actual
