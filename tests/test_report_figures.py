"""The report's figures and page on made-up grids, no training: every title and label fits, the
training BCE and the penalty apart, run numbers on the points, one axis per tuned key, a
results table that scrolls (the report of real runs: test_report.py)."""
import re
from pathlib import Path

import pytest

from src.history import RunHistory, read_history


# --- figure and page structure, on made-up grids (no training: these check the drawing) ------
KEYS = ["embedding_regularizer", "learning_rate", "net_dropout", "attention_hidden_units",
        "dnn_hidden_units", "embedding_dim", "batch_size", "net_regularizer"]
VALUES = {"embedding_regularizer": [1e-6, 1e-3], "learning_rate": [1e-3, 3e-3, 1e-2],
          "net_dropout": [0.0, 0.2], "attention_hidden_units": [[32], [64, 32]],
          "dnn_hidden_units": [[64, 32], [256, 128, 64]], "embedding_dim": [16, 64],
          "batch_size": [512, 4096], "net_regularizer": [0, 1e-4]}


def made_up_grid(n_keys, n_runs=6, penalty=True):
    """A GridReport of n_runs finished runs over the first n_keys of KEYS, each with a
    three-row history (train_penalty recorded apart, or None as in older histories)."""
    from src.report.collect import GridReport, Run
    keys, runs = KEYS[:n_keys], []
    for i in range(n_runs):
        params = {k: VALUES[k][(i + j) % len(VALUES[k])] for j, k in enumerate(keys)}
        auc = 0.70 + 0.013 * ((i * 7) % n_runs)
        history = [{"epoch": 1, "step": 10 * s, "train_loss": 2.6 - 0.4 * s - 0.01 * i,
                    "train_penalty": (2.1 - 0.3 * s) if penalty else None,
                    "val_AUC": auc - 0.02 * (3 - s), "val_logloss": 0.45, "lr": 1e-3,
                    "samples_per_s": 100.0, "elapsed_s": 1.0 * s} for s in (1, 2, 3)]
        expid = f"DIN_MicroLens_example_x1_{i + 1:03d}_{i:08x}"
        runs.append(Run(expid, f"#{i + 1:03d}", params, "ok", history, auc, 0.45, 10.0,
                        {k: params[k] for k in keys}))
    return GridReport("example", Path("config/example"), runs, keys, {}, "DIN_default",
                      Path("example.csv"), Path("example_summary.csv"))


def texts_outside(fig):
    """The texts of a drawn figure that reach past its left or right edge (a clipped title,
    a label): the suptitle, axes titles, axis labels, annotations, legend texts and the tick
    labels in view."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer, width = canvas.get_renderer(), fig.bbox.width
    texts = list(fig.texts) + ([fig._suptitle] if fig._suptitle else [])
    every_axes = fig.axes + [child for parent in fig.axes for child in parent.child_axes]
    legends = fig.legends + [ax.get_legend() for ax in every_axes if ax.get_legend()]
    texts += [t for legend in legends for t in legend.get_texts() + [legend.get_title()]]
    for ax in every_axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if not ax.axison:  # an axes used as a box (the legend's): its axes are not drawn
            continue
        for name, axis in ax._axis_map.items():
            low, high = sorted(axis.get_view_interval())
            coordinate = 0 if name == "x" else 1
            texts += [axis.label] + [  # labels of ticks outside the view exist but are not drawn
                t for t in axis.get_ticklabels() + axis.get_ticklabels(minor=True)
                if low - 1e-9 * abs(high - low) <= t.get_position()[coordinate]
                <= high + 1e-9 * abs(high - low)]
    outside = []
    for text in texts:
        if text.get_visible() and text.get_text().strip():
            box = text.get_window_extent(renderer)
            if box.x0 < -0.5 or box.x1 > width + 0.5:
                outside.append(text.get_text())
    return outside


@pytest.mark.parametrize("n_keys", range(1, 9))
def test_every_title_and_label_fits_its_figure_at_any_number_of_tuned_keys(n_keys):
    from src.report import figures
    grid = made_up_grid(n_keys)
    for fig in (figures.knob_panels(grid), figures.learning_curves(grid)):
        assert texts_outside(fig) == []


def test_training_bce_and_penalty_are_plotted_apart():
    from src.report import figures
    grid = made_up_grid(2)
    ax_auc, ax_bce, ax_penalty, _ = figures.learning_curves(grid).axes
    assert [ax.get_gid() for ax in (ax_auc, ax_bce, ax_penalty)] == [
        "val_AUC", "train_bce", "train_penalty"]
    assert "BCE" in ax_bce.get_title() and "penalty" in ax_penalty.get_title().lower()
    for run in grid.runs:
        (bce,) = [line for line in ax_bce.get_lines() if line.get_gid() == run.expid]
        (pen,) = [line for line in ax_penalty.get_lines() if line.get_gid() == run.expid]
        assert list(bce.get_ydata()) == pytest.approx(
            [r["train_loss"] - r["train_penalty"] for r in run.history], rel=1e-9)
        assert list(pen.get_ydata()) == pytest.approx([r["train_penalty"] for r in run.history],
                                                      rel=1e-9)
    # a history written before the penalty was recorded apart: their sum, labelled as such
    ax_auc, ax_loss = figures.learning_curves(made_up_grid(2, penalty=False)).axes
    assert ax_loss.get_gid() == "train_loss"
    assert "BCE + regularisation penalty" in ax_loss.get_title()


def test_the_penalty_is_recorded_apart_and_old_histories_still_read(tmp_path):
    path = tmp_path / "run.history.csv"
    history = RunHistory(path)
    history.record(1, 4, 0.9, 100, {"AUC": 0.6, "logloss": 0.5}, 1e-3, train_penalty=0.4)
    (row,) = read_history(path)
    assert (row["train_loss"], row["train_penalty"]) == (0.9, 0.4)
    old = tmp_path / "old.history.csv"  # the columns of a history before train_penalty
    old.write_text("epoch,step,train_loss,val_AUC,val_logloss,lr,samples_per_s,elapsed_s\n"
                   "1,4,0.9,0.6,0.5,0.001,50.0,2.0\n")
    (row,) = read_history(old)
    assert row["train_loss"] == 0.9 and row["train_penalty"] is None
    resumed = RunHistory(old, resume_step=4)  # a resumed old run goes on in the new columns
    resumed.record(1, 8, 0.8, 100, {"AUC": 0.65}, 1e-3, train_penalty=0.3)
    assert [r["train_penalty"] for r in read_history(old)] == [None, 0.3]


def test_knob_points_carry_their_run_numbers():
    from src.report import figures
    grid = made_up_grid(3)
    for ax in figures.knob_panels(grid).axes:
        key = ax.get_gid()
        labels = {t.get_text(): t.xy for t in ax.texts if t.get_gid() == f"{key}:run"}
        assert sorted(labels) == [r.label for r in grid.runs]
        xs, _, _ = figures.axis_values([r.params[key] for r in grid.runs])
        for x, run in zip(xs, grid.runs):
            assert labels[run.label] == pytest.approx((x, run.auc), rel=1e-9)


def test_parallel_coordinates_has_an_axis_per_key_and_a_line_per_run_coloured_by_auc():
    from matplotlib import colormaps

    from src.report import parallel
    grid = made_up_grid(4)
    fig = parallel.parallel_coordinates(grid)
    (host,) = fig.axes
    assert [a.get_gid() for a in host.child_axes] == KEYS[:4] + ["validation AUC"]
    lines = {line.get_gid(): line for line in host.get_lines()}
    assert sorted(lines) == sorted(r.expid for r in grid.runs)
    aucs = [r.auc for r in grid.runs]
    low, high = min(aucs), max(aucs)
    viridis = colormaps["viridis"]
    for run in grid.runs:
        ys = list(lines[run.expid].get_ydata())
        assert len(ys) == 5
        assert ys[-1] == pytest.approx((run.auc - low) / (high - low), rel=1e-9)
        assert lines[run.expid].get_color() == pytest.approx(
            viridis((run.auc - low) / (high - low)), rel=1e-6)
    for index, key in enumerate(KEYS[:4]):  # the same value of a key: the same height
        heights = {}
        for run in grid.runs:
            heights.setdefault(str(run.params[key]), set()).add(
                lines[run.expid].get_ydata()[index])
        assert all(len(h) == 1 for h in heights.values()) and len(heights) == len(
            {str(v) for v in VALUES[key]})
    assert sorted(t.get_text() for t in host.texts if t.get_gid() == "run") == [
        r.label for r in grid.runs]
    assert parallel.parallel_coordinates(made_up_grid(2)) is None  # the knob panels show it
    for n_keys in range(3, 9):  # axis names, ticks and run numbers inside the figure
        assert texts_outside(parallel.parallel_coordinates(made_up_grid(n_keys))) == []


def test_results_table_scrolls_in_its_own_box_and_long_names_wrap():
    from src.report import page
    grid = made_up_grid(3)
    text = page.render("Report: example", [page.grid_section(grid, {})], "python -m src.report")
    assert re.search(r'<div class="table-wrap"><table>', text)
    assert text.count("<table>") == text.count('<div class="table-wrap"><table>') == 1
    css = re.sub(r"/\*.*?\*/", "", page.CSS, flags=re.DOTALL)
    css = {m.group(1).strip(): m.group(2) for m in re.finditer(r"([^{}]+)\{([^}]*)\}", css)}
    rules = {sel.strip(): body for sels, body in css.items() for sel in sels.split(",")}
    assert "overflow-x: auto" in rules[".table-wrap"]
    assert "overflow-wrap: anywhere" in rules["code"]  # expids and config pairs break
    assert "max-width: 100%" in rules["img"]
