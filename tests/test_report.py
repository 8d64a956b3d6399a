"""What the runs did: the evaluation history of every run (also across a kill and resume, and as
TensorBoard scalars) and the report of a grid, read back from the figures' own data.

Real runs through the command lines on the 4,096-row slice of the tiny generated data."""
import csv
import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from src.errors import ConfigError
from src.history import RunHistory, read_history
from src.params import RunPaths, load_params
from src.report.build import build_report, detect_item_embedding
from src.tuning.lock import FileLock

from .conftest import REPO, run_cli, tune_cli, wait_for, write_tuner_config

# 512 rows a batch: 8 steps an epoch; an evaluation every 3 steps: 5 over 2 epochs
GRID = {"epochs": 2, "batch_size": 512, "eval_steps": 3, "early_stop_patience": 100,
        "learning_rate": [3.e-3, 1.e-2], "net_dropout": [0.0, 0.2]}
STEPS_PER_EPOCH = 8
EVALUATION = re.compile(r"Evaluation @epoch (\d+) - batch (\d+):")
METRICS = re.compile(r"\[Metrics\] AUC: ([\d.]+) - logloss: ([\d.]+)")
TRAIN_LOSS = re.compile(r"Train loss: ([\d.]+)")


# --- helpers -------------------------------------------------------------------------------
def grid_params(tuner_yaml):
    config_dir = Path(tuner_yaml).with_suffix("")
    expids = list(yaml.safe_load((config_dir / "model_config.yaml").read_text()))
    return {e: load_params(config_dir, e) for e in expids}


def summary_aucs(folder, name="grid"):
    with open(Path(folder) / f"{name}_summary.csv", newline="") as f:
        return {r["expid"]: (r["status"], float(r["AUC"]) if r["AUC"] else None)
                for r in csv.DictReader(f)}


def history_of(folder, params):
    """The history of a run whose model_root is relative to folder (as the tuner ran it)."""
    return read_history(Path(folder) / RunPaths(params).history)


def log_evaluations(log_text):
    """(epoch, batch in epoch, AUC, logloss, train loss) of every evaluation in a run's log:
    the [Metrics] line that follows each `Evaluation @epoch` line (the final validation of the
    best model has none), and the `Train loss` line just before it."""
    found = []
    for match in EVALUATION.finditer(log_text):
        metrics = METRICS.search(log_text, match.end())
        loss = list(TRAIN_LOSS.finditer(log_text, 0, match.start()))[-1]
        found.append((int(match.group(1)), int(match.group(2)), float(metrics.group(1)),
                      float(metrics.group(2)), float(loss.group(1))))
    return found


def report_cli(folder, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "src.report", *map(str, args)], cwd=folder,
                          capture_output=True, text=True, timeout=300, env=env)


class _Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "src" in attrs:
            self.sources.append(attrs["src"])
        if "href" in attrs:
            self.links.append(attrs["href"])


def html_sources(index):
    parser = _Sources()
    parser.feed(Path(index).read_text())
    return parser.sources, parser.links


@pytest.fixture(scope="module")
def grid(small_data, tmp_path_factory):
    """A 2 x 2 grid (learning_rate x net_dropout) tuned in a folder: (folder, tuner yaml)."""
    folder = tmp_path_factory.mktemp("report_grid")
    tuner_yaml = write_tuner_config(folder, small_data, GRID, name="grid.yaml")
    done = tune_cli(folder, tuner_yaml)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report: python -m src.report --config" in done.stdout  # the tuner's hint
    return folder, tuner_yaml


# --- the history file -------------------------------------------------------------------------
@pytest.mark.slow
def test_history_rows_match_the_evaluations_in_the_log(grid):
    folder, tuner_yaml = grid
    for expid, params in grid_params(tuner_yaml).items():
        rows = history_of(folder, params)
        logged = log_evaluations((folder / RunPaths(params).log).read_text())
        assert len(rows) == len(logged) == 5, expid
        for row, (epoch, batch, auc, logloss, loss) in zip(rows, logged):
            assert row["epoch"] == epoch
            assert row["step"] == (epoch - 1) * STEPS_PER_EPOCH + batch
            assert row["val_AUC"] == pytest.approx(auc, rel=1e-5)  # the log rounds to 6 places
            assert row["val_logloss"] == pytest.approx(logloss, rel=1e-5)
            assert row["train_loss"] == pytest.approx(loss, rel=1e-5)
            # the penalty part of that loss: embedding_regularizer 1e-6 of the demo DIN
            assert 0 < row["train_penalty"] < 0.01 * row["train_loss"]
            assert row["samples_per_s"] > 0
        assert [r["step"] for r in rows] == [3, 6, 9, 12, 15]
        assert rows[0]["lr"] == pytest.approx(params["learning_rate"], rel=1e-9)
        elapsed = [r["elapsed_s"] for r in rows]
        assert elapsed == sorted(elapsed) and elapsed[0] > 0


def test_a_history_keeps_the_rows_up_to_the_resumed_state_and_a_fresh_start_empties_it(
        tmp_path):
    path = tmp_path / "run.history.csv"
    history = RunHistory(path)
    for step in (4, 8, 12):
        history.start()
        history.pause()
        history.record(1, step, 0.5, 100, {"AUC": 0.5 + step / 100, "logloss": 0.6}, 1e-3)
    assert [r["step"] for r in read_history(path)] == [4, 8, 12]
    before = read_history(path)[1]["elapsed_s"]
    resumed = RunHistory(path, resume_step=8)  # the state was saved at step 8
    assert [r["step"] for r in read_history(path)] == [4, 8]
    resumed.record(1, 12, 0.4, 100, {"AUC": 0.7}, 1e-3)
    rows = read_history(path)
    assert [r["step"] for r in rows] == [4, 8, 12]
    assert rows[2]["val_AUC"] == 0.7 and rows[2]["val_logloss"] is None
    assert rows[2]["elapsed_s"] >= before  # counts on from the kept rows
    RunHistory(path)
    assert read_history(path) == [] and path.read_text().startswith("epoch,step,")


@pytest.mark.slow
def test_a_killed_and_resumed_run_has_the_history_of_an_uninterrupted_one(small_data, tmp_path):
    """deterministic: True; one run uninterrupted, one killed by SIGKILL after its second
    evaluation began and started again: the same evaluations, none twice, none missing."""
    space = {"batch_size": 64, "eval_steps": 16, "epochs": 2, "early_stop_patience": 100,
             "net_dropout": 0.2, "deterministic": True, "learning_rate": 3.e-3}
    histories = {}
    for name in ("whole", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        tuner_yaml = write_tuner_config(folder, small_data, space, name="grid.yaml")
        from src.tuning.tuner import expand_grid
        config_dir, (expid,) = expand_grid(tuner_yaml)
        params = load_params(config_dir, expid)
        log = folder / RunPaths(params).log
        cmd = [sys.executable, str(REPO / "run_expid.py"), "--config", config_dir, "--expid",
               expid]
        if name == "killed":
            run = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            try:  # 64 batches per epoch, an evaluation and a state save every 16
                wait_for(lambda: log.exists() and "batch 32:" in log.read_text(), 120,
                         "the run's second evaluation")
                run.kill()
                run.wait()
            finally:
                run.kill()
            assert "Training finished" not in log.read_text()
        done = run_cli(*cmd[1:], cwd=folder)
        assert done.returncode == 0, done.stderr[-2000:]
        histories[name] = history_of(folder, params)
        if name == "killed":
            assert "Resuming epoch 1 at batch" in log.read_text()
    whole, killed = histories["whole"], histories["killed"]
    assert [r["step"] for r in whole] == list(range(16, 129, 16))
    keys = ("epoch", "step", "train_loss", "train_penalty", "val_AUC", "val_logloss", "lr")
    assert [[r[k] for k in keys] for r in killed] == [[r[k] for k in keys] for r in whole]


@pytest.mark.slow
def test_a_rerun_starts_its_history_afresh(small_data, tmp_path):
    tuner_yaml = write_tuner_config(tmp_path, small_data, {
        "epochs": 1, "batch_size": 512, "eval_steps": 2, "max_steps": 4, "learning_rate": 3.e-3},
        name="grid.yaml")
    from src.tuning.tuner import expand_grid
    config_dir, (expid,) = expand_grid(tuner_yaml)
    params = load_params(config_dir, expid)
    for fresh in ([], ["--fresh"]):  # a finished run is retrained only when asked
        done = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, *fresh,
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert [r["step"] for r in history_of(tmp_path, params)] == [2, 4]


# --- TensorBoard -------------------------------------------------------------------------------
@pytest.mark.slow
def test_tensorboard_scalars_read_back_as_the_history(small_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tuner_yaml = write_tuner_config(tmp_path, small_data, {
        "epochs": 1, "batch_size": 512, "eval_steps": 2, "tensorboard": True,
        "learning_rate": 3.e-3}, name="grid.yaml")
    from src.tuning.tuner import expand_grid
    config_dir, (expid,) = expand_grid(tuner_yaml)
    params = load_params(config_dir, expid)
    for fresh in ([], ["--fresh"]):  # a retrain replaces the events of the first run
        done = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, *fresh,
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = history_of(tmp_path, params)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    events = EventAccumulator(str(tmp_path / RunPaths(params).tensorboard))
    events.Reload()
    for tag, column in (("valid/AUC", "val_AUC"), ("valid/logloss", "val_logloss"),
                        ("train/loss", "train_loss"), ("train/penalty", "train_penalty"),
                        ("train/lr", "lr")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [r["step"] for r in rows], tag
        assert [s.value for s in scalars] == pytest.approx([r[column] for r in rows], rel=1e-6)


def test_tensorboard_without_the_package_is_refused_before_training(small_data, tmp_path,
                                                                    monkeypatch):
    from src import experiment
    tuner_yaml = write_tuner_config(tmp_path, small_data, {"tensorboard": True,
                                                           "learning_rate": 3.e-3},
                                    name="grid.yaml")
    from src.tuning.tuner import expand_grid
    config_dir, (expid,) = expand_grid(tuner_yaml)
    params = load_params(config_dir, expid)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="tensorboard package is not installed. Fix: pip "
                                          "install -r requirements-tensorboard.txt"):
        experiment.train(params, config_dir)
    assert not (tmp_path / RunPaths(params).log).exists()  # nothing written


# --- the report -------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_of_a_small_grid_plots_every_run_and_every_tuned_key(grid, monkeypatch):
    folder, tuner_yaml = grid
    params = grid_params(tuner_yaml)
    results = summary_aucs(folder)
    best = max(results, key=lambda e: results[e][1])
    monkeypatch.chdir(folder)
    _, images, _, report, _ = build_report(tuner_yaml.with_suffix(""))
    assert report.best.expid == best and report.tuned_keys == ["learning_rate", "net_dropout"]

    panels = {ax.get_gid(): ax for ax in images["curves"].axes}
    # the demo DIN's embedding_regularizer: a penalty, shown apart from the BCE
    assert sorted(panels) == ["legend", "train_bce", "train_penalty", "val_AUC"]
    for column in ("val_AUC", "train_bce", "train_penalty"):
        lines = {line.get_gid(): line for line in panels[column].get_lines()}
        assert sorted(lines) == sorted(params)  # one curve per run
        for expid, line in lines.items():
            rows = history_of(folder, params[expid])
            assert list(line.get_xdata()) == [r["step"] for r in rows]
            expected = [r["train_loss"] - r["train_penalty"] for r in rows] \
                if column == "train_bce" else [r[column] for r in rows]
            assert list(line.get_ydata()) == pytest.approx(expected, rel=1e-12)
        widths = {e: line.get_linewidth() for e, line in lines.items()}
        assert widths[best] > max(w for e, w in widths.items() if e != best)  # highlighted

    panels = images["knobs"].axes
    assert [ax.get_gid() for ax in panels] == ["learning_rate", "net_dropout"]
    for ax in panels:
        (points,) = [c for c in ax.collections if c.get_gid() == f"{ax.get_gid()}:finished"]
        plotted = sorted(map(tuple, points.get_offsets().tolist()))
        expected = sorted((float(p[ax.get_gid()]), results[e][1]) for e, p in params.items())
        assert plotted == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_report_command_writes_a_self_contained_folder(grid):
    folder, tuner_yaml = grid
    done = report_cli(folder, "--config", tuner_yaml)  # the yaml works as well as the folder
    assert done.returncode == 0, done.stderr[-2000:]
    index = folder / "reports" / "grid" / "index.html"
    assert done.stdout.strip() == f"report: {index.relative_to(folder)}"
    sources, links = html_sources(index)
    assert sorted(sources) == ["curves.png", "knobs.png"]  # two keys: no parallel coordinates
    for source in sources:  # relative, and there
        assert (index.parent / source).is_file() and (index.parent / source).stat().st_size > 0
    assert not links and "http" not in index.read_text().replace("http-equiv", "")
    text = index.read_text()
    for expid in grid_params(tuner_yaml):
        assert expid in text
    assert sorted(p.name for p in (folder / "reports").iterdir()) == ["grid"]  # no temp left


@pytest.mark.slow
def test_a_grid_with_a_failed_run_still_reports(small_data, tmp_path, monkeypatch):
    # a learning rate of 1e30 passes the value checks and diverges at the second batch
    tuner_yaml = write_tuner_config(tmp_path, small_data, {
        "epochs": 1, "batch_size": 512, "eval_steps": 2, "learning_rate": [3.e-3, 1.e+30]},
        name="grid.yaml")
    done = tune_cli(tmp_path, tuner_yaml, "--report")
    assert done.returncode == 2 and "run(s) failed" in done.stderr
    assert "report: reports/grid/index.html" in done.stdout
    params = grid_params(tuner_yaml)
    good = next(e for e, p in params.items() if p["learning_rate"] == 3.e-3)
    bad = next(e for e, p in params.items() if p["learning_rate"] == 1.e+30)
    text = (tmp_path / "reports" / "grid" / "index.html").read_text()
    assert re.search(rf"{bad}</code></td><td[^>]*>failed \(exit 2\)<", text)
    monkeypatch.chdir(tmp_path)
    _, images, _, report, _ = build_report(tuner_yaml)
    assert [line.get_gid() for line in images["curves"].axes[0].get_lines()] == [good]
    assert {r.expid: r.status for r in report.runs} == {good: "ok", bad: "failed (exit 2)"}
    # a run that a live process is training is shown as running
    with FileLock(RunPaths(params[good]).lock, "test"):
        _, _, _, report, _ = build_report(tuner_yaml)
    assert {r.expid: r.status for r in report.runs}[good] == "running"


def test_item_embedding_results_are_plotted_with_their_seed_spread(tmp_path):
    from src.item_embedding.evaluate import sort_rows, write_tables
    rows = [{"file": f"{m}.parquet", "method": m, "recall@10": r10, "recall@50": r50,
             "queries": 500, "din_auc": auc, "din_std": std, "din_seeds": 2}
            for m, r10, r50, auc, std in (("contrastive", 0.02, 0.10, 0.82, 0.003),
                                          ("pca_concat", 0.03, 0.05, 0.71, 0.010),
                                          ("random", 0.01, 0.03, 0.66, 0.020))]
    work = tmp_path / "runs" / "item_embedding"
    csv_path, _ = write_tables(sort_rows(rows), work, "protocol")
    (work / "x_tuner_config").mkdir()
    assert detect_item_embedding(work / "x_tuner_config") == csv_path
    _, images, _, _, _ = build_report(item_embedding=csv_path)
    ax_auc, ax_recall = images["item_embedding"].axes
    (errorbar,) = ax_auc.containers
    line, _, (bars,) = errorbar.lines  # points, caps, the x error bars
    assert line.get_gid() == "din_auc"
    assert list(line.get_xdata()) == [0.82, 0.71, 0.66]  # best first
    bars = bars.get_segments()
    assert [s[1][0] - s[0][0] for s in bars] == pytest.approx([0.006, 0.020, 0.040])
    widths = {gid: [p.get_width() for p in ax_recall.patches if p.get_gid() == gid]
              for gid in ("recall@10", "recall@50")}
    assert widths == {"recall@10": [0.02, 0.03, 0.01], "recall@50": [0.10, 0.05, 0.03]}
    assert [t.get_text() for t in ax_auc.get_yticklabels()] == ["contrastive", "pca_concat",
                                                                "random"]
    # a proxy-only table: the proxy panel alone
    write_tables([{k: v for k, v in r.items() if not k.startswith("din")} for r in rows], work,
                 "protocol")
    _, images, _, _, _ = build_report(item_embedding=csv_path)
    assert len(images["item_embedding"].axes) == 1


def test_bad_input_gets_one_error_line_and_writes_nothing(small_data, tmp_path):
    done = report_cli(tmp_path, "--config", tmp_path / "nosuch")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --config ")
    tuner_yaml = write_tuner_config(tmp_path, small_data, name="grid.yaml")
    done = report_cli(tmp_path, "--config", tuner_yaml)  # the grid folder is not written yet
    assert done.returncode == 2 and "run_param_tuner.py --config" in done.stderr
    from src.tuning.tuner import expand_grid
    config_dir, _ = expand_grid(tuner_yaml)
    done = report_cli(tmp_path, "--config", config_dir)  # written, never run
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: nothing to report for ")
    assert "Traceback" not in done.stderr and not (tmp_path / "reports").exists()


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
