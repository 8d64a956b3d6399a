"""Compare item_info files: the next-item proxy for each, then (unless proxy_only) the fixed
task-1 DIN trained through our tuner on each, in one table, best first.

The tuner runs in the current folder, as run_param_tuner.py does: result lines go to
`<stem>_tuner_config.csv` there, checkpoints to ./checkpoints/<dataset_id>/, so
`python prediction.py --config <work_dir>/<stem>_tuner_config --expid best --task 1`
from the same folder submits the best run.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..atomic import atomic_write
from ..errors import ConfigError, DataError, UserError
from ..runs.results import read_results, results_path
from ..tuning.tuner import GridFailed, tune
from . import inputs, protocol
from .holdout import HOLDOUT_FRACTION, HOLDOUT_SALT
from .output import read_embedding, read_metadata
from .proxy import MAX_QUERIES, proxy_metrics

logger = logging.getLogger(__name__)

RESULTS_NAME = "item_embedding_results"


def _check_files(files):
    stems = {}
    for path in files:
        path = Path(path)
        key = protocol.dataset_id_for(path)
        if key in stems:
            raise ConfigError(f"{path} and {stems[key]} map to the same dataset_id {key}; "
                              f"rename one of them (the dataset id comes from the file stem)")
        stems[key] = path


def method_label(meta: dict[str, Any]) -> str:
    """The build method, with "+titles" when titles were a third modality."""
    label = meta.get("method", "-")
    return label + "+titles" if "titles" in meta.get("modalities", ()) else label


def proxy_rows(files: Iterable[Path | str], data_dir: Path | str, query: str = "mean",
               device: str = "cpu", max_queries: int | None = MAX_QUERIES) -> list[dict[str, Any]]:
    """One row per file: method (from the file's metadata) and recall@10/@50."""
    n_items = inputs.num_items(data_dir)
    histories = inputs.load_histories(data_dir, n_items)
    rows = []
    for path in files:
        started = time.time()
        emb = read_embedding(path)
        if emb.shape[0] != n_items + 1:
            raise DataError(path, f"has {emb.shape[0]} rows, the data's item_info has "
                            f"{n_items + 1}", fix="build the file from the same --data-dir")
        meta = read_metadata(path)
        holdout = meta.get("holdout")
        if holdout and holdout != {"fraction": HOLDOUT_FRACTION, "salt": HOLDOUT_SALT}:
            logger.warning("%s was built with held-out users %s, not the ones measured now: "
                           "its proxy may include its own training pairs", path, holdout)
        metrics = proxy_metrics(emb, histories, mode=query, device=device,
                                max_queries=max_queries)
        logger.info("proxy %s: %s (%.1f s)", path, metrics, time.time() - started)
        rows.append({"file": str(path), "method": method_label(meta),
                     "build_seed": meta.get("seed", ""), **metrics})
    return rows


def _retire_stale_results(config_dir, fingerprint_file, current):
    """If this config's results were made from other bytes or data, move them aside and
    tell the tuner to rerun everything."""
    previous = fingerprint_file.read_text().strip() if fingerprint_file.is_file() else None
    results = results_path(config_dir)
    if previous == current or not results.is_file():
        return False
    stale = results.with_name(f"{results.stem}.stale-{previous or 'unknown'}.csv")
    os.replace(results, stale)
    logger.warning("%s was rebuilt or its data changed since %s was written; old results "
                   "moved to %s and the grid reruns", config_dir, results, stale)
    return True


def din_results(config_dir: Path | str) -> dict[str, tuple[dict[str, Any], float | None]]:
    """{expid: (params, val AUC or None)} for every expid of the grid the tuner expanded into
    config_dir (its model_config.yaml), latest result line each."""
    with open(Path(config_dir) / "model_config.yaml") as f:
        params = yaml.safe_load(f)
    latest = {r["exp_id"]: r["val"].get("AUC") for r in read_results(results_path(config_dir))}
    return {e: (p, latest.get(e)) for e, p in params.items()}


def summarise_din(results: dict[str, tuple[dict[str, Any], float | None]]) -> dict[str, Any]:
    """Best validation AUC over the knob grid for each training seed, then mean and
    sample std over seeds (the run-to-run noise)."""
    best = {}
    for expid, (params, auc) in results.items():
        if auc is None:
            continue
        seed = params.get("seed")
        if seed not in best or auc > best[seed][0]:
            knobs = {k: params[k] for k in protocol.TASK1_KNOBS if k in params}
            best[seed] = (auc, knobs)
    if not best:
        return {"din_auc": None, "din_std": None, "din_seeds": 0, "din_per_seed": "",
                "best_knobs": ""}
    aucs = [best[s][0] for s in sorted(best)]
    top_seed = max(best, key=lambda s: best[s][0])
    return {
        "din_auc": float(np.mean(aucs)),
        "din_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else None,
        "din_seeds": len(aucs),
        "din_per_seed": " ".join(f"{s}:{best[s][0]:.4f}" for s in sorted(best)),
        "best_knobs": " ".join(f"{k}={v}" for k, v in best[top_seed][1].items()),
    }


def run_din(files: Iterable[Path | str], data_dir: Path | str, work_dir: Path | str,
            gpus: Sequence[int] = (-1,), force: bool = False, train_rows: int | None = None,
            **proto: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Write each file's tuner config into work_dir, tune it; {file: DIN summary}."""
    work_dir = Path(work_dir)
    train_data = (protocol.train_subset(data_dir, train_rows, work_dir)
                  if train_rows else None)
    out, failures = {}, []
    for path in files:
        config = protocol.tuner_config(path, data_dir, train_data=train_data, **proto)
        yaml_path = work_dir / f"{Path(path).stem}_tuner_config.yaml"
        config_dir = yaml_path.with_suffix("")
        current = protocol.dataset_fingerprint(config, path)
        fingerprint_file = work_dir / f"{yaml_path.stem}.fingerprint"
        rerun = _retire_stale_results(config_dir, fingerprint_file, current)
        protocol.write_tuner_config(
            config, yaml_path, header=f"# Task-1 protocol for {Path(path).resolve()}, written "
                                      f"by python -m src.item_embedding evaluate.\n")
        fingerprint_file.write_text(current + "\n")
        logger.info("DIN protocol for %s: %s", path, yaml_path)
        try:
            tune(yaml_path, gpus, force=force or rerun)
        except GridFailed as err:
            failures.append(f"{path}: {err}")
        out[str(path)] = {**summarise_din(din_results(config_dir)),
                          "tuner_config": str(yaml_path)}
    return out, failures


def _fmt(value, spec=".4f"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


COLUMNS = [("file", "file"), ("method", "method"), ("build_seed", "build seed"),
           ("recall@10", "recall@10"), ("recall@50", "recall@50"), ("queries", "queries"),
           ("din_auc", "DIN val AUC"), ("din_std", "std over seeds"), ("din_seeds", "seeds"),
           ("din_per_seed", "AUC per seed"), ("best_knobs", "best knobs")]


def sort_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: by DIN AUC when there is one, else by recall@50."""
    def key(row):
        auc = row.get("din_auc")
        return (auc is None, -(auc or 0.0), -row.get("recall@50", 0.0))
    return sorted(rows, key=key)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    cols = [(k, h) for k, h in COLUMNS if any(k in r for r in rows)]
    cells = [[h for _, h in cols]] + [[_fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    cols = [(k, h) for k, h in COLUMNS if any(k in r for r in rows)]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_tables(rows: Sequence[dict[str, Any]], work_dir: Path | str,
                 protocol_line: str) -> tuple[Path, Path]:
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cols = [k for k, _ in COLUMNS if any(k in r for r in rows)]
    csv_path, md_path = work_dir / f"{RESULTS_NAME}.csv", work_dir / f"{RESULTS_NAME}.md"
    with atomic_write(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in cols} for r in rows)
    with atomic_write(md_path) as tmp:
        tmp.write_text(f"{protocol_line}\n\n{markdown_table(rows)}\n")
    return csv_path, md_path


def evaluate(files: Sequence[Path | str], data_dir: Path | str, work_dir: Path | str,
             proxy_only: bool = False, query: str = "mean", device: str = "cpu",
             max_queries: int | None = MAX_QUERIES, gpus: Sequence[int] = (-1,),
             force: bool = False, train_rows: int | None = None,
             **proto: Any) -> tuple[list[dict[str, Any]], Path, Path]:
    """Proxy (and DIN) table for files; writes CSV and markdown to work_dir; returns
    (rows best first, csv path, markdown path)."""
    if not files:
        raise UserError("evaluate: give at least one item_info file")
    _check_files(files)
    rows = proxy_rows(files, data_dir, query, device, max_queries)
    line = (f"proxy: next-item recall over all items, query={query}, last transition of "
            f"{rows[0]['queries']} held-out users ({HOLDOUT_FRACTION:.0%} of users held out)")
    failures = []
    if not proxy_only:
        din, failures = run_din(files, data_dir, work_dir, gpus=gpus, force=force,
                                train_rows=train_rows, **proto)
        for row in rows:
            row.update(din[row["file"]])
        line += (f"; DIN: model={proto.get('model', 'baseline')}, epochs="
                 f"{proto.get('epochs') or 'baseline (100)'}, train_rows={train_rows or 'all'}, "
                 f"grid={proto.get('grid') or protocol.DEFAULT_GRID}, "
                 f"seeds={proto.get('seeds') or 'baseline default'}")
    rows = sort_rows(rows)
    csv_path, md_path = write_tables(rows, work_dir, line)
    print(line)
    print(format_table(rows))
    print(f"table: {csv_path}, {md_path}")
    if failures:
        raise GridFailed("some DIN runs failed:\n" + "\n".join(failures))
    return rows, csv_path, md_path
