"""The tuner's summary: `<tuner>_summary.csv` (every run of the last tuner call, best first, with
the values the grid varies, in full) and the table on the console, which is for reading at
100 columns, so long key names are abbreviated, the prefix all expids share is printed once
above the table, and long values are cut, each with a legend line saying what was shortened.
"""
from __future__ import annotations

import csv
import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..runs.results import results_path

WIDTH = 100
MAX_VALUE_WIDTH = 14
# Short names of the keys grids vary most; others lose their vowels past the first letter.
ABBREVIATIONS = {
    "learning_rate": "lr", "embedding_dim": "emb_dim", "embedding_regularizer": "emb_reg",
    "net_regularizer": "net_reg", "net_dropout": "dropout", "batch_size": "batch",
    "dnn_hidden_units": "dnn_units", "attention_hidden_units": "att_units",
    "early_stop_patience": "patience", "attention_dropout": "att_drop",
}
MAX_KEY_WIDTH = 10


def value_text(value: Any) -> str:
    """A grid value as text: lists and mappings as compact JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def short_key(key: str) -> str:
    if key in ABBREVIATIONS:
        return ABBREVIATIONS[key]
    if len(key) <= MAX_KEY_WIDTH:
        return key
    words = [w[0] + re.sub(r"[aeiou]", "", w[1:]) for w in key.split("_") if w]
    return "_".join(words)[:MAX_KEY_WIDTH]


def _cut(text, width):
    return text if len(text) <= width else text[:width - 1] + "…"


def _cut_middle(expid, width):
    """Keep the start (the model) and the last 12 characters (grid number and hash, which
    tell the runs apart)."""
    if len(expid) <= width:
        return expid
    head = width - 13
    return expid[:head] + "…" + expid[-12:]


def _common_prefix(expids):
    """The prefix all expids share, cut back to an underscore (at least two expids)."""
    if len(expids) < 2:
        return ""
    first, last = min(expids), max(expids)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:first.rfind("_", 0, n) + 1] if "_" in first[:n] else ""


def _fit(widths, header_widths, expid_width, status_width, metrics_width):
    """Narrow the value columns (widest first, not below their header or 6), then the status
    column (not below 11: `done before`), then the expid column (not below 20), until a row
    fits WIDTH."""
    widths = list(widths)

    def used():
        return expid_width + 1 + sum(w + 1 for w in widths) + status_width + 1 + metrics_width

    while used() > WIDTH:
        floors = [max(h, 6) for h in header_widths]
        room = [i for i, w in enumerate(widths) if w > floors[i]]
        if room:
            widest = max(room, key=lambda i: widths[i])
            widths[widest] -= 1
        elif status_width > 11:
            status_width -= 1
        elif expid_width > 20:
            expid_width -= 1
        else:
            break
    return widths, status_width, expid_width


def format_table(rows: list[dict], keys: list[str] = ()) -> str:
    """rows of tuner.summary_rows (each with "values": {key: value} of the varied keys)."""
    keys = list(keys)
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
    expids = [r["expid"] for r in rows]
    prefix = _common_prefix(expids)
    shown = [e[len(prefix):] if prefix else e for e in expids]
    headers = [short_key(k) for k in keys]
    values = [[value_text(r.get("values", {}).get(k)) for k in keys] for r in rows]
    widths = [min(MAX_VALUE_WIDTH, max([len(h)] + [len(v[i]) for v in values]))
              for i, h in enumerate(headers)]
    expid_width = max([len("expid")] + [len(e) for e in shown])
    status_width = max([len("status")] + [len(r["status"]) for r in rows])
    metrics = f"{'AUC':>7} {'logloss':>7} {'seconds':>7}"
    widths, status_width, expid_width = _fit(widths, [len(h) for h in headers], expid_width,
                                             status_width, len(metrics))
    cols = "".join(f"{h:>{w}} " for h, w in zip(headers, widths))
    lines = [f"{'expid':<{expid_width}} {cols}{'status':<{status_width}} {metrics}"]
    for row, expid, texts in zip(rows, shown, values):
        cells = "".join(f"{_cut(t, w):>{w}} " for t, w in zip(texts, widths))
        status = _cut(row["status"], status_width)
        lines.append(f"{_cut_middle(expid, expid_width):<{expid_width}} {cells}"
                     f"{status:<{status_width}} {fmt(row['AUC'], '7.4f'):>7} "
                     f"{fmt(row['logloss'], '7.4f'):>7} {fmt(row['seconds'], '7.0f'):>7}")
    legend = [f"{h}={k}" for h, k in zip(headers, keys) if h != k]
    cut = any(len(e) > expid_width for e in shown)
    notes = ([f"expid = {prefix}<shown>"] if prefix else []) + (
        ["expids cut in the middle (…): the csv has them whole"] if cut else []) + (
        [f"columns: {', '.join(legend)}"] if legend else [])
    if notes:
        lines.insert(0, textwrap.fill("; ".join(notes), WIDTH))
    return "\n".join(lines)


# --- the csv -----------------------------------------------------------------------------------
SUMMARY_FIELDS = ["expid", "status", "AUC", "logloss", "seconds"]
NOT_STARTED = "not started"  # the status of a run the queue never reached


def summary_path(config_dir: Path | str) -> Path:
    return Path(results_path(config_dir).stem + "_summary.csv")


def read_summary(config_dir: Path | str) -> dict[str, dict[str, str]]:
    """{expid: row} of the summary the last tuner run wrote ({} if none)."""
    path = summary_path(config_dir)
    if not path.exists():
        return {}
    with open(path, newline="", errors="replace") as f:
        return {row["expid"]: row for row in csv.DictReader(f) if row.get("expid")}


def summary_rows(expids: Iterable[str], records: Mapping[str, dict[str, Any]],
                 values: Mapping[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per expid: status, validation AUC and logloss (of the line this run wrote, or
    the latest line for `done before`; none for a failed run), time, and under "values" the
    run's {key: value} of values (the keys the grid varies); best AUC first."""
    rows = []
    for expid in expids:
        record = records.get(expid, {"status": NOT_STARTED, "seconds": None, "val": {}})
        val = record.get("val") or {}
        rows.append({"expid": expid, "status": record["status"], "AUC": val.get("AUC"),
                     "logloss": val.get("logloss"), "seconds": record["seconds"],
                     "values": (values or {}).get(expid, {})})
    rows.sort(key=lambda r: (r["AUC"] is None, -(r["AUC"] or 0.0)))
    return rows


def _value_column(key):
    """The csv column of a varied key (renamed only if it would clash with a summary field)."""
    return f"param_{key}" if key in SUMMARY_FIELDS else key


def write_summary(config_dir: Path | str, expids: Iterable[str],
                  records: Mapping[str, dict[str, Any]],
                  values: Mapping[str, dict[str, Any]] | None = None,
                  keys: Iterable[str] = ()) -> tuple[list[dict[str, Any]], Path]:
    """Write the summary csv: expid, one column per varied key (keys; values: {expid: {key:
    value}}), then status, AUC, logloss, seconds. Returns (rows, path)."""
    rows = summary_rows(expids, records, values)
    path = summary_path(config_dir)
    fields = SUMMARY_FIELDS[:1] + [_value_column(k) for k in keys] + SUMMARY_FIELDS[1:]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            line = {k: ("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v))
                    for k, v in row.items() if k != "values"}
            line.update({_value_column(k): value_text(row["values"].get(k)) for k in keys})
            writer.writerow(line)
    return rows, path
