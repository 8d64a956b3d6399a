"""Task 2 in every world: each model block x each click law of the generator x training seeds,
trained to early stopping (evaluated about every half epoch), scored against the generator's
ground truth, summarised over the worlds, and written up as one results document.

Usage (from the repo root; data, configs, checkpoints, result lines, scores and the log all go
under --work, so the repository stays clean):
  python bench/task2_suite.py --work runs/task2_suite                 # small data, all of it
  python bench/task2_suite.py --work runs/task2_suite --table-only    # no training: the doc
  python bench/task2_suite.py --work /tmp/suite --scale tiny --worlds cosine \\
      --blocks baseline_DIN CosineInterest --seeds 1 --epochs 1 --max-steps 5 \\
      --doc /tmp/suite/doc.md

Per world: the data is generated once into WORK/data/<world> (python -m src.datagen; kept
when its summary.json has the same scale, seed and world), semantic ids once when a block uses
them. Per (world, block): a tuner config WORK/configs/<world>/<world>__<label>.yaml (grid:
the training seeds; caps: epochs, eval_steps, early_stop_patience), run by run_param_tuner.py
with --gpu -1 once per slot, from WORK. A rerun skips finished runs (the tuner does); a
failing config is reported and the suite goes on, then exits 1. Per run: test and validation
scores cached in WORK/scores/<world>/<expid>.npz (keyed by the run id of its result line).
Then: a table per world, the summary over worlds, a rank-average ensemble of each model
family's best block, the recommendation (RULE below), and the doc (--doc), whose appendix is
docs/task2_single_world.md copied in. Progress and everything the tuners print: WORK/suite.log.
"""
import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import task2_table  # noqa: E402  (this folder: the table's scoring and block statistics)

from src.atomic import atomic_write  # noqa: E402
from src.cli import run_main  # noqa: E402
from src.errors import UserError  # noqa: E402

MODEL_CONFIG = REPO / "config" / "task2_config" / "model_config.yaml"
APPENDIX = REPO / "docs" / "task2_single_world.md"
APPENDIX_HEADING = "Appendix: the single-world comparison (cosine law only, earlier sessions)"

BASELINE = "baseline_DIN"  # every gap is measured from this block
ENSEMBLE = "ensemble"  # the rank-average ensemble's label
# label -> (model block of config/task2_config/model_config.yaml, feature set)
BLOCKS = {
    "baseline_DIN": ("DIN_default_cpu", "baseline"),
    "DIN_regularized": ("DIN_regularized_cpu", "task2"),
    "DINInterest": ("DINInterest_cpu", "task2"),
    "CosineInterest": ("CosineInterest_cpu", "task2"),
    "QIN": ("QIN_cpu", "task2"),
    "DINCrossAttention": ("DINCrossAttention_cpu", "task2"),
    "TransformerDCN": ("TransformerDCN_cpu", "task2"),
    "FlatQIN_user": ("FlatQIN_cpu", "task2_user"),  # the 2nd place's recipe embeds user_id
    "TransformerConcatDCN": ("TransformerConcatDCN_cpu", "task2"),
    "TargetDCN": ("TargetDCN_cpu", "task2"),
    "DIN_regularized_sid": ("DIN_regularized_cpu", "task2_sid"),
}
FEATURE_SETS = {
    "baseline": "the baseline's features",
    "task2": "task-2 features, no user_id",
    "task2_user": "task-2 features + user_id (L2 2e-4 on its embedding)",
    "task2_sid": "task-2 features + semantic ids (3 levels x 64 codes of item_emb_d128_v1)",
}
USER_ID_L2 = 2e-4
SID_LEVELS, SID_CODES = 3, 64

RULE = (
    "Recommended: among the candidates other than the baseline DIN (every block and the ensemble) "
    "that have runs in every world, those that lose to the baseline DIN in no world, where a "
    "candidate loses in a world when its mean test AUC is below the baseline DIN's mean by more "
    "than the larger of the two test spreads (max - min over seeds); of these, the one with "
    "the best mean share of the gap closed on test (compared to 0.1 point; ties: the better "
    "mean rank). Blocks and the ensemble compete alike, so the ensemble is the choice when no "
    "single block qualifies and it does. If nothing qualifies, there is no recommendation: the "
    "baseline DIN stays.")

# the tuner's log line as a run ends: "<expid> <status>[, on <where>]"
RUN_END = re.compile(r" INFO (\S+_\d{3}_[0-9a-f]{8}) (ok|failed.*?|interrupted|stopped early|"
                     r"not started)(, on .*)?$")


# --- feature sets ---------------------------------------------------------------------------
def feature_cols(feature_set, data_dir):
    """The dataset block's feature_cols of a feature set, for the data in data_dir: the baseline's
    as config/compare/baseline_features_tuner_config.yaml, task2 as interest_tuner_config.yaml."""
    cat = {"active": True, "dtype": "int", "type": "categorical", "vocab_size": "auto"}
    baseline = feature_set == "baseline"
    user = ({"name": "user_id", "active": True, "dtype": "int", "type": "meta"} if baseline else
            {"name": "user_id", **cat, "active": feature_set == "task2_user", "oov": True})
    if feature_set == "task2_user":
        user["embedding_regularizer"] = USER_ID_L2
    cols = [user,
            {"name": "item_seq", "active": True, "dtype": "int", "type": "meta"},
            {"name": "likes_level", **cat}, {"name": "views_level", **cat},
            {"name": "item_id", **cat, "source": "item"},
            {"name": "item_tags", **cat, "type": "sequence", "max_len": 5, "source": "item"},
            {"name": "item_emb_d128", "active": True, "dtype": "float", "type": "embedding",
             "source": "item", "embedding_dim": 128}]
    if baseline:
        return cols
    cols += [{"name": "item_likes_level", **cat, "source": "item", "from_splits": "likes_level"},
             {"name": "item_views_level", **cat, "source": "item", "from_splits": "views_level"},
             {"name": "item_emb_d128_v1", "active": True, "dtype": "float", "type": "embedding",
              "source": "item", "embedding_dim": 128,
              "item_file": str(data_dir / "item_emb.parquet")}]
    if feature_set == "task2_sid":
        cols += [{"name": f"item_sid_{level}", **cat, "source": "item",
                  "item_file": str(data_dir / "item_sid.parquet"), "column": f"sid_{level}"}
                 for level in range(1, SID_LEVELS + 1)]
    return cols


# --- what can run today ---------------------------------------------------------------------
def model_blocks():
    """{block: merged values} of config/task2_config/model_config.yaml (YAML merge keys)."""
    return {k: v for k, v in (yaml.safe_load(MODEL_CONFIG.read_text()) or {}).items()
            if k != "Base"}


def feature_set_problems(feature_sets):
    """{feature set: why it cannot run yet} among feature_sets, for those that need code
    other agents are adding."""
    import importlib.util
    problems = {}
    # the per-feature embedding_regularizer is applied by src/models/regularizer.py (see
    # src/data/features.py); without it the key would be silently ignored
    if "task2_user" in feature_sets and importlib.util.find_spec("src.models.regularizer") is None:
        problems["task2_user"] = ("per-feature embedding_regularizer (src/models/regularizer.py) "
                                  "is not in the code yet")
    if "task2_sid" in feature_sets and subprocess.run(
            [sys.executable, "-m", "src.item_embedding", "semantic-ids", "--help"],
            cwd=REPO, capture_output=True).returncode != 0:
        problems["task2_sid"] = "`python -m src.item_embedding semantic-ids` is not there yet"
    return problems


def unavailable(labels, blocks, models, problems):
    """{label: why it is skipped} for the labels whose block, model or features are missing."""
    why = {}
    for label in labels:
        block, feature_set = BLOCKS[label]
        if block not in blocks:
            why[label] = f"model block {block} is not in {MODEL_CONFIG.relative_to(REPO)} yet"
        elif blocks[block].get("model") not in models:
            why[label] = f"model {blocks[block].get('model')} (block {block}) is not in src/models"
        elif feature_set in problems:
            why[label] = f"feature set {feature_set}: {problems[feature_set]}"
    return why


def known_models():
    """The model classes src/models holds now (another agent may be mid-edit: then none)."""
    try:
        from src.models import available_models
        return set(available_models())
    except Exception as err:  # noqa: BLE001  a half-written model module must not stop the suite
        print(f"warning: src.models does not import ({err}); every block is skipped",
              file=sys.stderr)
        return set()


# --- progress -------------------------------------------------------------------------------
class Log:
    """Lines to the console and WORK/suite.log, timestamped; tuner output to the log only."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def say(self, text):
        line = f"{datetime.now():%H:%M:%S} {text}"
        print(line, flush=True)
        self.file.write(line + "\n")

    def quiet(self, text):
        self.file.write(text if text.endswith("\n") else text + "\n")


class Eta:
    """A rough ETA: the mean wall time of the configs that trained, times those left."""

    def __init__(self, total):
        self.total, self.done, self.trained, self.seconds = total, 0, 0, 0.0

    def ended(self, seconds, trained):
        self.done += 1
        if trained:
            self.trained += 1
            self.seconds += seconds

    def __str__(self):
        left = self.total - self.done
        if not left:
            return "all configs done"
        if not self.trained:
            return f"{left} config(s) left, ETA unknown"
        return f"{left} config(s) left, ETA {left * self.seconds / self.trained / 60:.0f} min"


# --- preparing one world ---------------------------------------------------------------------
def run_logged(cmd, log, cwd):
    """Run a command, its output into the log; its exit status."""
    log.quiet(f"$ (cd {cwd} && {shlex.join(map(str, cmd))})")
    done = subprocess.run(list(map(str, cmd)), cwd=cwd, capture_output=True, text=True)
    log.quiet(done.stdout + done.stderr)
    return done.returncode


def read_summary(data_dir):
    path = Path(data_dir) / "ground_truth" / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_data(world, args, data_dir, log):
    """The world's generator summary, generating the data unless it is there already."""
    summary = read_summary(data_dir)
    wanted = (args.scale, args.data_seed, world)
    if summary and (summary.get("scale"), summary.get("seed"), summary.get("world")) == wanted:
        log.say(f"{world}: data in {data_dir} (scale {args.scale}, seed {args.data_seed}) kept")
        return summary
    log.say(f"{world}: generating {args.scale} data into {data_dir}")
    status = run_logged([sys.executable, "-m", "src.datagen", "--scale", args.scale, "--world",
                         world, "--seed", args.data_seed, "--out", data_dir, "--quiet"], log, REPO)
    return read_summary(data_dir) if status == 0 else None


def ensure_sids(data_dir, log):
    """item_sid.parquet of the world's item_emb_d128_v1 (once); True when it is there."""
    out = Path(data_dir) / "item_sid.parquet"
    if out.is_file():
        return True
    status = run_logged([sys.executable, "-m", "src.item_embedding", "semantic-ids",
                         "--item-file", Path(data_dir) / "item_emb.parquet",
                         "--column", "item_emb_d128_v1", "--levels", SID_LEVELS,
                         "--codes", SID_CODES, "--out", out], log, REPO)
    return status == 0 and out.is_file()


def eval_steps_of(args, batch_size, train_rows):
    """--eval-steps, else about half an epoch's steps at the block's batch size."""
    return args.eval_steps or max(1, math.ceil(train_rows / batch_size / 2))


def tuner_config(world, label, data_dir, args, eval_steps):
    """The tuner config of one (world, block): the block, its feature set on the world's data,
    the training seeds as the grid and the caps."""
    block, feature_set = BLOCKS[label]
    dataset_id = f"{world}_{feature_set}"
    split = Path(data_dir) / "MicroLens_1M_x1"
    space = {"seed": list(args.seeds), "epochs": args.epochs, "eval_steps": eval_steps,
             "early_stop_patience": args.patience, "deterministic": True, "verbose": 0}
    if args.max_steps:
        space["max_steps"] = args.max_steps
    return {
        "base_config": f"{REPO / 'config' / 'task2_config'}/",
        "base_expid": block,
        "dataset_id": dataset_id,
        "dataset_config": {dataset_id: {
            "data_root": f"{data_dir}/", "data_format": "parquet",
            **{f"{name}_data": str(split / f"{name}.parquet")
               for name in ("train", "valid", "test")},
            "item_info": str(split / "item_info.parquet"), "rebuild_dataset": False,
            "feature_cols": feature_cols(feature_set, Path(data_dir)),
            "label_col": {"name": "label", "dtype": "float"}}},
        "tuner_space": space,
    }


def write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def config_path(work, world, label):
    return work / "configs" / world / f"{world}__{label}.yaml"


def tuner_command(tuner_yaml, slots):
    return [sys.executable, str(REPO / "run_param_tuner.py"), "--config", str(tuner_yaml),
            "--gpu", *["-1"] * slots]


def run_tuner(tuner_yaml, slots, work, log, where):
    """Run one tuner config from WORK, its output into the log and a line per run as it
    ends; (the tuner's exit status, how many runs ended, its last line)."""
    cmd = tuner_command(tuner_yaml, slots)
    log.quiet(f"$ (cd {work} && {shlex.join(cmd)})")
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    count, last = 0, ""
    for line in proc.stdout:
        log.quiet(line)
        last = line.strip() or last
        ended = RUN_END.search(line.rstrip("\n"))
        if ended:
            count += 1
            log.say(f"  {where}: {ended.group(1)} {ended.group(2)}")
        elif "Skipping" in line and "with results already" in line:
            log.say(f"  {where}: {line.split(' INFO ', 1)[-1].strip()}")
    return proc.wait(), count, last


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
    from src.predict import load_checked_model, validation_scores
    from src.params import RunPaths
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
    from src.predict import current_fingerprints
    from src.tuning.grid import config_dir_of
    from src.runs.results import latest_results, results_path
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
    import pandas as pd
    from sklearn.metrics import roc_auc_score
    from src.predict import combine_scores
    from src.submission import score_submission, write_submission
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
    """Whether a block loses to the baseline DIN in a world: its mean test AUC is below the baseline
    DIN's by more than the larger of the two test spreads."""
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


def explain(choice, summary, worlds):
    """One paragraph: what the rule picked and why."""
    if choice is None:
        out = [e for e in summary if e["block"] != BASELINE]
        why = "; ".join(f"{e['block']} loses in {', '.join(e['lost'])}" if e["lost"] else
                        f"{e['block']} did not run in every world" for e in out)
        return (f"**No recommendation**: no candidate qualifies ({why or 'no candidates'}); "
                f"the baseline DIN stays.")
    others = [e for e in summary if e["block"] not in (BASELINE, choice["block"])]
    also = [f"{e['block']} ({pct(e['mean_gap'])}, mean rank {e['mean_rank']:.1f})"
            for e in others if not e["lost"] and set(worlds) <= set(e["worlds"])]
    losing = [f"{e['block']} ({', '.join(e['lost'])})" for e in others if e["lost"]]
    return (f"**Recommended: {choice['block']}** ({describe(choice['block'])}): it loses to "
            f"the baseline DIN in none of the {len(worlds)} worlds and closes "
            f"{pct(choice['mean_gap'])} of the gap on average (mean rank {choice['mean_rank']:.1f})"
            + (f"; the other qualifying candidates: {', '.join(also)}" if also
               else "; no other candidate qualifies")
            + (f". Losing to the baseline DIN somewhere: {'; '.join(losing)}." if losing else "."))


# --- the document -----------------------------------------------------------------------------
def pct(value):
    return f"{100 * value:.0f}%"


MEMBERS = []  # the ensemble's blocks, for describe()


def describe(label):
    if label == ENSEMBLE:
        return "rank average of " + " + ".join(MEMBERS)
    block, feature_set = BLOCKS[label]
    return f"`{block}`, {FEATURE_SETS[feature_set]}"


def world_section(world, summary, table):
    lines = [f"### World `{world}`", "",
             f"{summary.get('world_description', '').capitalize()}. " + "; ".join(
                 f"{name}: valid {summary[key]['valid']:.4f}, test {summary[key]['test']:.4f}"
                 for name, key in (("best achievable AUC", "best_auc"),
                                   ("history oracle", "history_oracle_auc"),
                                   ("history-blind oracle", "history_blind_oracle_auc"))
                 if key in summary) + ".", "",
             "| rank | candidate | what | seeds | valid AUC | test AUC | spread | gap closed "
             "(test) | loses to baseline DIN |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['rank']} | {r['block']} | {describe(r['block'])} | {r['seeds']} | "
                     f"{r['valid_mean']:.4f} | {r['test_mean']:.4f} | {r['test_spread']:.4f} | "
                     f"{pct(r['gap_closed_test'])} | {'yes' if r['loses'] else '-'} |")
    return lines


def summary_section(summary, worlds):
    lines = ["| candidate | what | worlds run | mean rank | mean gap closed (test) | "
             "loses to the baseline DIN in |", "|---|---|---|---|---|---|"]
    for e in summary:
        lines.append(f"| {e['block']} | {describe(e['block'])} | {len(e['worlds'])} of "
                     f"{len(worlds)} | {e['mean_rank']:.1f} | {pct(e['mean_gap'])} | "
                     f"{', '.join(e['lost']) or '-'} |")
    return lines


def setup_section(args, summaries, spaces, commands, runs, notes):
    """spaces: {label: the tuner_space its configs were written with}."""
    ended = [r["ended"] for world_rows in runs.values() for rs in world_rows.values()
             for r in rs]
    first = next(iter(summaries.values()))
    space = spaces[BASELINE]
    lines = [
        "## Setup", "",
        f"- Data: `--scale {args.scale}`, data seed {args.data_seed}, one folder per world "
        f"({', '.join(summaries)}): {first['n_items']:,} items, {first['n_train']:,} train / "
        f"{first['n_valid']:,} valid / {first['n_test']:,} test rows; users per world: "
        + ", ".join(f"{w} {s['n_users']:,}" for w, s in summaries.items()) + ".",
        f"- Training: seeds {', '.join(map(str, space['seed']))} per block; at most "
        f"{space['epochs']} epoch(s); evaluated every `eval_steps` steps ("
        + ", ".join(f"{label} {s['eval_steps']}" for label, s in spaces.items())
        + f"), early stopping after {space['early_stop_patience']} evaluations without gain"
        + (f"; at most {space['max_steps']} steps (`max_steps`)" if space.get("max_steps")
           else "")
        + "; `deterministic: True`, one thread per run. "
        f"How the runs ended: {summarise_endings(ended)}.",
        "- Shortened for the CPU: generated data at this scale instead of the real 3.6M train "
        "rows; the CPU-sized blocks (`*_cpu`) at their shipped values, no grid over learning "
        "rate or regularisation; an epoch cap; "
        f"{len(space['seed'])} training seed(s), so a spread is the difference of few runs.",
        "- Measured: validation AUC from each run's result line; test AUC of its zip (as "
        "prediction.py writes it) against the generator's ground truth; gap closed = (candidate "
        "- baseline DIN) / (best achievable - baseline DIN) on the test means; rank by mean test "
        "AUC within the world. The ensemble is the rank average (prediction.py `--average rank`) "
        "of the best block of each model family (model class), best by validation AUC averaged "
        "over seeds and worlds, one ensemble per training seed, its validation AUC by the "
        "same rule on the members' validation scores: "
        + (" + ".join(MEMBERS) or "none (fewer than two families ran)") + ".",
        "", "Commands (from the repository root; `WORK` is the suite's `--work`):", "", "```bash",
        *commands, "```"]
    if notes:
        lines += ["", "Left out:", ""] + [f"- {note}" for note in notes]
    return lines


def summarise_endings(ended):
    counts = {kind: ended.count(kind) for kind in sorted(set(ended))}
    return ", ".join(f"{count} by {kind}" for kind, count in counts.items()) or "no runs"


def runs_section(runs):
    lines = ["Every run (world, candidate, expid: seed, valid AUC, test AUC, how it ended):", "",
             "```"]
    for world, world_rows in runs.items():
        for label, rows in world_rows.items():
            for r in sorted(rows, key=lambda r: r["seed"]):
                lines.append(f"{world} {label} {r['expid']}: seed {r['seed']}, valid "
                             f"{r['valid_auc']:.4f}, test {r['test_auc']:.4f}, {r['ended']}")
    return lines + ["```"]


def document(args, summaries, tables, summary, choice, spaces, commands, runs, notes):
    worlds = list(tables)
    lines = [
        "# Task 2: every model in every world (CPU, generated data)", "",
        "Generated by `bench/task2_suite.py` (do not edit by hand: a rerun rewrites it). Every "
        "model block of the suite trained on the data of each click law of the generator "
        "(`src/data/worlds.py`), a model chosen in one world checked in the others. The "
        "earlier comparison on the cosine law alone is the "
        f"[appendix](#{anchor(APPENDIX_HEADING)}) (also "
        "[task2_single_world.md](task2_single_world.md)).", ""]
    lines += setup_section(args, summaries, spaces, commands, runs, notes)
    lines += ["", "## Per world", ""]
    for world, table in tables.items():
        lines += world_section(world, summaries[world], table) + [""]
    lines += ["## Summary over the worlds", ""] + summary_section(summary, worlds)
    lines += ["", "## The recommendation", "", f"Rule: {RULE}", "",
              explain(choice, summary, worlds), "", "## Runs", ""] + runs_section(runs)
    lines += ["", f"## {APPENDIX_HEADING}", "",
              "Kept verbatim in [task2_single_world.md](task2_single_world.md), copied here.", ""]
    return "\n".join(lines) + "\n" + APPENDIX.read_text()


def anchor(heading):
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def command_lines(args, worlds, labels, uses_sid):
    """The commands that made the doc: the suite's own, then what it runs per world."""
    suite = "python bench/task2_suite.py " + shlex.join(args.argv)
    lines = [suite] if not args.table_only else []
    saved = args.work / "suite_command.txt"
    if args.table_only and saved.is_file():
        lines.append(saved.read_text().strip())
    if args.table_only:
        lines.append(suite)
    lines += ["# what it runs, per world W and block LABEL:",
              f"python -m src.datagen --scale {args.scale} --world W --seed {args.data_seed} "
              f"--out WORK/data/W --quiet"]
    if uses_sid:
        lines.append("python -m src.item_embedding semantic-ids --item-file WORK/data/W/"
                     "item_emb.parquet --column item_emb_d128_v1 --levels "
                     f"{SID_LEVELS} --codes {SID_CODES} --out WORK/data/W/item_sid.parquet")
    lines.append("(cd WORK && python REPO/run_param_tuner.py --config "
                 f"WORK/configs/W/W__LABEL.yaml --gpu {' '.join(['-1'] * args.slots)})")
    return lines


# --- the whole suite --------------------------------------------------------------------------
def parse_args(argv=None):
    from src.data.worlds import WORLDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path,
                        help="folder for data, configs, checkpoints, result lines, scores, log")
    parser.add_argument("--scale", default="small", choices=("tiny", "small", "medium", "full"))
    parser.add_argument("--data-seed", type=int, default=0, help="the generator's seed")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--blocks", nargs="+", default=list(BLOCKS), choices=list(BLOCKS),
                        help=f"labels of the suite's table (the baseline {BASELINE} is always in)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="training seeds")
    parser.add_argument("--epochs", type=int, default=10, help="epoch cap of every run")
    parser.add_argument("--eval-steps", type=int, default=None,
                        help="steps between evaluations (default: half an epoch per block)")
    parser.add_argument("--patience", type=int, default=2,
                        help="evaluations without gain before early stopping")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap on training steps per run (smoke runs)")
    parser.add_argument("--slots", type=int, default=2, help="runs at a time (CPU slots)")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "task2_results.md")
    parser.add_argument("--table-only", action="store_true",
                        help="no data, no training: score what is there and write the doc")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.work, args.doc = args.work.resolve(), args.doc.resolve()
    if BASELINE not in args.blocks:
        args.blocks.insert(0, BASELINE)  # every gap is measured from it
    return args


def train_world(world, labels, args, log, eta, blocks):
    """Data, configs and tuner runs of one world; (generator summary or None, failures)."""
    data_dir = args.work / "data" / world
    summary = read_summary(data_dir) if args.table_only else ensure_data(world, args, data_dir,
                                                                            log)
    if summary is None:
        log.say(f"FAILED: {world}: no data ({'not generated' if args.table_only else 'see log'})")
        return None, [f"{world}: data"]
    failures = []
    for label in labels if not args.table_only else ():
        block, feature_set = BLOCKS[label]
        if feature_set == "task2_sid" and not ensure_sids(data_dir, log):
            log.say(f"FAILED: {world}/{label}: semantic ids not written (see log)")
            failures.append(f"{world}/{label}")
            eta.ended(0, False)
            continue
        path = config_path(args.work, world, label)
        steps = eval_steps_of(args, blocks[block]["batch_size"], summary["n_train"])
        config = tuner_config(world, label, data_dir, args, steps)
        write_if_changed(path, f"# {world}/{label}: written by bench/task2_suite.py\n"
                         + yaml.safe_dump(config, default_flow_style=None, sort_keys=False))
        start = time.monotonic()
        status, ended, last = run_tuner(path, args.slots, args.work, log, f"{world}/{label}")
        seconds = time.monotonic() - start
        if status == 130:
            raise KeyboardInterrupt
        eta.ended(seconds, trained=ended > 0)
        if status != 0:
            failures.append(f"{world}/{label}")
            log.say(f"FAILED: {world}/{label}: the tuner exited {status}: {last[:300]} "
                    f"(all of it in {args.work}/suite.log)")
        log.say(f"{world}/{label}: done in {seconds:.0f} s; {eta}")
    return summary, failures


def written_spaces(work, worlds, labels):
    """{label: tuner_space of its first written config}: the caps the runs were made with
    (also under --table-only, whatever its arguments)."""
    spaces = {}
    for label in labels:
        for world in worlds:
            path = config_path(work, world, label)
            if path.is_file():
                spaces[label] = yaml.safe_load(path.read_text())["tuner_space"]
                break
    return spaces


def main(argv=None):
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    os.chdir(args.work)  # result lines and ./checkpoints/ of every tuner config live here
    log = Log(args.work / "suite.log")
    log.say(f"suite: {shlex.join(args.argv)}")
    if not args.table_only:
        (args.work / "suite_command.txt").write_text(
            "python bench/task2_suite.py " + shlex.join(args.argv) + "\n")
    blocks = model_blocks()
    skipped = unavailable(args.blocks, blocks, known_models(),
                          feature_set_problems({BLOCKS[label][1] for label in args.blocks}))
    for label, why in skipped.items():
        log.say(f"skipped: {label}: {why}")
    labels = [label for label in args.blocks if label not in skipped]
    if BASELINE not in labels:
        raise UserError(f"the baseline {BASELINE} cannot run: {skipped[BASELINE]}")
    eta = Eta(len(args.worlds) * len(labels))
    summaries, failures, runs, scores = {}, [], {}, {}
    for world in args.worlds:
        summary, failed = train_world(world, labels, args, log, eta, blocks)
        failures += failed
        if summary is not None:
            summaries[world] = summary
    log.say("scoring (cached scores are reused)")
    for world, summary in summaries.items():
        truth = args.work / "data" / world / "ground_truth" / "test_truth.parquet"
        runs[world], scores[world] = world_runs(world, labels, args.work, truth, log)
    families = {label: blocks[BLOCKS[label][0]]["model"] for label in labels}
    MEMBERS[:] = ensemble_members({w: r for w, r in runs.items()}, families)
    tables, notes = {}, [f"{label}: {why}" for label, why in skipped.items()]
    notes += [f"{failed}: failed (its log in WORK/suite.log)" for failed in failures]
    for world, summary in summaries.items():
        if BASELINE not in runs[world]:
            notes.append(f"world {world}: no baseline DIN runs, so no table")
            continue
        truth = args.work / "data" / world / "ground_truth" / "test_truth.parquet"
        rows = dict(runs[world])
        ensemble = ensemble_rows(world, MEMBERS, scores[world], truth, args.work)
        if ensemble:
            rows[ENSEMBLE] = ensemble
        tables[world] = world_table(world, rows, summary["best_auc"])
    if not tables:
        log.say("no world has results yet: no doc written")
        return 1
    summary = summarise_worlds(tables)
    choice = recommend(summary, list(tables))
    uses_sid = any(BLOCKS[label][1] == "task2_sid" for label in labels)
    spaces = written_spaces(args.work, list(tables), [e["block"] for e in summary
                                                      if e["block"] != ENSEMBLE])
    text = document(args, {w: summaries[w] for w in tables}, tables, summary, choice, spaces,
                    command_lines(args, list(tables), labels, uses_sid), runs, notes)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(text)
    log.say("summary over the worlds (mean rank, mean gap closed, loses in):")
    for e in summary:
        log.say(f"  {e['block']}: {e['mean_rank']:.1f}, {pct(e['mean_gap'])}, "
                f"{', '.join(e['lost']) or '-'}")
    log.say(f"rule: {RULE}")
    log.say(explain(choice, summary, list(tables)).replace("**", ""))
    log.say(f"doc: {args.doc}")
    if failures:
        log.say(f"{len(failures)} failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # main returns 1 when a run failed
