"""The report's index.html: plain HTML with inline CSS and relative image paths, so the folder
opens from the file system in any browser, offline, and can be zipped and shared."""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .collect import GridReport

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
       max-width: 1280px; padding: 0 16px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { font-size: 1.2em; margin-top: 32px; }
.meta, .note { color: #555; font-size: 0.9em; } .nothing { color: #a33; font-style: italic; }
figure { margin: 12px 0; } img { max-width: 100%; height: auto; border: 1px solid #ddd; }
/* a narrow window wraps long names; a table still too wide scrolls in its own box */
code { font-size: 0.95em; overflow-wrap: anywhere; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #fdecea; font-weight: 600; }
.status-ok, .status-done { color: #1a7f37; } .status-failed { color: #c62828; }
.status-other { color: #b26a00; }
"""

# each figure of a grid's section: (its caption, the question it answers)
GRID_FIGURES = {
    "curves": ("Validation AUC, training BCE and regularisation penalty (where recorded apart; "
               "older histories: their sum) against the training step, one line per run; the "
               "best run thick and red, unfinished runs dashed",
               "Did each run converge, overfit (AUC falling while the loss keeps dropping) or "
               "stop early, and how fast does the best run learn compared with the others?"),
    "knobs": ("Validation AUC against each key the grid varies, one panel per key; each point "
              "labelled with its run number (as in the table), the line through the mean AUC "
              "per value, the star on the best run",
              "Which knob matters, and in which direction? A flat mean line: the key changes "
              "little; a slope or a gap between values: it matters. Hollow points are "
              "unfinished runs at their best evaluation so far."),
    "parallel": ("Parallel coordinates: one vertical axis per tuned key and one for the "
                 "validation AUC, one line per run, coloured by its AUC (yellow: high), the best "
                 "run thick; run numbers beside the AUC axis",
                 "Which combinations do the best runs share? Bright lines meeting at one value "
                 "of a key: that value is good whatever the others; lines crossing between two "
                 "keys: the keys interact."),
}


def _e(value):
    return html.escape(str(value))


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _status_class(status):
    if status in ("ok", "done before"):
        return "status-ok"
    return "status-failed" if status.startswith("failed") else "status-other"


def _pairs(mapping):
    return ", ".join(f"{k}={v}" for k, v in mapping.items()) or "-"


def _figure(name, caption, question):
    return (f'<figure><img src="{_e(name)}" alt="{_e(caption)}"><figcaption class="note">'
            f'<b>{_e(caption)}.</b> {_e(question)}</figcaption></figure>')


def _grid_figure(images, key):
    """The image of a grid's figure with its caption and question from GRID_FIGURES."""
    return _figure(images[key], *GRID_FIGURES[key])


def _nothing(text):
    return f'<p class="nothing">{_e(text)}</p>'


def _counts(runs):
    counts = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def grid_section(report: GridReport, images: dict[str, str]) -> str:
    best = report.best
    parts = [f"<h2>Grid {_e(report.config_dir)}</h2>",
             f'<p class="meta">{len(report.runs)} experiment(s): {_e(_counts(report.runs))}. '
             f"Results from <code>{_e(report.results_file)}</code>, statuses from "
             f"<code>{_e(report.summary_file)}</code> (where present) and the runs' files. "
             + (f"Best: <b>{_e(best.label)} {_e(best.expid)}</b>, validation AUC "
                f"{best.auc:.4f}." if best else "No run has finished yet.") + "</p>"]
    parts.append("<h3>Learning curves</h3>")
    if "curves" in images:
        parts.append(_grid_figure(images, "curves"))
    else:
        parts.append(_nothing("No run has an evaluation history yet (<expid>.history.csv "
                              "beside its log; runs trained before histories were recorded "
                              "have none)."))
    parts.append("<h3>Effect of each tuned key</h3>")
    if "knobs" in images:
        parts.append(_grid_figure(images, "knobs"))
    elif not report.tuned_keys:
        parts.append(_nothing("The grid varies no key: there is nothing to compare."))
    else:
        parts.append(_nothing("No run has a validation AUC yet."))
    if "parallel" in images:
        parts.append("<h3>All tuned keys at once</h3>")
        parts.append(_grid_figure(images, "parallel"))
    parts.append("<h3>Results, best first</h3>")
    parts.append(f'<p class="note">Config differences from the base block {_e(report.base_name)}'
                 f", common to every run: <code>{_e(_pairs(report.common))}</code>; per run: the "
                 f"last column.</p>")
    parts.append(results_table(report))
    return "\n".join(parts)


def results_table(report: GridReport) -> str:
    best = report.best
    ordered = sorted(report.runs, key=lambda r: (r.auc is None, -(r.auc or 0.0),
                                                 -(r.best_so_far or 0.0)))
    rows = [('<div class="table-wrap"><table><tr><th>run</th><th>expid</th><th>status</th>'
             "<th>val AUC</th><th>val logloss</th><th>best evaluation</th><th>evaluations</th>"
             "<th>seconds</th><th>differences from the base</th></tr>")]
    for run in ordered:
        own = {k: v for k, v in run.differences.items() if k not in report.common}
        rows.append(
            f'<tr class="{"best" if best is not None and run.expid == best.expid else ""}">'
            f"<td>{_e(run.label)}</td><td><code>{_e(run.expid)}</code></td>"
            f'<td class="{_status_class(run.status)}">{_e(run.status)}</td>'
            f'<td class="num">{_fmt(run.auc, ".4f")}</td>'
            f'<td class="num">{_fmt(run.logloss, ".4f")}</td>'
            f'<td class="num">{_fmt(run.best_so_far, ".4f")}</td>'
            f'<td class="num">{len(run.history)}</td>'
            f'<td class="num">{_fmt(run.seconds, ".0f")}</td>'
            f"<td><code>{_e(_pairs(own))}</code></td></tr>")
    rows.append("</table></div>")
    return "\n".join(rows)


def item_embedding_section(rows: list[dict[str, Any]], source: Path | str, image: str) -> str:
    parts = ["<h2>Task 1: item embeddings</h2>",
             f'<p class="meta">From <code>{_e(source)}</code> (python -m src.item_embedding '
             f"evaluate), {len(rows)} file(s), best first.</p>"]
    parts.append(_figure(image, "Validation AUC of the fixed DIN per item-embedding method "
                         "(mean over training seeds, error bar: std over seeds) beside the "
                         "next-item recall proxy",
                         "Which embedding helps the task-1 DIN most, is its margin larger than "
                         "the seed-to-seed noise, and does the cheap recall proxy rank the "
                         "methods the same way?"))
    if not any(r.get("din_auc") is not None for r in rows):
        parts.append(_nothing("No DIN results in this table (evaluate --proxy-only): only the "
                              "proxy is shown."))
    return "\n".join(parts)


def render(title: str, sections: list[str], command: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{_e(title)}</h1>\n<p class=\"meta\">Written {time.strftime('%Y-%m-%d %H:%M')}"
            f" by <code>{_e(command)}</code>.</p>\n" + "\n".join(sections) +
            "\n</body></html>\n")
