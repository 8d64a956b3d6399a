"""Reading a checkpoint or training state file with one clear error: what the tuner needs to
tell which run wrote a checkpoint, and the experiment to resume a training state.

torch is imported when a file is read, not with this module: the tuner imports it at its top
and stays torch-free until it looks at a checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def read_checkpoint(path: Path | str, what: str = "checkpoint") -> dict:
    """The content of a file written by atomic_save; one clear error if it is missing or
    unreadable (truncated, corrupt, not a checkpoint)."""
    import torch
    if not os.path.exists(path):
        raise UserError(f"{what} {path} not found. Fix: train this experiment first "
                        f"(run_expid.py or run_param_tuner.py)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        text = str(err).strip()
        if "Weights only load failed" in text:
            # torch's own advice here (weights_only=False) would run arbitrary code: not ours
            reason = "it holds Python objects a checkpoint of this toolkit never holds"
        else:
            reason = text.splitlines()[0][:160] if text else type(err).__name__
        raise UserError(f"{what} {path} is unreadable (truncated or corrupt: {reason}). Fix: "
                        f"retrain the experiment (rerunning the tuner retrains experiments whose "
                        f"checkpoint is unreadable)") from None
    if not isinstance(saved, dict):
        raise UserError(f"{what} {path} does not hold a checkpoint of this toolkit. Fix: retrain "
                        f"the experiment")
    return saved
