"""Writing and reading the item_info files this package builds.

A built file is a complete item_info: item_id (int64, equal to the row number), item_tags
(copied unchanged from the release's item_info) and item_emb_d128 (list<float64>, 128 per
row), row 0 the all-zero padding item. How it was made (method, seed, options, scaling,
held-out users) is stored as JSON in the parquet schema metadata under `item_embedding`,
so an evaluation table can name the method of any file without a side file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_write
from ..data.files import check_ids_are_row_numbers, list_column_to_2d, read_table, scalar_column
from ..errors import DataError

EMB_COLUMN = "item_emb_d128"
EMB_DIM = 128
META_KEY = b"item_embedding"


def write_item_info(path: Path | str, tags: pa.Array, embedding: np.ndarray,
                    metadata: dict[str, Any]) -> Path:
    """Write atomically (temporary file, then rename): a crash never leaves half a file
    where a config expects a complete one."""
    n_rows, dim = embedding.shape
    if len(tags) != n_rows:
        raise ValueError(f"item_tags has {len(tags)} rows but the embedding has {n_rows}")
    if dim != EMB_DIM or np.any(embedding[0] != 0) or not np.isfinite(embedding).all():
        raise ValueError("embedding must be finite, (N + 1, 128), with an all-zero row 0")
    offsets = pa.array(np.arange(0, n_rows * dim + 1, dim, dtype=np.int32))
    values = pa.array(np.ascontiguousarray(embedding, np.float64).reshape(-1), pa.float64())
    table = pa.table({
        "item_id": pa.array(np.arange(n_rows, dtype=np.int64)),
        "item_tags": tags,
        EMB_COLUMN: pa.ListArray.from_arrays(offsets, values),
    })
    return write_parquet_atomically(table, META_KEY, metadata, path)


def write_parquet_atomically(table: pa.Table, meta_key: bytes, metadata: dict[str, Any],
                             path: Path | str) -> Path:
    """Write table with metadata (JSON under meta_key in the schema metadata) to a
    temporary file, then rename it to path."""
    table = table.replace_schema_metadata({meta_key: json.dumps(metadata).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        pq.write_table(table, tmp, use_dictionary=False)
    return path


def open_item_file(path: str | Path, columns: list[str], not_found_fix: str, column_fix: str,
                   unreadable_fix: str | None = None) -> pq.ParquetFile:
    """pq.ParquetFile of path, which must hold columns; a missing or unreadable file, or the
    first missing column, is a DataError with the fix given for it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", fix=not_found_fix)
    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(path, f"not a readable parquet file ({err})", fix=unreadable_fix) from None
    names = pfile.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(path, f"missing column; found {names}", column=missing[0], fix=column_fix)
    return pfile


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The build metadata of an item_info file, or {} for a file we did not build."""
    meta = pq.read_schema(path).metadata or {}
    try:
        return json.loads(meta[META_KEY]) if META_KEY in meta else {}
    except ValueError:
        return {}


def read_embedding(path: Path | str) -> np.ndarray:
    """(N + 1, dim) float32 embedding of any item_info file, checked: item_id == row,
    no NaN/inf."""
    path = Path(path)
    pfile = open_item_file(path, ["item_id", EMB_COLUMN],
                           not_found_fix="build it first: python -m src.item_embedding build "
                                         "--method ... --out FILE",
                           unreadable_fix="pass an item_info parquet file",
                           column_fix=f"pass an item_info parquet file (item_id, item_tags, "
                                      f"{EMB_COLUMN})")
    table = read_table(pfile, path, ["item_id", EMB_COLUMN])
    ids = scalar_column(table.column("item_id"), path, "item_id", np.int64)
    check_ids_are_row_numbers(ids, path)
    emb = list_column_to_2d(table.column(EMB_COLUMN), path, EMB_COLUMN, np.float32,
                            null_fix="rebuild the file: every item needs a full embedding "
                                     "(row 0, the padding item, all zeros)")
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(path, "embedding holds NaN or inf", column=EMB_COLUMN, row=row)
    return emb
