"""What the report shows, gathered from the files a tuner grid leaves: no plotting here.

For a grid folder config/X (written by the tuner) and the current folder:
- the experiments and their params: config/X/model_config.yaml (src.params.load_params);
- each run's evaluation history: <model_root>/<dataset_id>/<expid>.history.csv;
- each run's result line: X.csv (latest line per expid, src.runs.results);
- each run's status: running (a live process holds its lock), else the tuner's last summary
  X_summary.csv, else what its files say (a result line, a training state left by a killed
  run, a history without a result);
- the config differences of each run from the base block of the tuner config X.yaml beside
  the folder (Base + base_expid of its base_config, and its dataset block).
"""
from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError
from ..history import read_history
from ..params import RunPaths, config_expids, load_params, require_config_dir, with_option_defaults
from ..runs.lock import holder
from ..runs.results import read_results, results_path
from ..tuning.grid import (EXPID_TAIL, config_dir_of, dataset_block, load_tuner_config,
                           model_block)
from ..tuning.summary import read_summary, summary_path

logger = logging.getLogger(__name__)

# set per run by load_params or the tuner, never a setting that differs by choice
NOT_SETTINGS = ("model_id", "gpu", "dataset_id")
FINISHED = ("ok", "done before")


@dataclass
class Run:
    expid: str
    label: str                       # short name in legends: #NNN of the expid
    params: dict
    status: str
    history: list                    # rows of src.history.read_history
    auc: float = None                # validation AUC of the result line (finished runs)
    logloss: float = None
    seconds: float = None
    differences: dict = field(default_factory=dict)  # key -> value where it differs from base

    @property
    def finished(self) -> bool:
        return self.auc is not None and self.status in FINISHED

    @property
    def best_so_far(self) -> float | None:
        """The best validation AUC of its history (None without one)."""
        aucs = [r["val_AUC"] for r in self.history if r["val_AUC"] is not None]
        return max(aucs) if aucs else None

    @property
    def shown_auc(self) -> float | None:
        """What the knob panels plot: the result's AUC, else the best of the history."""
        return self.auc if self.auc is not None else self.best_so_far


@dataclass
class GridReport:
    name: str
    config_dir: Path
    runs: list
    tuned_keys: list                 # keys whose values differ between the grid's runs
    common: dict                     # differences from the base shared by every run
    base_name: str                   # what the differences are taken against
    results_file: Path
    summary_file: Path

    @property
    def best(self) -> Run | None:
        finished = [r for r in self.runs if r.finished]
        return max(finished, key=lambda r: r.auc) if finished else None


def resolve_config_dir(config: Path | str) -> tuple[Path, Path | None]:
    """(grid folder, tuner yaml or None) of --config, given as the folder or as its yaml."""
    path = Path(config)
    if path.suffix == ".yaml" and not path.is_dir():
        folder = config_dir_of(path)
        if not (folder / "model_config.yaml").is_file():
            raise ConfigError(f"--config {config}: its grid folder {folder} does not exist yet. "
                              f"Fix: run python run_param_tuner.py --config {config} first")
        return folder, path if path.is_file() else None
    if not path.exists():
        raise ConfigError(f"--config {config}: no such folder. Fix: give the grid folder the "
                          f"tuner wrote (config/X) or its tuner config (config/X.yaml)")
    require_config_dir(path)
    tuner_yaml = path.with_name(path.name + ".yaml")
    return path, tuner_yaml if tuner_yaml.is_file() else None


def _same(a, b):
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True,
                                                                     default=str)


def base_blocks(tuner_yaml: Path | None) -> dict[str, dict[str, Any]]:
    """{base_expid: its merged params (Base + block + dataset block + option defaults)} from
    the tuner config, or {} when it cannot be read (moved, or its base_config is relative to
    another folder): the report then shows differences between the runs only."""
    if tuner_yaml is None:
        return {}
    try:
        config = load_tuner_config(tuner_yaml)
        bases = config["base_expid"] if isinstance(config["base_expid"], list) \
            else [config["base_expid"]]
        dataset = dataset_block(config, config.get("dataset_id"), tuner_yaml)
        return {b: with_option_defaults({**model_block(config, b, tuner_yaml), **dataset})
                for b in bases}
    except (ConfigError, KeyError) as err:
        logger.warning("Differences from the base block left out: %s", err)
        return {}


def _base_of(expid, bases):
    if len(bases) == 1:
        return next(iter(bases.values()))
    for name, params in bases.items():  # a grid of several blocks keeps their names
        if expid.startswith(name + "_"):
            return params
    return None


def differences(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(params.items())
            if k not in NOT_SETTINGS and not _same(v, base.get(k, "<missing>"))}


def tuned_keys(all_params: Sequence[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every experiment, in config order."""
    if len(all_params) < 2:
        return []
    keys = []
    for key in dict.fromkeys(k for p in all_params for k in p):
        if key in NOT_SETTINGS:
            continue
        values = [p.get(key, "<missing>") for p in all_params]
        if any(not _same(v, values[0]) for v in values[1:]):
            keys.append(key)
    return keys


def _number(text):
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def short_label(expid: str, index: int) -> str:
    match = EXPID_TAIL.search(expid)
    return f"#{match.group(1)}" if match else f"#{index + 1:03d}"


def run_status(paths: RunPaths, summary_row: dict[str, str] | None,
               result_line: dict[str, Any] | None, history: list[dict[str, Any]]) -> str:
    """running, else the summary's status, else what the run's files say."""
    if holder(paths.lock):
        return "running"
    if summary_row is not None:
        return summary_row["status"]
    if result_line is not None:
        return "ok"
    if paths.state.exists():
        return "interrupted"
    return "no result" if history else "not run"


def collect_grid(config: Path | str) -> GridReport:
    """The GridReport of --config (folder or yaml), read from the current folder."""
    config_dir, tuner_yaml = resolve_config_dir(config)
    expids = config_expids(config_dir)
    if not expids:
        raise UserError(f"--config {config}: {config_dir}/model_config.yaml lists no experiment. "
                        f"Fix: run the tuner on its tuner config")
    all_params = [load_params(config_dir, e) for e in expids]
    bases = base_blocks(tuner_yaml)
    results = {}
    for line in read_results(results_path(config_dir)):
        results[line["exp_id"]] = line  # the latest line of each expid wins
    summary = read_summary(config_dir)
    runs = []
    for index, (expid, params) in enumerate(zip(expids, all_params)):
        paths = RunPaths(params)
        history = read_history(paths.history)
        line, row = results.get(expid), summary.get(expid)
        status = run_status(paths, row, line, history)
        if row is not None:  # the summary's numbers belong to its status
            auc, logloss, seconds = (_number(row.get(k)) for k in ("AUC", "logloss", "seconds"))
        else:
            val = line["val"] if line else {}
            auc, logloss, seconds = val.get("AUC"), val.get("logloss"), None
        if status == "running":
            auc = logloss = None
        if seconds is None and history:
            seconds = history[-1]["elapsed_s"]
        base = _base_of(expid, bases)
        runs.append(Run(expid, short_label(expid, index), params, status, history, auc, logloss,
                        seconds, differences(params, base) if base is not None else {}))
    keys = tuned_keys(all_params)
    common = {}
    if runs and bases:
        first = runs[0].differences
        common = {k: v for k, v in first.items()
                  if k not in keys and all(_same(r.differences.get(k), v) for r in runs)}
    base_name = (", ".join(bases) + (f" of {tuner_yaml}" if tuner_yaml else "")) if bases \
        else "(tuner config not found: differences between the runs only)"
    if not bases:
        for run in runs:
            run.differences = {k: run.params.get(k) for k in keys}
    report = GridReport(config_dir.name, config_dir, runs, keys, common, base_name,
                        results_path(config_dir), summary_path(config_dir))
    if not any(r.history or r.auc is not None or r.status != "not run" for r in runs):
        raise UserError(f"nothing to report for {config_dir}: none of its {len(runs)} "
                        f"experiment(s) has a result line in {report.results_file}, a summary "
                        f"row in {report.summary_file} or a history file "
                        f"({RunPaths(all_params[0]).folder}/<expid>.history.csv). Fix: run the "
                        f"tuner first (python run_param_tuner.py --config {config_dir}.yaml), "
                        f"and run the report from the folder it ran in")
    return report


def read_item_embedding(path: Path | str) -> list[dict[str, Any]]:
    """Rows of an item-embedding results table (src.item_embedding evaluate), best first."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--item-embedding {path}: no such file. Fix: give the "
                        f"item_embedding_results.csv that python -m src.item_embedding evaluate "
                        f"wrote (runs/item_embedding/ by default)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"method", "recall@10", "recall@50"}
    if not rows or not needed <= set(rows[0]):
        raise UserError(f"--item-embedding {path}: not a results table of src.item_embedding "
                        f"evaluate (needs columns {', '.join(sorted(needed))} and one row per "
                        f"file). Fix: give its item_embedding_results.csv")
    numeric = ("recall@10", "recall@50", "din_auc", "din_std", "din_seeds")
    return [{**r, **{k: _number(r.get(k)) for k in numeric}} for r in rows]
