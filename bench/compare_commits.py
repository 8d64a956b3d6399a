"""Do two commits train and score bit-identically? A check for refactors, on one machine.

Usage: python bench/compare_commits.py A [B] [--work DIR]
  A, B: any git revisions (main~1, a branch, a sha); B defaults to the working tree (its
  tracked files, uncommitted changes included, through `git stash create`, which touches
  nothing), which is HEAD when the tree is clean.

What it does, the same for both commits:
1. checks the commit out into a temporary `git worktree` (removed afterwards), always at the
   same path, and runs in the same run folder, so that no path differs between the two sides;
2. generates the tiny data set (`python -m src.datagen --scale tiny --seed 0`) and hashes its
   files; commit A's, cut to its first rows (ROWS), is the data of both sides' runs;
3. runs the demo tuner config (config/DIN_demo_tuner_config.yaml of that commit) pointed at
   that data, shrunk to GRID (2 runs, 2 short epochs, deterministic: True, CPU, one thread):
   `python run_param_tuner.py --config bench.yaml --gpu -1`;
4. scores the test set with each run: `python prediction.py --config bench --expid E --gpu -1`.

Then it compares the generated files byte for byte and, per run (expid): the result line's
outcome (dataset_id, every validation metric, the fingerprint when src/tuning/fingerprint.py
is the same in both commits; not the time, command or run id), the evaluation history (epoch, step, train_loss, val_AUC,
val_logloss, lr of every evaluation, floats bit for bit; not the speeds and durations), the
number of epochs, the trained weights (sha256 of every tensor of the checkpoint's state_dict)
and the test score file prediction.csv byte for byte. It prints one table row per field
(field, A, B, equal?) and exits 0 only when every compared field is equal, 1 otherwise (also
when a side's tuner or prediction fails), 2 for a revision git does not know.
"""
import argparse
import contextlib
import csv
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from src.cli import run_main  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.tuning.results import parse_result_line  # noqa: E402

DEMO_CONFIG = "config/DIN_demo_tuner_config.yaml"
ROWS = {"train": 8192, "valid": 2048, "test": 1024}  # first rows of each split of tiny data
GRID = {"learning_rate": [3.e-3, 1.e-2], "batch_size": 1024, "epochs": 2,
        "early_stop_patience": 2, "deterministic": True, "verbose": 0}
HISTORY_FIELDS = ("epoch", "step", "train_loss", "val_AUC", "val_logloss", "lr")
# one thread, no GPU, no hash randomisation: what deterministic runs need besides their seed
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
       "PYTHONHASHSEED": "0"}
NOT_COMPARED = None  # the `equal` of a field whose definition differs between the commits


# --- comparing ---------------------------------------------------------------------------
def same(a, b) -> bool:
    """Equal bit for bit: floats by their 64-bit pattern (so 0.0 and -0.0 differ, and a NaN
    equals the same NaN), containers element by element, anything else by ==."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def compare(a: dict, b: dict, not_compared=()) -> list:
    """[(field, value in a, value in b, equal)] over the fields of both, in name order; a
    field missing on one side is unequal; fields in not_compared get equal=None."""
    rows = []
    for field in sorted(a.keys() | b.keys()):
        va, vb = a.get(field), b.get(field)
        equal = NOT_COMPARED if field in not_compared else (
            field in a and field in b and same(va, vb))
        rows.append((field, va, vb, equal))
    return rows


def all_equal(rows) -> bool:
    return all(equal is not False for *_, equal in rows)


def file_digest(path) -> str:
    """sha256 of a file's bytes: two files with equal digests are equal byte for byte."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_digest(checkpoint) -> str:
    """sha256 over every tensor of a checkpoint's state_dict (name, dtype, shape, bytes): the
    trained weights bit for bit, whatever else the file records (run id, config)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = saved.get("state_dict", saved)
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def result_outcomes(lines) -> dict:
    """{field: value} of the outcome of each run's latest result line: dataset_id, the
    validation metrics and the fingerprint; not its time, command or run id."""
    latest = {}
    for line in lines:
        record = parse_result_line(line)
        if record is not None:
            latest[record["exp_id"]] = record
    out = {}
    for expid, record in latest.items():
        out[f"{expid} dataset_id"] = record.get("dataset_id")
        out[f"{expid} fingerprint"] = record.get("fingerprint")
        for metric, value in record["val"].items():
            out[f"{expid} val {metric}"] = value
    return out


def history_outcome(path) -> tuple:
    """The evaluation history's compared columns, one tuple per evaluation, numbers parsed
    back from the file (written with repr, so every bit survives)."""
    with open(path, newline="") as f:
        return tuple(tuple(float(row[k]) if row[k] else None for k in HISTORY_FIELDS)
                     for row in csv.DictReader(f))


def outcomes(run_dir: Path) -> dict:
    """Everything compared of one side's run folder, as {field: value}."""
    run_dir = Path(run_dir)
    result_file = run_dir / "bench.csv"
    out = result_outcomes(result_file.read_text().splitlines() if result_file.exists() else [])
    for history in sorted(run_dir.glob("checkpoints/*/*.history.csv")):
        expid = history.name[: -len(".history.csv")]
        rows = history_outcome(history)
        out[f"{expid} history"] = rows
        out[f"{expid} epochs"] = int(rows[-1][0]) if rows else 0
        out[f"{expid} weights sha256"] = weights_digest(history.with_name(expid + ".model"))
    for scores in sorted(run_dir.glob("submission/*/prediction.csv")):
        out[f"{scores.parent.name} test scores sha256"] = file_digest(scores)
    return out


def shown(value) -> str:
    if isinstance(value, tuple):
        text = repr(value).encode()
        return f"{len(value)} rows, sha {hashlib.sha256(text).hexdigest()[:12]}"
    if isinstance(value, str) and len(value) == 64:
        return value[:16]  # a sha256: its start tells two apart
    return "-" if value is None else repr(value) if isinstance(value, float) else str(value)


def table(rows, name_a, name_b) -> str:
    cells = [("field", name_a, name_b, "equal?")] + [
        (field, shown(a), shown(b), "n/a (definition differs)" if equal is NOT_COMPARED
         else "yes" if equal else "NO") for field, a, b, equal in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in cells)


# --- running one side --------------------------------------------------------------------
def git(*args) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1]}. Fix: "
                        f"name a revision of this repository (git log --oneline)")
    return done.stdout.strip()


def resolve(revision) -> str:
    """The commit of a revision; None (the working tree) as a commit of its tracked files."""
    if revision is None:
        return git("stash", "create") or git("rev-parse", "HEAD")
    return git("rev-parse", "--verify", f"{revision}^{{commit}}")


@contextlib.contextmanager
def checkout(commit, path):
    git("worktree", "add", "--detach", str(path), commit)
    try:
        yield Path(path)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                       capture_output=True)


def run(args, cwd, what) -> None:
    env = dict(os.environ, **ENV)
    done = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SideFailed(f"{what} exited {done.returncode}:\n{done.stderr[-3000:]}")


class SideFailed(Exception):
    """A side's generator, tuner or prediction failed: the commits cannot be compared."""


def generate(code: Path, out: Path) -> dict:
    """The tiny data set by this commit's generator into out; {field: sha256} of its files."""
    run(["-m", "src.datagen", "--scale", "tiny", "--seed", "0", "--out", out, "--quiet"],
        code, "the generator")
    return {f"data {path.relative_to(out)} sha256": file_digest(path)
            for path in sorted(out.rglob("*")) if path.is_file()}


def cut(full: Path, data: Path) -> Path:
    """The first ROWS rows of each split of the generated data, and its whole item_info."""
    (data / "MicroLens_1M_x1").mkdir(parents=True)
    for split, rows in ROWS.items():
        pd.read_parquet(full / "MicroLens_1M_x1" / f"{split}.parquet").head(rows).to_parquet(
            data / "MicroLens_1M_x1" / f"{split}.parquet")
    shutil.copy(full / "MicroLens_1M_x1" / "item_info.parquet", data / "MicroLens_1M_x1")
    return data


def write_tuner_config(code: Path, run_dir: Path, data: Path) -> Path:
    config = yaml.safe_load((code / DEMO_CONFIG).read_text())
    config["base_config"] = str(code / "config" / "din_config") + "/"
    (dataset,) = config["dataset_config"].values()
    dataset["data_root"] = str(data) + "/"
    for key in ("train_data", "valid_data", "test_data", "item_info"):
        dataset[key] = str(data / "MicroLens_1M_x1" / Path(dataset[key]).name)
    config["tuner_space"].update(GRID)
    path = run_dir / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_side(code: Path, run_dir: Path, data: Path) -> None:
    run_dir.mkdir()
    tuner_yaml = write_tuner_config(code, run_dir, data)
    run([code / "run_param_tuner.py", "--config", tuner_yaml, "--gpu", "-1"], run_dir,
        "the tuner")
    with open(run_dir / "bench_summary.csv", newline="") as f:
        expids = sorted(row["expid"] for row in csv.DictReader(f))
    for expid in expids:
        run([code / "prediction.py", "--config", run_dir / "bench", "--expid", expid,
             "--gpu", "-1", "--out", run_dir / "submission"], run_dir, f"prediction of {expid}")


def measure(commits, work: Path) -> list:
    """Run both commits in turn at the same paths; [outcomes of A, outcomes of B]. Each
    commit generates the data (its files are compared); both train on commit A's."""
    code, run_dir, data, sides = work / "checkout", work / "run", None, []
    for side, commit in zip("AB", commits):
        with checkout(commit, code):
            print(f"{side}: {commit[:12]} generates, trains and scores ...", flush=True)
            full = work / f"generated_{side}"
            generated = generate(code, full)
            data = data or cut(full, work / "data")
            shutil.rmtree(full)
            try:
                run_side(code, run_dir, data)
            finally:
                run_dir.rename(work / f"run_{side}")
        sides.append({**generated, **outcomes(work / f"run_{side}")})
    return sides


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the first revision (e.g. main~1)")
    parser.add_argument("b", nargs="?", default=None,
                        help="the second revision (default: the working tree)")
    parser.add_argument("--work", help="a new folder for the checkouts, data and runs, kept "
                                       "afterwards (default: a temporary one, removed)")
    args = parser.parse_args()
    commits = [resolve(args.a), resolve(args.b)]
    names = [args.a, args.b or "working tree"]
    names = [f"A {names[0]} ({commits[0][:8]})", f"B {names[1]} ({commits[1][:8]})"]
    if args.work and Path(args.work).exists() and any(Path(args.work).iterdir()):
        raise UserError(f"--work {args.work} is not empty. Fix: name a new folder")
    work = Path(args.work or tempfile.mkdtemp(prefix="compare_commits_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        try:
            a, b = measure(commits, work)
        except SideFailed as err:
            print(f"not comparable: {err}", file=sys.stderr)
            sys.exit(1)
        same_fingerprint = not subprocess.run(
            ["git", "-C", str(REPO), "diff", "--quiet", commits[0], commits[1], "--",
             "src/tuning/fingerprint.py"]).returncode
        skip = () if same_fingerprint else [f for f in a.keys() | b.keys()
                                           if f.endswith(" fingerprint")]
        rows = compare(a, b, not_compared=skip)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows, *names))
    equal = all_equal(rows)
    print(f"all equal ({sum(e is True for *_, e in rows)} fields)" if equal else
          f"DIFFERENT: {sum(e is False for *_, e in rows)} of {len(rows)} fields differ")
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    run_main(main)
