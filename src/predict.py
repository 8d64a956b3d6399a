"""Scoring the test set with trained experiments: which experiments (`best`, `best:K`, an
expid), each one's checkpoint checked against its config, data, result line and weights hash,
their scores combined (mean or rank average), the submission written and checked with its
manifest, and the validation AUC of an ensemble reported beside its members'.

prediction.py and demo.py are thin wrappers around `predict_test`.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.checks import validate_dataset
from .data.features import build_feature_map
from .data.loader import TEST_ID, MMCTRDataLoader
from .data.vocab import resolve_vocab_sizes
from .environment import cpu_threads, require_gpu, require_writable
from .errors import ConfigError, SubmissionError, UserError
from .experiment import build_model, make_loaders
from .manifest import build_manifest, write_manifest
from .params import config_expids, load_params, require_config_dir
from .runs.checks import check_line_weights, require_finished
from .runs.fingerprint import describe_difference, file_signature, fingerprint_record
from .runs.results import best_result, latest_results, ranked_results, results_path
from .submission import check_submission, submission_name, write_submission
from .training.checkpoints import load_weights
from .training.evaluation import predict, score_loader
from .tuning.keys import check_config_dir

if TYPE_CHECKING:
    from fuxictr.features import FeatureMap
    from .models.base import MMCTRModel

logger = logging.getLogger(__name__)

TASK_COLUMNS = {1: "Task1", 2: "Task2"}
# How an ensemble's members' scores become one: mean of the probabilities, or (rank) mean of
# each member's normalised ranks, which weighs members alike whatever their score scales.
AVERAGES = ("mean", "rank")


def current_fingerprints(config_dir: Path | str,
                         expids: Iterable[str] | None = None) -> dict[str, str]:
    """{expid: fingerprint of its config and data now} for a config folder's experiments."""
    signatures = {}
    return {e: fingerprint_record(load_params(config_dir, e), signatures)["fingerprint"]
            for e in (expids or config_expids(config_dir))}


def resolve_expids(config_dir: Path | str,
                   expid_args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
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


def load_checked_model(config_dir: Path | str, expid: str, line: dict[str, Any], gpu: int,
                       allow_unfinished: bool = False) -> tuple[dict[str, Any], MMCTRModel]:
    """The trained model of expid, after checking that its run finished (unless
    allow_unfinished), that its checkpoint was made by the config and data as they are now and
    by the run whose result line picked it, and that its weights are those the run saved
    (their hash: the checkpoint's own, and the result line's)."""
    require_gpu(gpu)
    params = load_params(config_dir, expid, gpu)
    check_config_dir(config_dir, expid)
    if not allow_unfinished:
        require_finished(config_dir, expid, line, params)
    record = fingerprint_record(params)
    params = resolve_vocab_sizes(params)
    model = build_model(params)
    saved = load_weights(model, model.checkpoint, model.device)  # checks its own hash
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


def combine_scores(scores: Sequence[np.ndarray], average: str = "mean") -> np.ndarray:
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


def predict_test(config_dir: Path | str, expids: Sequence[str] = ("best",), gpu: int = -1,
                 tasks: Sequence[int] = (2,), out_dir: Path | str = "submission",
                 threads: int | None = None, average: str = "mean",
                 allow_unfinished: bool = False) -> dict[str, Any]:
    """Score the test split in file order with one experiment or the average of several
    (average: "mean" of probabilities or "rank", see combine_scores), write
    out_dir/<name>/prediction.csv and out_dir/<name>.zip and check the zip. The test file is
    checked against each experiment's features before any model is loaded. An unfinished run
    is refused unless allow_unfinished. The result holds the written scores under "scores"."""
    import torch
    expids = [expids] if isinstance(expids, str) else list(expids)
    if average not in AVERAGES:
        raise ConfigError(f"--average {average}: expected one of {', '.join(AVERAGES)}")
    chosen, _ = resolve_expids(config_dir, expids)
    require_writable(out_dir, "submission folder")
    count, why = cpu_threads(threads)
    torch.set_num_threads(count)
    logger.info("CPU threads: %d (%s; --threads N to choose)", count, why)
    for expid, _ in chosen:  # a missing or bad test column is named before any model loads
        validate_dataset(load_params(config_dir, expid, gpu), splits=("test",))
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


def validation_scores(model: MMCTRModel, params: dict[str, Any],
                      feature_map: FeatureMap | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of a trained model on the validation split, in file order."""
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
