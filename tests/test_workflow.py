"""The user's day end to end, through the real command lines: tune, predict best, check zip."""
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from .conftest import REPO, write_tuner_config

# every test here tunes, predicts and zips through the command lines (docs/testing.md)
pytestmark = pytest.mark.slow


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        frame = pd.read_csv(io.BytesIO(z.read("prediction.csv")))
    return names, frame


def tune_and_predict(tmp_path, tuner):
    """Run the tuner (two CPU slots) and prediction with --expid best, as a user would."""
    tuned = run([str(REPO / "run_param_tuner.py"), "--config", str(tuner), "--gpu", "-1", "-1"],
                tmp_path)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    config_dir = tuner.with_suffix("")
    predicted = run([str(REPO / "prediction.py"), "--config", str(config_dir), "--expid", "best"],
                    tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    return config_dir, predicted


@pytest.fixture(scope="module")
def tuned(tiny_data, tmp_path_factory):
    """A two-point grid on the tiny data, tuned and predicted once for the tests below."""
    folder = tmp_path_factory.mktemp("workflow")
    data_dir, _ = tiny_data
    tuner = write_tuner_config(folder, data_dir, {"learning_rate": [3.e-3, 1.e-2],
                                                  "epochs": 1, "batch_size": 1024})
    config_dir, predicted = tune_and_predict(folder, tuner)
    return folder, config_dir, predicted


def test_tune_predict_best_and_submit(tiny_data, tuned):
    data_dir, _ = tiny_data
    folder, config_dir, predicted = tuned
    result_lines = (folder / f"{config_dir.name}.csv").read_text().splitlines()
    assert len(result_lines) == 2 and all("[val] AUC: " in line for line in result_lines)
    aucs = {line.split("[exp_id] ")[1].split(",")[0]: float(line.split("AUC: ")[1].split()[0])
            for line in result_lines}
    best = max(aucs, key=aucs.get)

    zip_path = folder / "submission" / f"{best}.zip"
    assert zip_path.exists(), predicted.stdout
    names, frame = read_zip(zip_path)
    test = pd.read_parquet(data_dir / "MicroLens_1M_x1" / "test.parquet")
    truth = pd.read_parquet(data_dir / "ground_truth" / "test_truth.parquet")
    assert names == ["prediction.csv"]
    assert list(frame.columns) == ["ID", "Task2"]
    assert len(frame) == len(test)
    assert np.array_equal(frame["ID"].to_numpy(), test["ID"].to_numpy())
    assert np.isfinite(frame["Task2"]).all() and frame["Task2"].between(0, 1).all()
    # scores in file order: they rank the generator's hidden test labels
    assert roc_auc_score(truth["label"], frame["Task2"]) > 0.6
    assert "OK" in predicted.stdout


def test_task1_and_both_columns(tuned):
    folder, config_dir, _ = tuned
    for tasks, header in ((["1"], ["ID", "Task1"]), (["1", "2"], ["ID", "Task1", "Task2"])):
        out = folder / f"out_{'_'.join(tasks)}"
        done = run([str(REPO / "prediction.py"), "--config", str(config_dir), "--expid", "best",
                    "--task", *tasks, "--out", str(out)], folder)
        assert done.returncode == 0, done.stderr[-2000:]
        names, frame = read_zip(next(out.glob("*.zip")))
        assert names == ["prediction.csv"] and list(frame.columns) == header


def write_foreign_dataset(folder, n_items=150, n_tags=40, seed=3):
    """A MicroLens-shaped dataset written the way a user might: pandas, Python lists, its own
    sizes and id ranges. Labels follow a rule the history reveals, so there is signal."""
    rng = np.random.default_rng(seed)
    split_dir = Path(folder) / "MicroLens_1M_x1"
    split_dir.mkdir(parents=True)
    group = rng.integers(0, 3, n_items + 1)

    def rows(n):
        users = rng.integers(1, 500, n)
        taste = rng.integers(0, 3, n)
        seqs, targets, labels = [], [], []
        for t in taste:
            length = rng.integers(2, 20)
            history = rng.choice(np.flatnonzero(group[1:] == t) + 1, length)
            seqs.append([0] * (64 - length) + history.tolist())
            target = int(rng.integers(1, n_items + 1))
            targets.append(target)
            labels.append(int(group[target] == t and rng.random() < 0.8))
        return pd.DataFrame({"user_id": users, "item_seq": seqs, "item_id": targets,
                             "likes_level": rng.integers(0, 10, n),
                             "views_level": rng.integers(0, 10, n), "label": labels})

    rows(3000).to_parquet(split_dir / "train.parquet")
    rows(600).to_parquet(split_dir / "valid.parquet")
    test = rows(700).drop(columns="label")
    test.insert(0, "ID", np.arange(len(test)))
    test.to_parquet(split_dir / "test.parquet")
    tags = [[0, 0, 0, 0, 0]] + [[0, 0] + rng.integers(1, n_tags, 3).tolist()
                                for _ in range(n_items)]
    emb = [[0.0] * 128] + [(rng.normal(size=128) + group[i]).tolist()
                           for i in range(1, n_items + 1)]
    pd.DataFrame({"item_id": np.arange(n_items + 1), "item_tags": tags,
                  "item_emb_d128": emb}).to_parquet(split_dir / "item_info.parquet")
    return n_items, n_tags


def test_baseline_format_config_runs_on_a_foreign_dataset(tmp_path):
    data_dir = tmp_path / "foreign"
    n_items, n_tags = write_foreign_dataset(data_dir)
    tuner = write_tuner_config(tmp_path, data_dir, {"epochs": 2, "learning_rate": 3.e-3,
                                                    "batch_size": 128})
    text = tuner.read_text().replace("vocab_size: 2001", f"vocab_size: {n_items + 1}") \
                            .replace("vocab_size: 200", f"vocab_size: {n_tags}")
    tuner.write_text(text)
    tune_and_predict(tmp_path, tuner)
    names, frame = read_zip(next((tmp_path / "submission").glob("*.zip")))
    assert names == ["prediction.csv"] and len(frame) == 700
    assert np.array_equal(frame["ID"].to_numpy(), np.arange(700))
