"""What made a checkpoint: a fingerprint of an experiment's settings and of the data it read.

Every checkpoint and every result line carries the fingerprint of the run that wrote it, and
the id of that run. Prediction loads a checkpoint only when its fingerprint equals the
result line it was picked by and the config being predicted: a checkpoint overwritten by
another config, by a capped run or by a retrain on other data is refused, not submitted.

The fingerprint hashes
- every param except bookkeeping (gpu, verbose, model_root, ...: src/params.BOOKKEEPING_KEYS),
  data paths included;
- each data file training reads (train, valid, item_info, item files named in
  feature_cols): its size and the hash of its parquet footer. The footer holds the schema,
  row counts, byte offsets and min/max statistics of every column chunk, so regenerated or
  edited data changes it, while a copy to another machine (new mtime, same bytes) does not.
The test file is left out, always: it is what a trained model scores, so a test file saved
again (other compression), or a new one, keeps every result and checkpoint; prediction checks
it against the config's features instead (a missing column is named there). Where training
also reads the test rows (`from_splits` levels, `vocab_size: auto` sizes), a test file with
other values may give the items other levels at prediction than in training, or a vocabulary
the checkpoint does not fit (refused then, naming the checkpoint). Result lines of configs
with `from_splits` written before this rule carry a fingerprint that covered the test file:
the tuner retrains those runs once.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import uuid
from pathlib import Path
from typing import Any

from ..params import BOOKKEEPING_KEYS

FOOTER_MAGIC = b"PAR1"


def data_files(params: dict[str, Any]) -> dict[str, str]:
    """{config key: path} of the parquet files a run reads: train, valid, item_info and item
    files named in feature_cols; the test file too when a feature takes values from the split
    rows (`from_splits`, item-side levels). The fingerprint leaves the test file out."""
    files = {key: params[key] for key in ("train_data", "valid_data", "item_info")
             if params.get(key)}
    for col in params.get("feature_cols") or []:
        if not isinstance(col, dict):
            continue
        for key, value in col.items():
            if isinstance(value, str) and value.endswith(".parquet"):
                files[f"{col.get('name')}.{key}"] = value
            if key == "from_splits" and params.get("test_data"):
                files["test_data"] = params["test_data"]
    return files


def file_signature(path: Path | str) -> str:
    """'size:footer-hash' of a parquet file, 'missing' when it does not exist."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size < 12:
                return f"{size}:short"
            f.seek(size - 8)
            footer_len, magic = struct.unpack("<i4s", f.read(8))
            if magic != FOOTER_MAGIC or not 0 < footer_len <= size - 12:
                f.seek(0)
                return f"{size}:{hashlib.sha256(f.read()).hexdigest()[:16]}"
            f.seek(size - 8 - footer_len)
            return f"{size}:{hashlib.sha256(f.read(footer_len)).hexdigest()[:16]}"
    except FileNotFoundError:
        return "missing"


def fingerprinted_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params that decide what a run trains (bookkeeping left out), as plain values."""
    return {k: v for k, v in sorted(params.items()) if k not in BOOKKEEPING_KEYS
            and k not in ("capped", "fingerprint", "run_id")}


def fingerprint_record(params: dict[str, Any],
                       signatures: dict[str, str] | None = None) -> dict[str, Any]:
    """{"fingerprint": hex digest, "params": ..., "files": {key: signature}} of an experiment.
    signatures: a cache {path: signature} shared across the experiments of a grid."""
    signatures = {} if signatures is None else signatures
    files = {}
    for key, path in sorted(data_files(params).items()):
        if key == "test_data":  # not part of a run's identity (module docstring)
            continue
        if path not in signatures:
            signatures[path] = file_signature(path)
        files[key] = f"{path} [{signatures[path]}]"
    content = {"params": json.loads(json.dumps(fingerprinted_params(params), default=str)),
               "files": files}
    text = json.dumps(content, sort_keys=True)
    return {"fingerprint": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], **content}


def fingerprint(params: dict[str, Any], signatures: dict[str, str] | None = None) -> str:
    return fingerprint_record(params, signatures)["fingerprint"]


def new_run_id() -> str:
    """An id for one run (time, host process, random): which run wrote a checkpoint."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def describe_difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """What differs between two fingerprint records (settings, then data files)."""
    diffs = []
    for part in ("params", "files"):
        old, new = saved.get(part) or {}, current.get(part) or {}
        diffs += [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}"
                  for k in sorted(set(old) | set(new)) if old.get(k, "<unset>") != new.get(k, "<unset>")]
    return "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
