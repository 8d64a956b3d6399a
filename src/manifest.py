"""The manifest beside a submission zip: which runs went into it and how, so it can be audited.

prediction.py writes `<name>.manifest.json` beside `<name>.zip` (the zip itself must hold
prediction.csv alone: Codabench reads nothing else, and src.submission refuses extra members).
It records the members (expid, validation AUC, result line), the averaging rule, the
validation AUC of the submission, the test file it scored (size and sha256 of its bytes) and
the sha256 of the zip it describes, so a zip replaced later is told apart from the one the
manifest was written for. `python -m src.submission ZIP` prints it (format_manifest).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .atomic import atomic_write
from .errors import SubmissionError

SUFFIX = ".manifest.json"
VERSION = 1
# What each averaging rule does, in the words the manifest and the printout use.
RULES = {
    "single": "one model's scores as they are",
    "mean": "mean of the members' probabilities",
    "rank": "mean of the members' normalised ranks (rank/n, ties averaged)",
}


def manifest_path(zip_path: Path | str) -> Path:
    """x.zip -> x.manifest.json in the same folder."""
    zip_path = Path(zip_path)
    stem = zip_path.name[:-len(".zip")] if zip_path.name.endswith(".zip") else zip_path.name
    return zip_path.with_name(stem + SUFFIX)


def file_digest(path: Path | str) -> dict:
    """{"path", "size", "sha256"} of a file's bytes (read in 1 MiB blocks)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"path": str(path), "size": size, "sha256": digest.hexdigest()}


def build_manifest(zip_path: Path | str, members: list[dict], average: str, valid_auc: float | None,
                   test_file: Path | str, config_dir: Path | str, expid_args: list[str],
                   columns: list[str]) -> dict:
    """The manifest of a written zip. members: [{"expid", "valid_auc", "result_line_auc",
    "run"}] in the order they were chosen; average: "single", "mean" or "rank"; valid_auc:
    the submission's validation AUC (the ensemble's, or the single model's result line)."""
    zip_info = file_digest(zip_path)
    return {
        "version": VERSION,
        "zip": Path(zip_path).name,
        "zip_sha256": zip_info["sha256"],
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": str(config_dir),
        "expid_args": list(expid_args),
        "columns": list(columns),
        "average": average,
        "average_rule": RULES[average],
        "valid_auc": valid_auc,
        "members": members,
        "test_file": file_digest(Path(test_file).resolve()),
    }


def write_manifest(zip_path: Path | str, manifest: dict) -> Path:
    """Write manifest beside zip_path through a temporary file and a rename."""
    path = manifest_path(zip_path)
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return path


def read_manifest(zip_path: Path | str) -> dict | None:
    """The manifest beside zip_path, or None when there is none."""
    path = manifest_path(zip_path)
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SubmissionError(f"{path}: not a readable manifest ({e}). Fix: rerun prediction.py "
                              f"to write the zip and its manifest again, or delete {path}") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), list):
        raise SubmissionError(f"{path}: has no members list. Fix: rerun prediction.py to write "
                              f"the zip and its manifest again, or delete {path}")
    return manifest


def _auc(value):
    return "-" if value is None else f"{value:.6f}"


def format_manifest(manifest: dict) -> str:
    """The manifest as a few lines: what the zip is, its members, where its scores came from."""
    members = manifest["members"]
    if manifest.get("average") == "single" or len(members) == 1:
        head = (f"{manifest.get('zip')}: single model {members[0]['expid']}, validation AUC "
                f"{_auc(manifest.get('valid_auc'))}")
    else:
        best = max((m.get("valid_auc") for m in members if m.get("valid_auc") is not None),
                   default=None)
        head = (f"{manifest.get('zip')}: ensemble of {len(members)} "
                f"({manifest.get('average_rule')}), validation AUC "
                f"{_auc(manifest.get('valid_auc'))} (best member {_auc(best)})")
    width = max(len("member"), *(len(m["expid"]) for m in members))
    lines = [head, f"  {'member':<{width}}  validation AUC  result line AUC"]
    lines += [f"  {m['expid']:<{width}}  {_auc(m.get('valid_auc')):>14}  "
              f"{_auc(m.get('result_line_auc')):>15}" for m in members]
    test = manifest.get("test_file") or {}
    asked = " ".join(manifest.get("expid_args", []))
    lines.append(f"  config {manifest.get('config')} (--expid {asked}), columns "
                 f"{','.join(manifest.get('columns', []))}, written {manifest.get('written_utc')}")
    lines.append(f"  test file {test.get('path')}: {test.get('size', 0):,} bytes, "
                 f"sha256 {str(test.get('sha256'))[:16]}")
    return "\n".join(lines)


def audit_lines(zip_path: Path | str, manifest: dict | None,
                test_path: Path | str | None) -> list[str]:
    """What can be said of a zip beside its check: its manifest, whether the zip and the test
    file are still the ones it describes; for a zip without manifest, what its name tells."""
    zip_path = Path(zip_path)
    if manifest is None and not zip_path.is_file():
        return []  # the check says the zip is missing
    if manifest is None:
        name = zip_path.stem
        guess = (f"an ensemble of {name[len('ensemble'):].split('_')[0]} experiments (its members "
                 f"are only in the log of the prediction.py run that wrote it)"
                 if name.startswith("ensemble") else f"probably the single experiment {name}")
        return [f"{zip_path}: no manifest ({manifest_path(zip_path).name}): {guess}"]
    lines = [format_manifest(manifest)]
    if zip_path.is_file() and file_digest(zip_path)["sha256"] != manifest.get("zip_sha256"):
        lines.append(f"  warning: {zip_path} is not the zip this manifest describes (its sha256 "
                     f"differs): it was replaced after the manifest was written")
    test = manifest.get("test_file") or {}
    if test_path is not None and Path(test_path).is_file():
        now = file_digest(test_path)
        same = (now["size"], now["sha256"]) == (test.get("size"), test.get("sha256"))
        lines.append(f"  {test_path} now: " + (
            "the same bytes as the test file the zip was written for" if same else
            "NOT the test file the zip was written for (its size or sha256 differs)"))
    return lines
