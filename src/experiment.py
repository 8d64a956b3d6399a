"""One experiment, read top to bottom: checks -> lock -> log -> seed -> model -> data -> fit
(or resume) -> evaluate -> result line; and scoring the test set with trained experiments.

run_expid.py and prediction.py are thin wrappers around `train` and `predict_test`.
Order matters here: everything that can refuse a run (config values, data files, a writable
model_root with room, another process training the same experiment) is checked before the
log file is opened, so a refused run leaves every file as it was.
"""
import logging
import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np

from .cli import add_log_file, console_summary
from .errors import ConfigError, SubmissionError, UserError
from .history import RunHistory, require_tensorboard
from .params import RunPaths, load_params, log_file, require_config_dir  # noqa: F401
from .run_checks import check_line_weights, require_finished
from .tuning.fingerprint import (describe_difference, fingerprint_record, file_signature,
                                 new_run_id)
from .tuning.lock import FileLock
from .tuning.results import append_result, latest_results, ranked_results, results_path
from .tuning.keys import check_config_dir
from .tuning.run_files import check_owner, claim, keep_finished, promote, run_paths
from .tuning.values import check_grid_values

logger = logging.getLogger(__name__)

TASK_COLUMNS = {1: "Task1", 2: "Task2"}
# How an ensemble's members' scores become one: mean of the probabilities, or (rank) mean of
# each member's normalised ranks, which weighs members alike whatever their score scales.
AVERAGES = ("mean", "rank")
# Bytes a run needs in model_root per parameter: the checkpoint, its temporary copy during a
# save, and the training state (weights + Adam's two moments), all float32.
BYTES_PER_PARAMETER = 4 * (2 + 3)


# --- building blocks -----------------------------------------------------------------------
def build_model(params, feature_map=None, item_table=None):
    """The model of params; item_table shares an already loaded ItemTable (else item_info
    is read)."""
    from .data.features import build_feature_map
    from .models import model_class
    feature_map = feature_map or build_feature_map(params)
    model = model_class(params["model"])(feature_map, item_table=item_table, **params)
    model.config = dict(params)  # recorded in its checkpoints
    # where the experiment's best weights are kept (training writes, prediction reads them)
    model.checkpoint = str(Path(RunPaths(params).checkpoint).resolve())
    return model


def split_device(params, model, stage):
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


def make_loaders(feature_map, params, stage, model=None):
    """FuxiCTR's RankDataLoader with our loader: (train, valid) for "train", test for "test".
    With a model on a GPU, the splits go to that GPU when they fit (split_device)."""
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from .data.loader import MMCTRDataLoader
    return RankDataLoader(feature_map, stage=stage, data_loader=MMCTRDataLoader,
                          device=split_device(params, model, stage), **params).make_iterator()


def resolve_vocab_sizes(params):
    """params with every `vocab_size: auto` replaced by its number (src/data/vocab.py)."""
    from .data.vocab import resolve_vocab_sizes as resolve
    return resolve(params)


def validate_inputs(params, splits):
    """Check data files against the config before any work (see src/data/checks.py)."""
    from .data.checks import validate_dataset
    return validate_dataset(params, splits=splits)


def check_params(params, config_dir=None):
    """The keys of one experiment's blocks in config_dir (strict: an unknown key is refused)
    and its values, as the tuner checks every grid point."""
    if config_dir is not None:
        check_config_dir(config_dir, params["model_id"])
    check_grid_values({params["model_id"]: params}, f"expid {params['model_id']}")


def cpu_threads(requested=None, deterministic=False):
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


def set_up_torch(params, threads=None):
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


def check_room(model, paths):
    """model_root must take this run's files: checked before any training."""
    count = sum(p.numel() for p in model.parameters())
    needed = count * BYTES_PER_PARAMETER
    free = shutil.disk_usage(paths.folder).free
    if free < needed:
        raise UserError(f"model_root folder {paths.folder} has {free / 1e6:,.0f} MB free, a "
                        f"checkpoint and training state of {count:,} parameters need about "
                        f"{needed / 1e6:,.0f} MB. Fix: free disk space or set model_root to a "
                        f"folder with room")


def require_gpu(gpu):
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


def require_writable(folder, what):
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
    from .training.checkpoints import read_checkpoint
    from .training.state_hash import CHECKPOINT_KEY, STATE_KEY, verify_weights
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


def train(params, config_dir, argv=None, threads=None, fresh=False, tuner_pid=None,
          on_evaluation=None, hand_back=False):
    """Train the experiment of params (from load_params), evaluate on valid, append the
    result line for config_dir; return the validation metrics.
    on_evaluation(trainer, val_logs): called after each evaluation's checkpoint and training
    state are saved (a scheduler's look at the run: src/tuning/ray_runner.py).
    hand_back: append no result line but return what it would hold, {"val", "fingerprint",
    "run", "dataset_id", "weights"}: the tuner that started the run elsewhere writes it.
    A finished run of the experiment is replaced only when this run finishes (it trains beside
    it, src/tuning/run_files.py); one made with the same settings and data is kept, unless
    fresh or a tuner (tuner_pid, hand_back) asked for this run."""
    final = RunPaths(params)
    require_gpu(params.get("gpu"))
    check_params(params, config_dir)
    require_tensorboard(params)
    validate_inputs(params, splits=("train", "valid"))
    require_writable(final.folder, "model_root folder")
    with FileLock(final.lock, f"experiment {final.name}",
                  fix="wait for that run to finish (a tuner's run stops by itself once its tuner "
                      "is gone) or stop it"):
        record = fingerprint_record(params)  # of the config as written: `auto` and all
        if config_dir is not None:
            check_owner(final, config_dir)  # another config folder's files: refused
        paths = run_paths(params)
        if paths.partial and not (fresh or tuner_pid or hand_back or paths.state.exists()):
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
                              record, resume, history, on_evaluation, hand_back)
        finally:
            history.close()


def _train(params, config_dir, argv, threads, tuner_pid, paths, final, record, resume, history,
           on_evaluation, hand_back):
    from .data.features import build_feature_map
    from .training.options import RunContext, TrainingOptions
    from .training.trainer import Trainer
    set_up_torch(params, threads)
    if params.get("gpu", -1) >= 0:
        import torch
        logger.info("GPU %d: %s (CUDA_VISIBLE_DEVICES=%s)", params["gpu"],
                    torch.cuda.get_device_name(params["gpu"]),
                    os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    feature_map = build_feature_map(params)
    model = build_model(params, feature_map)
    run_id = resume["run_info"]["run_id"] if resume else new_run_id()
    # paths: beside a finished run, this run's own files (src/tuning/run_files.py)
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
    if hand_back:
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


# --- prediction ---------------------------------------------------------------------------
def current_fingerprints(config_dir, expids=None):
    """{expid: fingerprint of its config and data now} for a config folder's experiments."""
    from .params import config_expids
    signatures = {}
    return {e: fingerprint_record(load_params(config_dir, e), signatures)["fingerprint"]
            for e in (expids or config_expids(config_dir))}


def resolve_expids(config_dir, expid_args):
    """Expids to predict with and the result lines they were picked by. `best` is the best
    validation AUC among the grid's experiments with their current settings and data,
    `best:K` the K best (an ensemble); any other value names an expid."""
    require_config_dir(config_dir)
    fingerprints = current_fingerprints(config_dir)
    chosen = []
    for arg in expid_args:
        if arg == "best" or arg.startswith("best:"):
            count = 1 if arg == "best" else _positive(arg.split(":", 1)[1], arg)
            ranked = ranked_results(config_dir, fingerprints)
            if not ranked:
                from .tuning.results import best_result
                best_result(config_dir, fingerprints)  # raises the "no results" error
            if len(ranked) < count:
                raise ConfigError(f"--expid {arg}: only {len(ranked)} experiment(s) of "
                                  f"{config_dir} have results. Fix: ask for fewer")
            chosen += [(r["exp_id"], r) for r in ranked[:count]]
        else:
            if arg not in fingerprints:
                load_params(config_dir, arg)  # raises the error listing the known expids
            line = latest_results(results_path(config_dir), {arg: fingerprints[arg]}).get(arg)
            chosen.append((arg, line))
    unique = list(dict((e, (e, r)) for e, r in chosen).values())
    return unique, fingerprints


def _positive(text, arg):
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--expid {arg}: expected best:K with K a whole number >= 1")
    return int(text)


def load_checked_model(config_dir, expid, line, gpu, allow_unfinished=False):
    """The trained model of expid, after checking that its run finished (unless
    allow_unfinished), that its checkpoint was made by the config and data as they are now and
    by the run whose result line picked it, and that its weights are those the run saved
    (their hash: the checkpoint's own, and the result line's)."""
    from .training.checkpoints import load_weights
    require_gpu(gpu)
    params = load_params(config_dir, expid, gpu)
    check_config_dir(config_dir, expid)
    if not allow_unfinished:
        require_finished(config_dir, expid, line, params)
    record = fingerprint_record(params)
    params = resolve_vocab_sizes(params)
    model = build_model(params)
    # checks the checkpoint's own hash
    saved = load_weights(model, model.checkpoint, model.device)
    made_by = saved.get("fingerprint")
    if made_by != record["fingerprint"]:
        raise UserError(
            f"checkpoint {model.checkpoint} was not made by experiment {expid} of {config_dir} "
            f"as it is now (checkpoint fingerprint {made_by}, config {record['fingerprint']}: "
            f"{describe_difference(saved.get('fingerprint_record') or {}, record) or 'no record'}"
            f"). Another config with the same expid, or a retrain, replaced it. Fix: retrain "
            f"{expid} with this config (python run_param_tuner.py --config {config_dir}.yaml "
            f"--force, or run_expid.py), or predict with the config that trained it")
    if line is not None and line.get("run") != saved.get("run_id"):
        raise UserError(
            f"checkpoint {model.checkpoint} was written by run {saved.get('run_id')}, but the "
            f"result line of {expid} (line {line.get('line')} of {results_path(config_dir)}, "
            f"validation AUC {line['val'].get('AUC')}) came from run {line.get('run')}: the "
            f"checkpoint was replaced after that result. Fix: retrain {expid} (rerun the tuner "
            f"with --force) so checkpoint and result come from one run")
    # after the fingerprint and run checks, whose messages say more about a swapped file
    check_line_weights(config_dir, expid, line, model.checkpoint, saved.get("weights_sha256"))
    if line is None:
        logger.warning("%s has no result line in %s (--allow-unfinished): the checkpoint matches "
                       "the config, but its validation AUC is not on record", expid,
                       results_path(config_dir))
    return params, model


def combine_scores(scores, average="mean"):
    """One score per row from the members' scores (a list of equal-length arrays): their
    mean, or for "rank" the mean of each member's ranks divided by the row count (ties get
    their average rank), which lies in (0, 1] like a probability. One member's scores are
    returned as they are. Used for the test and the validation scores alike."""
    if average not in AVERAGES:
        raise ConfigError(f"average={average!r}: expected one of {', '.join(AVERAGES)}")
    if len(scores) == 1:
        return np.asarray(scores[0])
    if average == "rank":
        from scipy.stats import rankdata
        scores = [rankdata(s) / len(s) for s in scores]
    return np.mean(scores, axis=0)


def predict_test(config_dir, expids=("best",), gpu=-1, tasks=(2,), out_dir="submission",
                 threads=None, average="mean", allow_unfinished=False):
    """Score the test split in file order with one experiment or the average of several
    (average: "mean" of probabilities or "rank", see combine_scores), write
    out_dir/<name>/prediction.csv and out_dir/<name>.zip and check the zip. The test file is
    checked against each experiment's features before any model is loaded. An unfinished run
    is refused unless allow_unfinished. The result holds the written scores under "scores"."""
    import torch
    from .data.features import build_feature_map
    from .data.loader import TEST_ID
    from .manifest import build_manifest, write_manifest
    from .submission import check_submission, submission_name, write_submission
    from .training.evaluation import predict
    expids = [expids] if isinstance(expids, str) else list(expids)
    if average not in AVERAGES:
        raise ConfigError(f"--average {average}: expected one of {', '.join(AVERAGES)}")
    chosen, _ = resolve_expids(config_dir, expids)
    require_writable(out_dir, "submission folder")
    count, why = cpu_threads(threads)
    torch.set_num_threads(count)
    logger.info("CPU threads: %d (%s; --threads N to choose)", count, why)
    for expid, _ in chosen:  # a missing or bad test column is named before any model loads
        validate_inputs(load_params(config_dir, expid, gpu), splits=("test",))
    members, test_files = [], set()
    for expid, line in chosen:
        params, model = load_checked_model(config_dir, expid, line, gpu, allow_unfinished)
        test_files.add((str(Path(params["test_data"]).resolve()),
                        file_signature(params["test_data"])))
        members.append((expid, line, params, model))
    if len(test_files) > 1:
        raise UserError(f"the experiments {', '.join(e for e, *_ in members)} read different test "
                        f"files ({', '.join(p for p, _ in sorted(test_files))}): their scores "
                        f"cannot be averaged. Fix: ensemble experiments of one test file")
    scores, ids, valid_scores = [], None, []
    for expid, line, params, model in members:
        feature_map = build_feature_map(params)
        test_gen = make_loaders(feature_map, params, "test", model)
        scores.append(predict(model, test_gen, progress_desc=f"scoring test ({expid})",
                              verbose=params.get("verbose", 1)))
        ids = test_gen.tensors[TEST_ID].cpu().numpy()
        if len(members) > 1:
            valid_scores.append(validation_scores(model, params, feature_map))
    combined = combine_scores(scores, average)
    name = submission_name([e for e, *_ in members])
    if len(members) > 1 and average != "mean":
        name += f"_{average}"  # beside the mean's zip of the same members, not over it
    aucs, member_aucs = _report_aucs(members, valid_scores, average)
    columns = {TASK_COLUMNS[task]: combined for task in sorted(set(tasks))}
    zip_path = write_submission(ids, columns, out_dir, name)
    try:
        verdict = check_submission(zip_path, members[0][2]["test_data"])
    except SubmissionError:
        zip_path.unlink()  # never leave a zip that would be rejected or scored 0
        raise
    manifest = build_manifest(
        zip_path, [{"expid": e, "valid_auc": member_aucs[e], "run": (line or {}).get("run"),
                    "result_line_auc": (line or {}).get("val", {}).get("AUC")}
                   for e, line, *_ in members],
        average if len(members) > 1 else "single", aucs, members[0][2]["test_data"], config_dir,
        expids, list(columns))
    return {"expid": name, "members": [e for e, *_ in members], "zip": zip_path,
            "verdict": verdict, "valid_auc": aucs, "rows": len(ids), "scores": combined,
            "manifest": manifest, "manifest_path": write_manifest(zip_path, manifest)}


def validation_scores(model, params, feature_map=None):
    """(scores, labels) of a trained model on the validation split, in file order."""
    from .data.features import build_feature_map
    from .data.loader import MMCTRDataLoader
    from .training.evaluation import score_loader
    feature_map = feature_map or build_feature_map(params)
    loader = MMCTRDataLoader(feature_map, params["valid_data"], split="valid",
                             batch_size=params["batch_size"], max_len=params.get("max_len", 64))
    predictions, labels, _ = score_loader(model, loader, with_labels=True,
                                         verbose=params.get("verbose", 1))
    return predictions, labels


def _report_aucs(members, valid_scores, average="mean"):
    """(validation AUC of the submission, {expid: validation AUC}): a single model's are those
    of its result line; an ensemble's are computed from the members' validation scores,
    combined as its test scores are (combine_scores); logged side by side."""
    line_auc = {e: (line or {}).get("val", {}).get("AUC") for e, line, *_ in members}
    if len(members) == 1:
        expid = members[0][0]
        if line_auc[expid] is not None:
            logger.info("%s: validation AUC %.6f", expid, line_auc[expid])
        return line_auc[expid], line_auc
    from sklearn.metrics import roc_auc_score
    labels = valid_scores[0][1]
    member_auc = {e: roc_auc_score(labels, p) for (e, *_), (p, _) in zip(members, valid_scores)}
    ensemble = roc_auc_score(labels, combine_scores([p for p, _ in valid_scores], average))
    for expid, auc in member_auc.items():
        logger.info("member %s: validation AUC %.6f", expid, auc)
    logger.info("ensemble of %d: validation AUC %.6f (best member %.6f; %s average)",
                len(members), ensemble, max(member_auc.values()), average)
    return float(ensemble), {e: float(auc) for e, auc in member_auc.items()}
