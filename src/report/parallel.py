"""The parallel-coordinates view of a grid of three or more tuned keys, as Optuna and W&B show
sweeps: one vertical axis per tuned key and one for the validation AUC, one line per run
through its values, coloured by its AUC (viridis: yellow high; the AUC axis is its scale).
Where the knob panels show one key at a time, this shows which combinations the good runs
share.

Each vertical axis is a secondary y axis of one host Axes (gid: its key, or "validation AUC")
that maps the host's 0..1 height to the key's values; each run's line carries its expid as
gid, so tests read back what is drawn.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .figures import BEST, axis_values

if TYPE_CHECKING:
    import numpy.typing as npt
    from .collect import GridReport

AUC_AXIS = "validation AUC"
MIN_KEYS = 3  # with one or two keys the knob panels show it all
CMAP = colormaps["viridis"]


class _Scale:
    """A key's values <-> height 0..1 on the host (log10 for wide positive ranges)."""

    def __init__(self, positions: npt.ArrayLike, log: bool) -> None:
        self.log = log
        values = np.log10(positions) if log else np.asarray(positions, dtype=float)
        self.low, self.high = float(values.min()), float(values.max())
        if self.high == self.low:  # one value: the middle of its axis
            self.low, self.high = self.low - 0.5, self.high + 0.5

    def to_height(self, values: npt.ArrayLike) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if self.log:
            values = np.log10(np.clip(values, 1e-300, None))
        return (values - self.low) / (self.high - self.low)

    def to_value(self, heights: npt.ArrayLike) -> np.ndarray:
        values = self.low + np.asarray(heights, dtype=float) * (self.high - self.low)
        return 10 ** values if self.log else values


def _ticks(scale, positions, labels, exact):
    """(tick values, tick labels) of one vertical axis; exact: a tick at each value (a tuned
    key's few values), else five across the range (the AUCs)."""
    if labels is not None:
        return list(range(len(labels))), labels
    distinct = sorted(set(positions))
    if not exact:
        values = list(np.linspace(min(distinct), max(distinct), 5))
        return values, [f"{v:.4f}" for v in values]
    if len(distinct) <= 8:  # a grid has few values: label exactly those
        return distinct, [f"{v:g}" for v in distinct]
    if scale.log:
        values = [10.0 ** k for k in range(math.floor(scale.low), math.ceil(scale.high) + 1)]
    else:
        values = list(np.linspace(min(distinct), max(distinct), 5))
    return values, [f"{v:.3g}" for v in values]


def parallel_coordinates(report: GridReport) -> Figure | None:
    """The figure, or None for a grid of fewer than three tuned keys or fewer than two runs
    with a validation AUC (a finished run's result, else its best evaluation so far)."""
    keys = report.tuned_keys
    runs = [r for r in report.runs if r.shown_auc is not None]
    if len(keys) < MIN_KEYS or len(runs) < 2:
        return None
    columns = keys + [AUC_AXIS]
    aucs = [r.shown_auc for r in runs]
    heights, axes_info = [], []
    for column in columns:
        values = aucs if column == AUC_AXIS else [r.params.get(column) for r in runs]
        positions, labels, log = axis_values(values)
        scale = _Scale(positions, log)
        heights.append(scale.to_height(positions))
        axes_info.append((column, scale, _ticks(scale, positions, labels, column != AUC_AXIS)))
    fig = Figure(figsize=(max(8.0, 1.4 * len(columns) + 2.5), 4.8), layout="constrained")
    ax = fig.subplots()
    last = len(columns) - 1
    ax.set_xlim(0, last)
    ax.set_ylim(-0.04, 1.04)
    ax.set_yticks([])
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xticks(range(len(columns)), columns, fontsize=8,
                  rotation=20 if len(columns) > 6 else 0)
    ax.tick_params(axis="x", length=0, pad=8)
    for index, (column, scale, (ticks, tick_labels)) in enumerate(axes_info):
        axis = ax.secondary_yaxis(index / last, functions=(scale.to_value, scale.to_height))
        axis.set_gid(column)
        axis.set_yticks(ticks, tick_labels, fontsize=7)
        axis.yaxis.set_ticks_position("left")  # every axis alike; right of the AUC: run numbers
        axis.tick_params(axis="y", pad=1)
        for label in axis.get_yticklabels():  # readable over the lines that cross there
            label.set_bbox({"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.5})
    norm = Normalize(min(aucs), max(aucs) if max(aucs) > min(aucs) else min(aucs) + 1e-9)
    best = report.best
    order = sorted(range(len(runs)), key=lambda i: aucs[i])  # the best lines drawn on top
    for i in order:
        run = runs[i]
        is_best = best is not None and run.expid == best.expid
        ys = [h[i] for h in heights]
        ax.plot(range(len(columns)), ys, color=CMAP(norm(aucs[i])), lw=2.6 if is_best else 1.3,
                alpha=0.9, ls="-" if run.finished or run.status == "running" else "--",
                zorder=3 if is_best else 2, gid=run.expid)
        if len(runs) <= 30:  # the run numbers of the results table, beside the AUC axis
            ax.annotate(run.label, (last, ys[-1]), xytext=(6, 0), textcoords="offset points",
                        fontsize=7, va="center", color=BEST if is_best else "#444",
                        annotation_clip=False, gid="run")
    ax.set_title("Each run across the tuned keys", fontsize=10)
    return fig
