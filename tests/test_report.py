"""What the runs did: the evaluation history of every run (also across a kill and resume, and as
TensorBoard scalars) and the report of a grid, read back from the figures' own data (the
figures and the page on made-up grids: test_report_figures.py).

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
from src.runs.lock import FileLock

from .conftest import REPO, run_cli, tune_cli, write_tuner_config
from .helpers import kill_mid_epoch

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
        if name == "killed":
            kill_mid_epoch(folder, config_dir, expid, log)
        done = run_cli("run_expid.py", "--config", config_dir, "--expid", expid, cwd=folder)
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
