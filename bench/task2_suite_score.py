"""Scoring the task-2 suite's runs (cached per run), the rank-average ensemble, the table of
each world, the summary over the worlds and the recommendation its RULE picks.

A helper of bench/task2_suite.py, which puts the repository root and bench/ on sys.path.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import task2_table  # this folder: the table's scoring and block statistics
from task2_suite_blocks import BASELINE, ENSEMBLE
from task2_suite_train import config_path

from src.atomic import atomic_write
from src.params import RunPaths
from src.predict import combine_scores, current_fingerprints, load_checked_model, validation_scores
from src.runs.results import latest_results, results_path
from src.submission import score_submission, write_submission
from src.tuning.grid import config_dir_of


# --- scoring ---------------------------------------------------------------------------------
def how_it_ended(log_path):
    """early stop | max_steps | epoch cap, from a run's log."""
    text = Path(log_path).read_text(errors="replace") if Path(log_path).is_file() else ""
    if "early stop" in text:
        return "early stop"
    return "max_steps" if "Reached max_steps" in text else "epoch cap"


def score_run(config_dir, expid, line, truth, work, world):
    """One run's record (test and validation scores, validation labels, test AUC, parameter
    count, seed, how it ended): from the cache when it holds this run (the run id of its
    result line), else scored now (the test zip through task2_table's score_experiment, the
    validation split through the checked model) and cached."""
    cache = work / "scores" / world / f"{expid}.npz"
    if cache.is_file():
        saved = dict(np.load(cache))
        if str(saved["run"]) == str(line.get("run")):
            return saved
    scored = task2_table.score_experiment(config_dir, expid, truth, work / "submission" / world)
    params, model = load_checked_model(config_dir, expid, line, -1)
    valid, labels = validation_scores(model, params)
    saved = {"test": np.asarray(scored["scores"]), "valid": np.asarray(valid),
             "labels": np.asarray(labels), "run": str(line.get("run")),
             "test_auc": scored["test_auc"], "parameters": scored["parameters"],
             "seed": params["seed"], "ended": how_it_ended(RunPaths(params).log)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, **saved)
    return saved


def world_runs(world, labels, work, truth, log):
    """{label: [run rows]} and {(label, seed): scores} of one world's finished runs."""
    rows, scores = {}, {}
    for label in labels:
        config_dir = config_dir_of(config_path(work, world, label))
        if not (config_dir / "model_config.yaml").is_file():
            continue
        fingerprints = current_fingerprints(config_dir)
        lines = latest_results(results_path(config_dir), fingerprints)
        for expid in fingerprints:
            if expid not in lines:
                log.say(f"  {world}/{label}: {expid} has no result line, left out")
                continue
            saved = score_run(config_dir, expid, lines[expid], truth, work, world)
            seed = int(saved["seed"])
            rows.setdefault(label, []).append({
                "config": world, "block": label, "expid": expid, "seed": seed,
                "valid_auc": lines[expid]["val"]["AUC"], "test_auc": float(saved["test_auc"]),
                "parameters": int(saved["parameters"]), "ended": str(saved["ended"])})
            scores[(label, seed)] = saved
    return rows, scores


def ensemble_members(runs, families):
    """The ensemble's blocks: in each model family (model class), the block with the best
    validation AUC averaged over its seeds, then over the worlds where it ran. [] when fewer
    than two families ran."""
    best = {}
    labels = {label for world_rows in runs.values() for label in world_rows}
    for label in sorted(labels):
        per_world = [np.mean([r["valid_auc"] for r in world_rows[label]])
                     for world_rows in runs.values() if label in world_rows]
        family, value = families[label], float(np.mean(per_world))
        if family not in best or value > best[family][1]:
            best[family] = (label, value)
    members = sorted(label for label, _ in best.values())
    return members if len(members) > 1 else []


def ensemble_rows(world, members, scores, truth, work):
    """One row per training seed of the rank average of the members' runs of that seed
    (where every member has one), scored like a block: validation AUC of the rank-averaged
    validation scores, test AUC of its checked zip."""
    rows = []
    for seed in sorted({seed for _, seed in scores}):
        runs = [scores.get((label, seed)) for label in members]
        if not members or any(run is None for run in runs):
            continue
        test = combine_scores([run["test"] for run in runs], "rank")
        valid = combine_scores([run["valid"] for run in runs], "rank")
        ids = pd.read_parquet(truth, columns=["ID"])["ID"].to_numpy()
        zipped = write_submission(ids, {"Task2": test}, work / "submission" / world,
                                  f"{ENSEMBLE}_seed{seed}")
        rows.append({"config": world, "block": ENSEMBLE, "expid": zipped.stem, "seed": seed,
                     "valid_auc": float(roc_auc_score(runs[0]["labels"], valid)),
                     "test_auc": score_submission(zipped, truth)["Task2"],
                     "parameters": int(sum(run["parameters"] for run in runs)),
                     "ended": "-"})
    return rows


# --- tables and the rule ----------------------------------------------------------------------
def loses(row, base):
    """Whether a block loses to the baseline DIN in a world: its mean test AUC is below the
    baseline DIN's by more than the larger of the two test spreads."""
    return base["test_mean"] - row["test_mean"] > max(row["test_spread"], base["test_spread"])


def world_table(world, rows, best):
    """task2_table's block statistics of one world (gap closed from the baseline DIN's means),
    ranked by mean test AUC, each row marked whether it loses to the baseline DIN."""
    blocks = {(world, label): label_rows for label, label_rows in rows.items()}
    base = blocks[(world, BASELINE)]
    table = task2_table.summarise_blocks(
        blocks, np.mean([r["valid_auc"] for r in base]), np.mean([r["test_auc"] for r in base]),
        best)
    table.sort(key=lambda r: -r["test_mean"])
    base_row = next(r for r in table if r["block"] == BASELINE)
    for rank, row in enumerate(table, 1):
        row["rank"], row["loses"] = rank, loses(row, base_row)
    return table


def summarise_worlds(tables):
    """Per candidate over the worlds ({world: world_table}): the worlds it ran in, its mean
    rank, mean gap closed (test) and the worlds where it loses to the baseline DIN; best mean gap
    first."""
    summary = {}
    for world, table in tables.items():
        for row in table:
            entry = summary.setdefault(row["block"], {"block": row["block"], "worlds": [],
                                                      "ranks": [], "gaps": [], "lost": []})
            entry["worlds"].append(world)
            entry["ranks"].append(row["rank"])
            entry["gaps"].append(row["gap_closed_test"])
            if row["loses"]:
                entry["lost"].append(world)
    for entry in summary.values():
        entry["mean_rank"] = float(np.mean(entry["ranks"]))
        entry["mean_gap"] = float(np.mean(entry["gaps"]))
    return sorted(summary.values(), key=lambda e: (-e["mean_gap"], e["mean_rank"]))


def recommend(summary, worlds):
    """The candidate RULE picks from summarise_worlds' entries, or None."""
    qualified = [e for e in summary if e["block"] != BASELINE and not e["lost"]
                 and set(worlds) <= set(e["worlds"])]
    if not qualified:
        return None
    return max(qualified, key=lambda e: (round(e["mean_gap"], 3), -e["mean_rank"]))
