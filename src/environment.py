"""What a run needs from the machine, checked before it writes anything: CPU threads and
torch's set-up, the GPU it asks for, writable folders, room on disk.

torch is imported inside the functions that need it, so the tuner's checks (a writable
model_root, no GPU asked for) stay fast and torch-free.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError

if TYPE_CHECKING:
    import torch
    from .params import RunPaths

logger = logging.getLogger(__name__)

# Bytes a run needs in model_root per parameter: the checkpoint, its temporary copy during a
# save, and the training state (weights + Adam's two moments), all float32.
BYTES_PER_PARAMETER = 4 * (2 + 3)


def cpu_threads(requested: int | None = None, deterministic: bool = False) -> tuple[int, str]:
    """(threads, why) for torch on the CPU: --threads, else OMP_NUM_THREADS, else 1 for a
    deterministic run (the thread count changes the order of float sums, so results are only
    identical at one count), else the cores this process may use minus the load of other
    processes (at least 1). torch's default, one thread per core, made training 10-16x slower
    on a busy 2-core machine."""
    if requested:
        return int(requested), "--threads"
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    if deterministic:
        return 1, "deterministic: True"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - load))), f"{cores} cores, load {load:.1f}"


def set_up_torch(params: dict[str, Any], threads: int | None = None) -> None:
    """Threads, determinism and seeds of a run, logged."""
    import torch
    from fuxictr.pytorch.torch_utils import seed_everything
    count, why = cpu_threads(threads, params.get("deterministic"))
    torch.set_num_threads(count)
    if params.get("deterministic"):
        # cuBLAS needs this before its first use to pick deterministic kernels
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    logger.info("CPU threads: %d (%s; --threads N to choose)%s", count, why,
                ", deterministic algorithms" if params.get("deterministic") else "")
    seed_everything(seed=params["seed"])


def check_room(model: torch.nn.Module, paths: RunPaths) -> None:
    """model_root must take this run's files: checked before any training."""
    count = sum(p.numel() for p in model.parameters())
    needed = count * BYTES_PER_PARAMETER
    free = shutil.disk_usage(paths.folder).free
    if free < needed:
        raise UserError(f"model_root folder {paths.folder} has {free / 1e6:,.0f} MB free, a "
                        f"checkpoint and training state of {count:,} parameters need about "
                        f"{needed / 1e6:,.0f} MB. Fix: free disk space or set model_root to a "
                        f"folder with room")


def require_gpu(gpu: int | None) -> None:
    """--gpu N must name a CUDA device torch can see. FuxiCTR silently falls back to the CPU,
    which is what a CPU build of torch gives: a "GPU" run then takes days without a word."""
    if gpu is None or gpu < 0:
        return
    import torch
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpu >= count:
        build = ("a CPU build: torch.version.cuda is None" if torch.version.cuda is None
                 else f"CUDA {torch.version.cuda}")
        raise UserError(f"--gpu {gpu}: torch {torch.__version__} ({build}) sees {count} CUDA "
                        f"device(s). Fix: install a CUDA build of torch (README, \"Installing "
                        f"torch for a GPU\"), check CUDA_VISIBLE_DEVICES, or use --gpu -1 for "
                        f"the CPU")


def require_writable(folder: Path | str, what: str) -> None:
    """Create folder if needed and prove a file can be written there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"{what} {folder} is not writable ({err.strerror}). Fix: point it at a "
                        f"folder you can write, or fix its permissions") from None
