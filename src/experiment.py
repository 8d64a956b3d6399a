"""One experiment, read top to bottom: checks -> lock -> log -> seed -> model -> data -> fit
(or resume) -> evaluate -> result line.

run_expid.py is a thin wrapper around `train`; scoring the test set with trained experiments
is src/predict.py, the machine checks (threads, GPU, folders, disk room) src/environment.py.
Order matters here: everything that can refuse a run (config values, data files, a writable
model_root with room, another process training the same experiment) is checked before the
log file is opened, so a refused run leaves every file as it was.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli import add_log_file, console_summary
from .data.checks import validate_dataset
from .data.features import build_feature_map
from .data.loader import MMCTRDataLoader
from .data.vocab import resolve_vocab_sizes
from .environment import check_room, require_gpu, require_writable, set_up_torch
from .errors import UserError
from .history import RunHistory, require_tensorboard
from .models import model_class
from .params import RunPaths, load_params  # noqa: F401 (load_params: run_expid.py imports it here)
from .runs.checkpoint import read_checkpoint
from .runs.fingerprint import describe_difference, fingerprint_record, new_run_id
from .runs.lock import FileLock
from .runs.results import append_result
from .runs.files import check_owner, claim, keep_finished, promote, run_paths
from .training.options import RunContext, TrainingOptions
from .training.state_hash import CHECKPOINT_KEY, STATE_KEY, verify_weights
from .training.trainer import Trainer
from .tuning.keys import check_config_dir
from .tuning.values import check_grid_values

if TYPE_CHECKING:
    import torch
    from fuxictr.features import FeatureMap
    from .data.item_table import ItemTable
    from .models.base import MMCTRModel

logger = logging.getLogger(__name__)


# --- building blocks -----------------------------------------------------------------------
def build_model(params: dict[str, Any], feature_map: FeatureMap | None = None,
                item_table: ItemTable | None = None) -> MMCTRModel:
    """The model of params; item_table shares an already loaded ItemTable (else item_info
    is read)."""
    feature_map = feature_map or build_feature_map(params)
    model = model_class(params["model"])(feature_map, item_table=item_table, **params)
    model.config = dict(params)  # recorded in its checkpoints
    # where the experiment's best weights are kept (training writes, prediction reads them)
    model.checkpoint = str(Path(RunPaths(params).checkpoint).resolve())
    return model


def split_device(params: dict[str, Any], model: MMCTRModel | None, stage: str) -> torch.device:
    """Where the split's arrays live: on the model's GPU when they fit in half its free
    memory (a batch is then a slice and a gather on the GPU), else on the CPU.
    The config key split_on_device (default True) turns this off."""
    import pyarrow.parquet as pq
    import torch
    if model is None or model.device.type != "cuda" or not params.get("split_on_device", True):
        return torch.device("cpu")
    paths = [params["train_data"], params["valid_data"]] if stage == "train" \
        else [params["test_data"]]
    # per row: max_len int32 history ids plus about 8 int64 scalar columns
    row_bytes = 4 * int(params.get("max_len", 64)) + 8 * 8
    needed = sum(pq.ParquetFile(p).metadata.num_rows for p in paths if p) * row_bytes
    free, _ = torch.cuda.mem_get_info(model.device)
    if needed < free / 2:
        return model.device
    logger.info("Splits need %.1f GB, more than half the free GPU memory: kept on the CPU",
                needed / 1e9)
    return torch.device("cpu")


def make_loaders(
        feature_map: FeatureMap, params: dict[str, Any], stage: str,
        model: MMCTRModel | None = None,
) -> tuple[MMCTRDataLoader, MMCTRDataLoader] | MMCTRDataLoader:
    """FuxiCTR's RankDataLoader with our loader: (train, valid) for "train", test for "test".
    With a model on a GPU, the splits go to that GPU when they fit (split_device)."""
    from fuxictr.pytorch.dataloaders import RankDataLoader
    return RankDataLoader(feature_map, stage=stage, data_loader=MMCTRDataLoader,
                          device=split_device(params, model, stage), **params).make_iterator()


def check_params(params: dict[str, Any], config_dir: Path | str | None = None) -> None:
    """The keys of one experiment's blocks in config_dir (strict: an unknown key is refused)
    and its values, as the tuner checks every grid point."""
    if config_dir is not None:
        check_config_dir(config_dir, params["model_id"])
    check_grid_values({params["model_id"]: params}, f"expid {params['model_id']}")


# --- training -----------------------------------------------------------------------------
class _SignalAsExit:
    """While training, SIGTERM (a scheduler or the tuner stopping the run) is logged in the
    run's own log, then the process dies of that signal as before, so whoever sent it sees
    the usual status. Only in the main thread (Python's rule); a run in another thread (a
    Ray Tune trial) is stopped by its executor."""

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    @staticmethod
    def _handle(signum, frame):
        logger.warning("Stopped by %s; the training state of the last evaluation is kept, a "
                       "rerun continues from it", signal.Signals(signum).name)
        logging.shutdown()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def _resume_state(paths, record, fresh):
    """The saved training state to continue from, or None (and why, logged). A state or best
    checkpoint whose weights do not match their recorded hash is not resumed from."""
    if not paths.state.exists():
        return None
    if fresh:
        logger.info("Ignoring the training state %s (--fresh)", paths.state)
        return None
    try:
        state = read_checkpoint(paths.state, what="training state")
        verify_weights(state.get("model", {}), state.get(STATE_KEY), paths.state,
                       what="training state")
        if paths.checkpoint.exists():
            best = read_checkpoint(paths.checkpoint)
            verify_weights(best.get("state_dict", {}), best.get(CHECKPOINT_KEY),
                           paths.checkpoint)
    except UserError as err:
        logger.warning("Starting from scratch: %s", str(err).split(". Fix:")[0])
        return None
    saved = state.get("run_info", {})
    if saved.get("fingerprint") != record["fingerprint"]:
        logger.warning("Starting from scratch: the training state %s was made with other "
                       "settings or data (%s)", paths.state,
                       describe_difference(saved.get("fingerprint_record", {}), record))
        return None
    if not paths.checkpoint.exists():
        logger.warning("Starting from scratch: the training state has no best checkpoint %s",
                       paths.checkpoint)
        return None
    return state


def train(params: dict[str, Any], config_dir: Path | str | None, argv: list[str] | None = None,
          threads: int | None = None, fresh: bool = False, tuner_pid: int | None = None,
          on_evaluation: Callable[[Trainer, dict[str, float]], None] | None = None,
          caller_writes_result: bool = False) -> dict[str, Any]:
    """Train the experiment of params (from load_params), evaluate on valid, append the
    result line for config_dir; return the validation metrics.
    on_evaluation(trainer, val_logs): called after each evaluation's checkpoint and training
    state are saved (a scheduler's look at the run: src/tuning/ray_runner.py).
    caller_writes_result: append no result line but return what it would hold, {"val",
    "fingerprint", "run", "dataset_id", "weights"}: the tuner that started the run elsewhere
    writes it.
    A finished run of the experiment is replaced only when this run finishes (it trains beside
    it, src/runs/files.py); one made with the same settings and data is kept, unless
    fresh or a tuner (tuner_pid, caller_writes_result) asked for this run."""
    final = RunPaths(params)
    require_gpu(params.get("gpu"))
    check_params(params, config_dir)
    require_tensorboard(params)
    validate_dataset(params, splits=("train", "valid"))
    require_writable(final.folder, "model_root folder")
    with FileLock(final.lock, f"experiment {final.name}",
                  fix="wait for that run to finish (a tuner's run stops by itself once its tuner "
                      "is gone) or stop it"):
        record = fingerprint_record(params)  # of the config as written: `auto` and all
        if config_dir is not None:
            check_owner(final, config_dir)  # another config folder's files: refused
        paths = run_paths(params)
        if paths.partial and not (fresh or tuner_pid or caller_writes_result
                                  or paths.state.exists()):
            keep_finished(final, config_dir, record["fingerprint"])
        if config_dir is not None:
            claim(final, config_dir, record["fingerprint"])
        params = resolve_vocab_sizes(params)  # the numbers go into the checkpoint's config
        resume = _resume_state(paths, record, fresh)
        add_log_file(paths.log, append=True)  # never truncated: it may hold a finished run's
        if paths.partial:
            logger.info("%s has a finished run: this run writes beside it (%s.partial.*) and "
                        "replaces it only when it finishes", final.name, final.name)
        logger.debug("Params: %s", params)
        logger.info("Params:\n%s", _params_block(params), extra={"file_only": True})
        # continued from the state's evaluation on a resume, else started afresh
        history = RunHistory(paths.history, resume["total_steps"] if resume else None,
                             paths.tensorboard if params.get("tensorboard") else None)
        try:
            with _SignalAsExit():
                return _train(params, config_dir, argv, threads, tuner_pid, paths, final,
                              record, resume, history, on_evaluation, caller_writes_result)
        finally:
            history.close()


def _train(params, config_dir, argv, threads, tuner_pid, paths, final, record, resume, history,
           on_evaluation, caller_writes_result):
    set_up_torch(params, threads)
    if params.get("gpu", -1) >= 0:
        import torch
        logger.info("GPU %d: %s (CUDA_VISIBLE_DEVICES=%s)", params["gpu"],
                    torch.cuda.get_device_name(params["gpu"]),
                    os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    run_id = resume["run_info"]["run_id"] if resume else new_run_id()
    # paths: beside a finished run, this run's own files (src/runs/files.py)
    run = RunContext(checkpoint=str(paths.checkpoint.resolve()), state_path=str(paths.state),
                     run_info={"fingerprint": record["fingerprint"], "run_id": run_id,
                               "fingerprint_record": record},
                     history=history, should_stop=_tuner_gone(tuner_pid) if tuner_pid else None,
                     callbacks=[on_evaluation] if on_evaluation else [])
    trainer = Trainer(model, TrainingOptions.from_params(params), run)
    count = sum(p.numel() for p in model.parameters())
    check_room(model, paths)
    console_summary(f"{paths.name}: model {params['model']}, {count:,} parameters, lr "
                    f"{params['learning_rate']}, batch {params['batch_size']}, "
                    f"{'resuming' if resume else 'run ' + run_id}; log {paths.log}")
    train_gen, valid_gen = make_loaders(feature_map, params, "train", model)
    trainer.fit(train_gen, valid_gen, resume=resume)
    logger.info("****** Validation evaluation ******")
    valid_result = trainer.evaluate(valid_gen)
    promote(paths, final)  # this run's files over a finished run's, now that it has finished
    if caller_writes_result:
        paths.state.unlink(missing_ok=True)  # finished: a rerun trains afresh
        return {"val": valid_result, "fingerprint": record["fingerprint"], "run": run_id,
                "dataset_id": params["dataset_id"], "weights": trainer.weights_sha256}
    path = append_result(config_dir, paths.name, params["dataset_id"], valid_result, argv,
                         fingerprint=record["fingerprint"], run_id=run_id,
                         weights=trainer.weights_sha256)
    paths.state.unlink(missing_ok=True)  # finished: a rerun trains afresh
    logger.info("Result appended to %s", path)
    return valid_result


def _tuner_gone(tuner_pid):
    """should_stop of a run its tuner started: an orphan stops by itself (its parent is gone)."""
    return lambda: f"the tuner (pid {tuner_pid}) is gone" if os.getppid() != tuner_pid else None


def _params_block(params):
    return "\n".join(f"  {k}: {params[k]}" for k in sorted(params))
