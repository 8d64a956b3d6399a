"""The generator's parquet writing (src/data/generator.py): list columns, atomic table writes
and the train/valid/test row files with their item_seq prefixes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..atomic import atomic_write
from .gen_latent import ROW_CHUNK, SEQ_LEN


def list_array(flat: np.ndarray, offsets: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat))


def fixed_lists(matrix: np.ndarray) -> pa.ListArray:
    n, w = matrix.shape
    return list_array(matrix.reshape(-1), np.arange(0, n * w + 1, w, dtype=np.int32))


def write_table(table: pa.Table, path: Path, **kwargs: Any) -> None:
    """Write to a temporary name and rename, so a crash never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def row_seqs(hist: np.ndarray, user: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Last SEQ_LEN items of each row's history prefix, left-padded with 0."""
    pos = t[:, None] - SEQ_LEN + np.arange(SEQ_LEN)
    seq = hist[user[:, None], np.maximum(pos, 0)].astype(np.int64)
    seq[pos < 0] = 0
    return seq


def write_rows(path: Path, rows: dict[str, np.ndarray], hist: np.ndarray,
               items: dict[str, np.ndarray], with_label: bool, with_id: bool,
               progress: bool) -> None:
    fields = ([("ID", pa.int64())] if with_id else []) + [
        ("user_id", pa.int64()), ("item_seq", pa.list_(pa.int64())), ("item_id", pa.int64()),
        ("likes_level", pa.int64()), ("views_level", pa.int64())]
    fields += [("label", pa.int64())] if with_label else []
    schema = pa.schema(fields)
    n = rows["user"].size
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for lo in tqdm(range(0, n, ROW_CHUNK), desc=path.name, unit="chunk",
                       disable=not progress or n <= ROW_CHUNK):
            s = slice(lo, min(n, lo + ROW_CHUNK))
            item = rows["item"][s]
            cols = [np.arange(s.start, s.stop, dtype=np.int64)] if with_id else []
            cols += [rows["user"][s], fixed_lists(row_seqs(hist, rows["user"][s], rows["t"][s])),
                     item, items["likes"][item], items["views"][item]]
            cols += [rows["label"][s]] if with_label else []
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
