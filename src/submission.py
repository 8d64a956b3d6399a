"""Write and check Codabench submission zips for the MM-CTR challenge.

The leaderboard wants a zip holding one file, prediction.csv, at its root, with the header
`ID,Task1`, `ID,Task2` or `ID,Task1,Task2` and one row per test row in the test file's order.
A wrong header is not rejected: the missing task column silently scores 0. So
`check_submission` refuses everything the scorer would misread, and `write_submission` refuses
bad scores before it writes anything and never leaves a half-written file behind.

    python -m src.submission submission/x.zip --test data/MicroLens_1M_x1/test.parquet

prints the zip's manifest (src/manifest.py: members, averaging rule, validation AUC, test file)
when prediction.py wrote one beside it, then the check's verdict.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from src.atomic import atomic_write
from src.cli import make_parser, run_main
from src.errors import SubmissionError
from src.manifest import audit_lines, read_manifest

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

# --- defaults ------------------------------------------------------------------------------
MEMBER = "prediction.csv"
TASKS = ("Task1", "Task2")  # column order in written files: Task1 then Task2
# Eight decimals keep AUC ties negligible and the csv small (~9 MB for 379,142 rows, 2 tasks).
FLOAT_FORMAT = "%.8f"
DEFAULT_TEST = "./data/MicroLens_1M_x1/test.parquet"  # the baseline config's test_data


# --- writing -------------------------------------------------------------------------------
def _checked_scores(ids, scores):
    """Validate ids and scores; return (int64 ids, {task: float64 scores}) in Task1, Task2 order."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise SubmissionError(f"ids must be a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}. "
                              "Fix: pass the test file's ID column")
    if not isinstance(scores, dict) or not scores:
        raise SubmissionError(f"scores must be a non-empty dict like {{'Task2': array}}, got {type(scores).__name__}. "
                              "Fix: key the predictions by task name")
    unknown = [k for k in scores if k not in TASKS]
    if unknown:
        raise SubmissionError(f"unknown task key {unknown[0]!r}; allowed: {', '.join(TASKS)}. "
                              "Fix: key the predictions by Task1 (item embedding track) or Task2 (CTR model track)")
    checked = {}
    for task in (t for t in TASKS if t in scores):
        try:
            values = np.asarray(scores[task], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise SubmissionError(f"{task} scores are not numbers ({e}). Fix: pass predicted probabilities") from e
        if values.shape != ids.shape:
            raise SubmissionError(f"{task} has {values.size} scores for {ids.size} IDs. "
                                  "Fix: predict every test row exactly once, in file order")
        bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SubmissionError(f"{task} score at position {i} (ID {ids[i]}) is {values[i]}, "
                                  "not a probability in [0, 1]. Fix: apply the sigmoid and check the "
                                  "model for NaN outputs")
        checked[task] = values
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise SubmissionError(f"ID {unique[counts > 1][0]} appears {counts[counts > 1][0]} times. "
                              "Fix: pass each test row's ID once, from the test file's ID column")
    return ids.astype(np.int64), checked


def submission_name(expids: Iterable[str]) -> str:
    """The file name of a submission: the expid, or for an ensemble
    `ensemble<K>_<md5 of the sorted expids>` (expids are long; the log lists the members)."""
    expids = list(expids)
    if len(expids) == 1:
        return expids[0]
    digest = hashlib.md5(",".join(sorted(expids)).encode("utf-8")).hexdigest()[:8]
    return f"ensemble{len(expids)}_{digest}"


def write_submission(ids: ArrayLike, scores: Mapping[str, ArrayLike], out_dir: Path | str,
                     name: str) -> Path:
    """Write out_dir/<name>/prediction.csv and out_dir/<name>.zip (prediction.csv at its
    root): each submission keeps its own csv, so two predictions never overwrite each other.

    ids: test IDs in file order; scores: {"Task1": array} and/or {"Task2": array}.
    Both files are written to temporary names in out_dir and renamed into place, so a crash
    leaves either the old files or the complete new ones. Returns the zip's path.
    """
    ids, checked = _checked_scores(ids, scores)
    name = str(name)
    if name.endswith(".zip"):
        name = name[: -len(".zip")]
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        raise SubmissionError(f"name={name!r} is not a plain file name. "
                              "Fix: pass a name such as 'din_task2' and put folders in out_dir")
    out_dir = Path(out_dir)
    csv_dir = out_dir / name
    made_dir = not csv_dir.exists()
    csv_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{name}.zip"
    try:
        # both written before either is renamed: the csv first, then the zip (the inner block
        # ends first); an error removes both temporary files
        with atomic_write(zip_path) as tmp_zip:
            with atomic_write(csv_dir / MEMBER) as tmp_csv:
                frame = pd.DataFrame({"ID": ids, **checked})
                frame.to_csv(tmp_csv, index=False, float_format=FLOAT_FORMAT)
                with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    zf.write(tmp_csv, arcname=MEMBER)
    except BaseException as err:
        if made_dir:
            try:
                csv_dir.rmdir()
            except OSError:
                pass
        if isinstance(err, OSError):  # disk full, file size limit, quota: the user's to fix
            raise SubmissionError(f"cannot write the submission {out_dir / name}.zip: "
                                  f"{err.strerror or err}; nothing was written (the previous "
                                  f"files, if any, are kept). Fix: free disk space in {out_dir} "
                                  f"or pass --out a folder with room") from None
        raise
    logger.info("wrote %s: %d rows, %s", zip_path, len(ids), ",".join(["ID", *checked]))
    return zip_path


# --- checking ------------------------------------------------------------------------------
def _header_problem(header):
    """Return (problem, fix) for a bad header, or None when it is ID plus Task1 and/or Task2."""
    expected = "ID,Task1 / ID,Task2 / ID,Task1,Task2"
    write_fix = f"write the header exactly as {expected} (pandas: to_csv(path, index=False))"
    if not header or header[0] != "ID":
        first = header[0] if header else ""
        if first in ("", "Unnamed: 0") or "ID" in header[1:]:
            return (f"header {','.join(header)!r} starts with an index column", "write the csv with index=False")
        if first.strip().lower().lstrip("\ufeff") == "id":
            return (f"first column is {first!r}, expected 'ID' (exact case, no spaces or BOM)", write_fix)
        return (f"first column is {first!r}, expected 'ID'", write_fix)
    tasks = header[1:]
    if not tasks:
        return ("header has no score column", write_fix)
    for col in tasks:
        if col not in TASKS:
            near = [t for t in TASKS if t.lower() == col.strip().lower()]
            hint = f" (did you mean {near[0]!r}? case and spaces matter)" if near else ""
            return (f"column {col!r} is not a task column{hint}; allowed: {', '.join(TASKS)}; "
                    "a misnamed column scores 0", write_fix)
    if len(set(tasks)) != len(tasks):
        return (f"header {','.join(header)!r} repeats a task column", write_fix)
    return None


def _read_member(zip_path):
    """Bytes of the single prediction.csv in the zip, after checking the zip's layout."""
    zip_fix = f"zip the file alone at the root: zip -j -X {zip_path.name} {MEMBER}"
    if not zip_path.is_file():
        raise SubmissionError(f"{zip_path}: file not found. Fix: pass the path of the submission zip")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            if len(names) != 1:
                listed = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
                raise SubmissionError(f"{zip_path}: holds {len(names)} entries ({listed or 'none'}), "
                                      f"expected only {MEMBER}. Fix: {zip_fix}")
            if names[0] != MEMBER:
                if names[0].rsplit("/", 1)[-1] == MEMBER:
                    problem = f"{MEMBER} is inside a folder ({names[0]!r}), not at the zip root"
                else:
                    problem = f"holds {names[0]!r}, expected a file named {MEMBER}"
                raise SubmissionError(f"{zip_path}: {problem}. Fix: {zip_fix}")
            return zf.read(MEMBER)
    except (zipfile.BadZipFile, OSError) as e:
        raise SubmissionError(f"{zip_path}: not a readable zip ({e}). Fix: {zip_fix}") from e


def _test_ids(test_path):
    test_path = Path(test_path)
    if not test_path.is_file():
        raise SubmissionError(f"test file {test_path} not found. Fix: pass --test with the test parquet")
    try:
        if "ID" not in pq.read_schema(test_path).names:
            raise SubmissionError(f"test file {test_path} has no ID column. "
                                  "Fix: pass the challenge's test.parquet, whose first column is ID")
        return pq.read_table(test_path, columns=["ID"]).column("ID").to_numpy()
    except (pa.ArrowException, OSError) as e:
        raise SubmissionError(f"test file {test_path} is not a readable parquet file ({e})") from e


def _describe_score(text):
    """Why one score string is not a probability (only called for the first bad row)."""
    try:
        value = float(text)
    except ValueError:
        return f"{text!r} is not a number"
    if np.isnan(value):
        return "score is NaN"
    if np.isinf(value):
        return f"score is {text} (infinite)"
    return f"score {text} is outside [0, 1]"


def check_submission(zip_path: Path | str, test_path: Path | str) -> str:
    """Check a submission zip against the test parquet; return a one-line verdict.

    Raises SubmissionError naming the zip, the problem, the first bad data row (1-based, the
    line after the header being row 1) and the fix.
    """
    zip_path = Path(zip_path)
    data = _read_member(zip_path)
    where = f"{zip_path}: {MEMBER}"
    try:
        first_line = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError as e:
        raise SubmissionError(f"{where}: header is not UTF-8 text ({e}). Fix: write a plain UTF-8 csv") from e
    header = next(csv.reader([first_line]), [])
    problem = _header_problem(header)
    if problem:
        raise SubmissionError(f"{where}: {problem[0]}. Fix: {problem[1]}")

    # Read every column as text, so that a bad value is reported by row instead of failing
    # deep inside the csv parser; the conversions below are vectorised.
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in header},
                                                 strings_can_be_null=False))
    except pa.ArrowInvalid as e:
        raise SubmissionError(f"{where}: cannot parse the csv ({e}). "
                              "Fix: write it with pandas to_csv(index=False)") from e

    expected_ids = _test_ids(test_path)
    n_rows, n_test = table.num_rows, len(expected_ids)
    if n_rows != n_test:
        raise SubmissionError(f"{where}: {n_rows:,} data rows, but the test file {test_path} has "
                              f"{n_test:,}. Fix: predict every test row exactly once")

    id_text = table.column("ID").combine_chunks()
    is_int = pc.match_substring_regex(id_text, r"^\s*-?[0-9]+\s*$").to_numpy(zero_copy_only=False)
    if not is_int.all():
        row = int(np.flatnonzero(~is_int)[0])
        raise SubmissionError(f"{where}: data row {row + 1}: ID {id_text[row].as_py()!r} is not an integer. "
                              "Fix: copy the IDs from the test file's ID column")
    ids = pc.cast(pc.utf8_trim_whitespace(id_text), pa.int64()).to_numpy()
    if not np.array_equal(ids, expected_ids):
        row = int(np.flatnonzero(ids != expected_ids)[0])
        same_set = np.array_equal(np.sort(ids), np.sort(expected_ids))
        why = "the same IDs in another order" if same_set else "IDs that differ from the test file"
        raise SubmissionError(f"{where}: data row {row + 1}: ID {ids[row]}, expected {expected_ids[row]} "
                              f"({why}). Fix: keep the test file's row order (prediction order = file order)")

    ranges = []
    for task in header[1:]:
        text = table.column(task).combine_chunks()
        try:
            scores = pc.cast(text, pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            # Some value is not a number: parse leniently so the bad row can be named below.
            scores = pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)), errors="coerce").to_numpy()
        bad = ~(np.isfinite(scores) & (scores >= 0) & (scores <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SubmissionError(f"{where}: data row {row + 1}: column {task}: "
                                  f"{_describe_score(text[row].as_py())}. "
                                  "Fix: write probabilities in [0, 1] (apply the sigmoid, check for NaN)")
        ranges.append((scores.min(), scores.max()))
    for task, (low, high) in zip(header[1:], ranges):
        if n_test > 1 and low == high:
            raise SubmissionError(f"{where}: column {task}: every row has the score {low:g}: a "
                                  "constant column ranks nothing (AUC 0.5), the sign of a broken "
                                  "model (damaged or zeroed weights). Fix: check the model's "
                                  "checkpoint and retrain it")
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    return (f"OK: {zip_path}: {MEMBER} with {','.join(header)} for {n_test:,} test rows, "
            f"scores in [{lo:.4g}, {hi:.4g}]")


def score_submission(zip_path: Path | str, truth_path: Path | str) -> dict[str, float]:
    """{task: test AUC} of a checked submission against a ground-truth parquet with ID and
    label columns (the generator writes one: <data>/ground_truth/test_truth.parquet), plus
    "best" (the AUC of its true click probabilities) when the file has click_prob."""
    from sklearn.metrics import roc_auc_score
    check_submission(zip_path, truth_path)  # same IDs in the same order, valid scores
    truth = pq.read_table(truth_path).to_pandas()
    if "label" not in truth:
        raise SubmissionError(f"truth file {truth_path} has no label column. Fix: pass the "
                              f"ground truth (e.g. <data>/ground_truth/test_truth.parquet)")
    frame = pd.read_csv(io.BytesIO(_read_member(Path(zip_path))))
    aucs = {task: roc_auc_score(truth["label"], frame[task]) for task in frame.columns[1:]}
    if "click_prob" in truth:
        aucs["best"] = roc_auc_score(truth["label"], truth["click_prob"])
    return aucs


def _manifest_test(manifest):
    """The test file a manifest names, if it is still there."""
    path = ((manifest or {}).get("test_file") or {}).get("path")
    return path if path and Path(path).is_file() else None


def main(argv: list[str] | None = None) -> None:
    """python -m src.submission ZIP [--test T] [--truth P]: one line and exit 2 on a bad zip."""
    run_main(_main, argv)


def _main(argv):
    parser = make_parser(
        "Check a submission zip before uploading it, after printing its manifest (the members "
        "and validation AUC of an ensemble); with --truth, also score it offline.", [
            "python -m src.submission submission/ensemble3_20af7ce4.zip",
            "python -m src.submission submission/x.zip --test data/MicroLens_1M_x1/test.parquet",
            "python -m src.submission submission/x.zip --truth data/demo/ground_truth/"
            "test_truth.parquet"], prog="python -m src.submission")
    parser.add_argument("zip", help="the submission zip")
    parser.add_argument("--test", help=f"test parquet (unset: the one the manifest names, if it "
                        f"is there, else {DEFAULT_TEST})")
    parser.add_argument("--truth", help="ground-truth parquet (ID, label[, click_prob]) of "
                        "generated data: prints the submission's test AUC")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = read_manifest(args.zip)
    test = args.test or _manifest_test(manifest) or DEFAULT_TEST
    for line in audit_lines(args.zip, manifest, test):
        print(line)
    if args.truth:
        aucs = score_submission(args.zip, args.truth)
        best = aucs.pop("best", None)
        print(f"test AUC of {args.zip}: " + ", ".join(f"{t} {a:.4f}" for t, a in aucs.items())
              + (f" (best achievable {best:.4f}, the AUC of the true click probabilities)"
                 if best is not None else ""))
        return
    print(check_submission(args.zip, test))


if __name__ == "__main__":
    main()
