"""The report's figures, each a matplotlib Figure built from collected data (src/report/collect).

Figures are made with matplotlib.figure.Figure, not pyplot: no backend is chosen, no window
opens and no global state changes; savefig renders with Agg. Each function returns its Figure,
so what it plots can be read back (tests do): curves carry the run's expid as gid, each knob
panel the key as gid, so a reader can tell which data each artist shows.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .collect import GridReport, Run

BEST = "#d62728"   # the best run, in every figure
OTHER = "#8c8c8c"  # the other runs when there are too many to tell apart by colour
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#aec7e8"]
MAX_LEGEND = 10  # more runs than this: the others are grey and only the best is named


def knob_text(run: Run, keys: Sequence[str], limit: int = 3) -> str:
    """'lr=0.001, batch_size=256' for a legend: the run's values of the tuned keys."""
    parts = [f"{k}={run.params.get(k)}" for k in keys[:limit]]
    return ", ".join(parts) + (", ..." if len(keys) > limit else "")


def _style(index, run, best, many):
    is_best = best is not None and run.expid == best.expid
    return dict(color=BEST if is_best else OTHER if many else PALETTE[index % len(PALETTE)],
                lw=2.6 if is_best else 1.2, alpha=1.0 if is_best else 0.85,
                ls="-" if run.finished or run.status == "running" else "--",
                zorder=3 if is_best else 2, marker="o" if len(run.history) <= 40 else None,
                ms=3.5 if is_best else 2.5)


def _curve_label(run, keys, best):
    label = f"{run.label} {knob_text(run, keys)}".strip()
    if best is not None and run.expid == best.expid:
        label += " (best)"
    if not run.finished:
        label += f" [{run.status}]"
    return label


def _loss_series(runs):
    """[(history column or callable of a row, panel title, y label)] of the loss panels: the
    training BCE and, where any run was regularised, the penalty apart, when every row of every
    run records its penalty; else the recorded objective (BCE + penalty) under a label that says
    so (histories written before the penalty was recorded apart)."""
    rows = [row for run in runs for row in run.history if row["train_loss"] is not None]
    if not rows or any(row.get("train_penalty") is None for row in rows):
        return [("train_loss", "Training loss (BCE + regularisation penalty)",
                 "BCE + penalty, mean since the previous evaluation")]
    series = [(lambda row: row["train_loss"] - row["train_penalty"],
               "Training BCE since the previous evaluation", "training BCE (logloss)")]
    if any(row["train_penalty"] > 0 for row in rows):
        series.append(("train_penalty", "Regularisation penalty (added to the BCE)",
                       "penalty, mean since the previous evaluation"))
    return series


def _series_points(history, column):
    value = column if callable(column) else (lambda row: row[column])
    needed = ("train_loss", "train_penalty") if callable(column) else (column,)
    return [(row["step"], value(row)) for row in history
            if all(row.get(k) is not None for k in needed)]


def learning_curves(report: GridReport) -> Figure | None:
    """Validation AUC, training BCE and regularisation penalty (a panel of their own: a penalty
    of 2 beside a BCE of 0.45 would hide the BCE's shape) against the training step, one line
    per run with a history; the best run thick and red, unfinished runs dashed. None when no
    run has one."""
    runs = [r for r in report.runs if r.history]
    if not runs:
        return None
    best = report.best
    many = len(runs) > MAX_LEGEND
    panels = [("val_AUC", "Validation AUC at each evaluation", "validation AUC")]
    panels += _loss_series(runs)
    if len(panels) < 3:  # side by side, the legend below
        fig = Figure(figsize=(12, 5), layout="constrained")
        axes, legend_box = fig.subplots(1, len(panels)), fig
    else:  # two by two, the legend in the fourth cell: three in a row would be too narrow
        fig = Figure(figsize=(12, 8.5), layout="constrained")
        *axes, legend_box = fig.subplots(2, 2).ravel()
        legend_box.set_axis_off()
        legend_box.set_gid("legend")
    handles = []
    for index, run in enumerate(runs):
        style, label = _style(index, run, best, many), _curve_label(run, report.tuned_keys, best)
        for ax, (column, _, _) in zip(axes, panels):
            points = _series_points(run.history, column)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            (line,) = ax.plot(xs, ys, label=label, **style)
            line.set_gid(run.expid)
        if not many or style["color"] == BEST:
            handles.append(line)
    for ax, (column, title, ylabel) in zip(axes, panels):
        ax.set(title=title, xlabel="training step", ylabel=ylabel)
        ax.set_gid(column if isinstance(column, str) else "train_bce")
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
    title = f"{len(runs)} run(s)" + (f"; grey: the other {len(runs) - 1}" if many else "")
    legend_box.legend(handles=handles, ncols=2 if legend_box is fig else 1, fontsize=8,
                      title=title, title_fontsize=8,
                      loc="outside lower center" if legend_box is fig else "center")
    return fig


def axis_values(values: Sequence[Any]) -> tuple[list[float], list[str] | None, bool]:
    """(x positions, tick labels or None, log scale) for the values of one tuned key."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        low, high = min(values), max(values)
        return [float(v) for v in values], None, low > 0 and high / low >= 10
    labels = list(dict.fromkeys(str(v) for v in values))
    return [float(labels.index(str(v))) for v in values], labels, False


def knob_panels(report: GridReport) -> Figure | None:
    """One panel per tuned key: each run's validation AUC against its value of that key
    (filled: the run's result; hollow: the best evaluation of an unfinished run), labelled
    with its run number, a line through the mean AUC per value, a star on the best run. None
    when the grid varies no key or no run has an AUC yet."""
    keys = report.tuned_keys
    runs = [r for r in report.runs if r.shown_auc is not None]
    if not keys or not runs:
        return None
    best = report.best
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(3.8 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        xs, labels, log = axis_values([r.params.get(key) for r in runs])
        done = [(x, r.shown_auc) for x, r in zip(xs, runs) if r.finished]
        partial = [(x, r.shown_auc) for x, r in zip(xs, runs) if not r.finished]
        if done:
            ax.scatter(*zip(*done), s=28, color=PALETTE[0], zorder=3, label="result",
                       gid=f"{key}:finished")
        if partial:
            ax.scatter(*zip(*partial), s=28, facecolors="none", edgecolors=PALETTE[1],
                       zorder=3, label="unfinished (best so far)", gid=f"{key}:unfinished")
        means = {}
        for x, auc in done + partial:
            means.setdefault(x, []).append(auc)
        if len(means) > 1:
            order = sorted(means)
            ax.plot(order, [sum(means[x]) / len(means[x]) for x in order], color=PALETTE[0],
                    alpha=0.45, lw=1.2, zorder=2, gid=f"{key}:mean")
        if best is not None:
            bx = xs[runs.index(best)]
            ax.scatter([bx], [best.auc], marker="*", s=160, color=BEST, zorder=4,
                       gid=f"{key}:best")
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0,
                          fontsize=8)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:
            if log:
                ax.set_xscale("log")
            distinct = sorted(set(xs))
            if len(distinct) <= 8:  # a grid has few values: label exactly those
                ax.set_xticks(distinct, [f"{v:g}" for v in distinct], fontsize=8)
                ax.minorticks_off()
        for x, run in zip(xs, runs):  # the run numbers of the results table
            ax.annotate(run.label, (x, run.shown_auc), xytext=(4, 3), textcoords="offset points",
                        fontsize=7, color="#444", gid=f"{key}:run")
        ax.set_title(key, fontsize=10 if len(key) <= 30 else 8)
        ax.set_gid(key)
        ax.set_ylabel("validation AUC")
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        fig.delaxes(ax)
    # short enough for one panel; what the marks mean is the caption's (page.py)
    fig.suptitle("Validation AUC per tuned key", fontsize=10)
    return fig


def _method_labels(rows):
    methods = [r.get("method") or Path(r.get("file", "?")).stem for r in rows]
    return [m if methods.count(m) == 1 else f"{m} ({Path(r.get('file', '?')).stem})"
            for m, r in zip(methods, rows)]


def item_embedding_chart(rows: list[dict[str, Any]]) -> Figure:
    """Task-1 item embeddings, one row per file (best first): the DIN's validation AUC (mean
    over training seeds, bar: the std over seeds) beside the next-item recall proxy. Without
    DIN results (evaluate --proxy-only) only the proxy panel."""
    labels = _method_labels(rows)
    with_auc = any(r.get("din_auc") is not None for r in rows)
    fig = Figure(figsize=(11, 1.6 + 0.42 * len(rows)), layout="constrained")
    axes = fig.subplots(1, 2 if with_auc else 1, squeeze=False, sharey=True)[0]
    ys = list(range(len(rows)))
    if with_auc:
        ax = axes[0]
        points = [(r["din_auc"], r.get("din_std") or 0.0, y) for r, y in zip(rows, ys)
                  if r.get("din_auc") is not None]
        ax.errorbar([p[0] for p in points], [p[2] for p in points],
                    xerr=[p[1] for p in points], fmt="o", color=PALETTE[0], ecolor=PALETTE[0],
                    capsize=4, gid="din_auc")
        for auc, std, y in points:
            ax.annotate(f"{auc:.4f}", (auc + std, y), xytext=(5, 0), textcoords="offset points",
                        va="center", fontsize=8)
        ax.set(title="DIN validation AUC (mean over seeds, bar: std)",
               xlabel="validation AUC")
        ax.margins(x=0.25)
        ax.grid(axis="x", alpha=0.3)
    ax = axes[-1]
    height = 0.38
    for offset, column, color in ((-height / 2, "recall@10", PALETTE[1]),
                                  (height / 2, "recall@50", PALETTE[2])):
        ax.barh([y + offset for y in ys], [r.get(column) or 0.0 for r in rows], height=height,
                color=color, label=column, gid=column)
    ax.set(title="Next-item recall proxy (held-out users)", xlabel="recall")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, labels, fontsize=9)
    axes[0].invert_yaxis()  # best first, at the top
    return fig


def save(fig: Figure, path: Path | str) -> Path:
    """The figure as a PNG (Agg renders it; nothing is shown)."""
    fig.savefig(path, dpi=110)
    return Path(path)
