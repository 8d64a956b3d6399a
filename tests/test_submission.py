"""write_submission and check_submission on a tiny test file: a good zip, then one defect per test."""

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.errors import SubmissionError, UserError
from src.submission import check_submission, write_submission

REPO = Path(__file__).resolve().parents[1]
N = 200


@pytest.fixture
def test_file(tmp_path):
    """A test parquet whose IDs are not sorted, so that order mistakes show."""
    ids = np.random.default_rng(0).permutation(N).astype(np.int64)
    path = tmp_path / "test.parquet"
    pq.write_table(pa.table({"ID": ids, "item_id": np.arange(N, dtype=np.int64) % 7 + 1}), path)
    return path, ids


def _scores(n=N):
    return np.random.default_rng(1).uniform(0.01, 0.99, size=n)


def _zip(path, members):
    """A zip holding members {name: text}, as a user's own tools might produce it."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _csv(header, ids, scores):
    rows = [header] + [f"{i},{s}" for i, s in zip(ids, scores)]
    return "\n".join(rows) + "\n"


# --- writing -------------------------------------------------------------------------------
def test_write_then_check_passes(tmp_path, test_file):
    path, ids = test_file
    zip_path = write_submission(ids, {"Task2": _scores()}, tmp_path / "sub", "din_task2")
    assert zip_path == tmp_path / "sub" / "din_task2.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == ["prediction.csv"]
        lines = zf.read("prediction.csv").decode().splitlines()
    assert lines[0] == "ID,Task2" and len(lines) == N + 1
    assert lines[1].startswith(f"{ids[0]},0.")
    # each submission keeps its own csv: submission/<name>/prediction.csv
    assert (tmp_path / "sub" / "din_task2" / "prediction.csv").read_text().splitlines() == lines
    verdict = check_submission(zip_path, path)
    assert verdict.startswith(f"OK: {zip_path}: prediction.csv with ID,Task2 for {N} test rows")
    assert "scores in [0.01" in verdict


def test_both_tasks_are_written_task1_first(tmp_path, test_file):
    path, ids = test_file
    zip_path = write_submission(ids, {"Task2": _scores(), "Task1": _scores() / 2}, tmp_path, "both.zip")
    assert zip_path.name == "both.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.read("prediction.csv").decode().splitlines()[0] == "ID,Task1,Task2"
    assert "ID,Task1,Task2" in check_submission(zip_path, path)


def test_scores_keep_eight_decimals(tmp_path):
    write_submission(np.array([0, 1]), {"Task1": np.array([0.123456789, 1e-9])}, tmp_path, "x")
    assert (tmp_path / "x" / "prediction.csv").read_text().splitlines()[1:] == ["0,0.12345679", "1,0.00000000"]


@pytest.mark.parametrize("scores, message", [
    ({"Task2": np.r_[_scores(N - 1), np.nan]}, "not a probability"),
    ({"Task2": np.r_[1.5, _scores(N - 1)]}, "not a probability"),
    ({"Task2": np.r_[-np.inf, _scores(N - 1)]}, "not a probability"),
    ({"Task2": _scores(N - 1)}, f"{N - 1} scores for {N} IDs"),
    ({"Task3": _scores()}, "unknown task key 'Task3'"),
    ({}, "non-empty dict"),
])
def test_write_refuses_bad_scores_before_writing(tmp_path, test_file, scores, message):
    out = tmp_path / "sub"
    with pytest.raises(SubmissionError, match=message):
        write_submission(test_file[1], scores, out, "x")
    assert not out.exists()


def test_write_refuses_duplicate_ids(tmp_path):
    with pytest.raises(SubmissionError, match="ID 3 appears 2 times"):
        write_submission(np.array([1, 3, 3]), {"Task1": np.full(3, 0.5)}, tmp_path / "sub", "x")
    assert not (tmp_path / "sub").exists()


def test_write_refuses_path_as_name(tmp_path, test_file):
    with pytest.raises(SubmissionError, match="plain file name"):
        write_submission(test_file[1], {"Task2": _scores()}, tmp_path, "a/b")


def test_failed_zip_leaves_nothing_behind(tmp_path, test_file, monkeypatch):
    out = tmp_path / "sub"
    old = write_submission(test_file[1], {"Task2": np.full(N, 0.25)}, out, "x")
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken_write(self, *args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(zipfile.ZipFile, "write", broken_write)
    with pytest.raises(SubmissionError, match="disk full"):
        write_submission(test_file[1], {"Task2": np.full(N, 0.75)}, out, "x")
    with pytest.raises(SubmissionError, match="disk full"):
        write_submission(test_file[1], {"Task2": np.full(N, 0.75)}, out, "y")
    # The earlier complete files are untouched, no "y.zip" appeared, and no temp file is left.
    after = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(before) == [old.name, "x/prediction.csv"]


# --- checking ------------------------------------------------------------------------------
@pytest.mark.parametrize("header, message", [
    ("id,Task2", "first column is 'id', expected 'ID'"),
    ("ID,task2", "column 'task2' is not a task column (did you mean 'Task2'"),
    ("ID,Task3", "column 'Task3' is not a task column"),
    ("ID", "no score column"),
    ("ID,Task2,Task2", "repeats a task column"),
])
def test_wrong_header(tmp_path, test_file, header, message):
    path, ids = test_file
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": _csv(header, ids, _scores())})
    with pytest.raises(SubmissionError, match="header|column") as err:
        check_submission(zip_path, path)
    assert message in str(err.value) and str(zip_path) in str(err.value)


def test_index_column(tmp_path, test_file):
    path, ids = test_file
    text = ",ID,Task2\n" + "".join(f"{k},{i},0.5\n" for k, i in enumerate(ids))
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": text})
    with pytest.raises(SubmissionError, match="index column.*index=False"):
        check_submission(zip_path, path)


def test_wrong_row_count(tmp_path, test_file):
    path, ids = test_file
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": _csv("ID,Task2", ids[:-1], _scores())})
    with pytest.raises(SubmissionError, match=f"{N - 1} data rows.*has {N}"):
        check_submission(zip_path, path)


def test_wrong_id_order(tmp_path, test_file):
    path, ids = test_file
    shuffled = ids.copy()
    shuffled[[5, 9]] = shuffled[[9, 5]]
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": _csv("ID,Task2", shuffled, _scores())})
    with pytest.raises(SubmissionError) as err:
        check_submission(zip_path, path)
    # 0-based position 5 is data row 6.
    assert f"data row 6: ID {ids[9]}, expected {ids[5]} (the same IDs in another order)" in str(err.value)


def test_sorted_ids_are_wrong_when_test_is_not_sorted(tmp_path, test_file):
    path, ids = test_file
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": _csv("ID,Task2", np.sort(ids), _scores())})
    with pytest.raises(SubmissionError, match="another order"):
        check_submission(zip_path, path)


def test_non_integer_id(tmp_path, test_file):
    path, ids = test_file
    text = _csv("ID,Task2", ids, _scores()).replace(f"\n{ids[3]},", f"\n{ids[3]}.0,", 1)
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": text})
    with pytest.raises(SubmissionError, match="data row 4: ID .* is not an integer"):
        check_submission(zip_path, path)


@pytest.mark.parametrize("bad, message", [
    ("nan", "score is NaN"), ("NaN", "score is NaN"), ("1.5", "score 1.5 is outside [0, 1]"),
    ("-0.1", "outside"), ("inf", "infinite"), ("", "'' is not a number"), ("abc", "'abc' is not a number"),
])
def test_bad_score(tmp_path, test_file, bad, message):
    path, ids = test_file
    scores = [f"{s:.6f}" for s in _scores()]
    scores[9] = bad
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": _csv("ID,Task1,Task2", ids, [f"0.5,{s}" for s in scores])})
    with pytest.raises(SubmissionError) as err:
        check_submission(zip_path, path)
    assert "data row 10: column Task2" in str(err.value)
    assert message in str(err.value)


def test_two_files_in_zip(tmp_path, test_file):
    path, ids = test_file
    text = _csv("ID,Task2", ids, _scores())
    zip_path = _zip(tmp_path / "x.zip", {"prediction.csv": text, "__MACOSX/._prediction.csv": "x"})
    with pytest.raises(SubmissionError, match="holds 2 entries.*__MACOSX.*zip -j"):
        check_submission(zip_path, path)


def test_folder_prefix(tmp_path, test_file):
    path, ids = test_file
    zip_path = _zip(tmp_path / "x.zip", {"submission/prediction.csv": _csv("ID,Task2", ids, _scores())})
    with pytest.raises(SubmissionError, match="inside a folder"):
        check_submission(zip_path, path)


def test_wrong_member_name(tmp_path, test_file):
    path, ids = test_file
    zip_path = _zip(tmp_path / "x.zip", {"predictions.csv": _csv("ID,Task2", ids, _scores())})
    with pytest.raises(SubmissionError, match="expected a file named prediction.csv"):
        check_submission(zip_path, path)


def test_not_a_zip(tmp_path, test_file):
    zip_path = tmp_path / "x.zip"
    zip_path.write_text("ID,Task2\n")
    with pytest.raises(SubmissionError, match="not a readable zip"):
        check_submission(zip_path, test_file[0])


def test_test_file_without_id(tmp_path, test_file):
    path, ids = test_file
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"item_id": ids}), other)
    zip_path = write_submission(ids, {"Task2": _scores()}, tmp_path, "x")
    with pytest.raises(SubmissionError, match="has no ID column"):
        check_submission(zip_path, other)


def test_submission_error_is_a_user_error():
    assert issubclass(SubmissionError, UserError)


# --- command line --------------------------------------------------------------------------
def test_cli(tmp_path, test_file):
    path, ids = test_file
    good = write_submission(ids, {"Task2": _scores()}, tmp_path / "sub", "good")
    bad = _zip(tmp_path / "bad.zip", {"prediction.csv": _csv("ID,Task3", ids, _scores())})
    cmd = [sys.executable, "-m", "src.submission"]
    ok = subprocess.run(cmd + [str(good), "--test", str(path)], cwd=REPO, capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith("OK: ") and f"{N} test rows" in ok.stdout
    assert "no manifest" in ok.stdout.splitlines()[0]  # written by write_submission alone
    fail = subprocess.run(cmd + [str(bad), "--test", str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert fail.returncode == 2
    assert fail.stderr.startswith("error: ") and "Task3" in fail.stderr
    assert "Traceback" not in fail.stderr


def test_two_submissions_keep_their_own_csv(tmp_path, test_file):
    ids = test_file[1]
    write_submission(ids, {"Task2": np.full(N, 0.25)}, tmp_path, "a")
    write_submission(ids, {"Task2": np.full(N, 0.75)}, tmp_path, "b")
    assert (tmp_path / "a" / "prediction.csv").read_text().splitlines()[1].endswith(",0.25000000")
    assert (tmp_path / "b" / "prediction.csv").read_text().splitlines()[1].endswith(",0.75000000")


def test_truth_scores_a_submission_offline(tmp_path, test_file):
    """--truth prints the test AUC: checked here against roc_auc_score on the same numbers."""
    from sklearn.metrics import roc_auc_score
    path, ids = test_file
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, N)
    prob = np.clip(0.3 * labels + 0.7 * rng.random(N), 0, 1)
    truth = tmp_path / "test_truth.parquet"
    pq.write_table(pa.table({"ID": ids, "label": labels, "click_prob": prob}), truth)
    scores = np.clip(prob + 0.2 * rng.standard_normal(N), 0, 1)
    zip_path = write_submission(ids, {"Task2": scores}, tmp_path, "x")
    done = subprocess.run([sys.executable, "-m", "src.submission", str(zip_path), "--truth",
                           str(truth)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = roc_auc_score(labels, np.round(scores, 8))
    best = roc_auc_score(labels, prob)
    assert f"Task2 {expected:.4f} (best achievable {best:.4f}" in done.stdout
    # IDs in another order are refused, not scored
    shuffled = tmp_path / "shuffled.parquet"
    pq.write_table(pa.table({"ID": ids[::-1], "label": labels}), shuffled)
    refused = subprocess.run([sys.executable, "-m", "src.submission", str(zip_path), "--truth",
                              str(shuffled)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "error: " in refused.stderr and "order" in refused.stderr
