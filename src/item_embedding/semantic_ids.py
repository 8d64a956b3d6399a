"""Semantic ids of items: residual k-means codes of an item embedding.

    python -m src.item_embedding semantic-ids --item-file PARQUET --column COL \
        --levels 3 --codes 64 --out OUT.parquet [--seed 0]

The 1st place's stated next step (arXiv:2505.03543): quantise the multimodal embedding into a
few discrete codes per item and embed those as extra categorical features, so items with
similar content share rows of small, well-trained tables. Level 1 clusters the vectors into K
centroids; level l clusters what the levels before left over (the residual), so the sum of an
item's L centroids approximates its vector ever more closely.

Input: any parquet with an `item_id` column and a column of equal-length float lists, e.g.
item_info.parquet's item_emb_d128 (row i = item i, row 0 the all-zero padding row, skipped)
or item_emb.parquet's item_emb_d128_v1 (rows in any order). Output: item_id (int64, the
input's items but 0, ascending) and sid_1 .. sid_L (int64 codes 1..K; 0 stays the padding id
of the categorical features that read them), written atomically, with how it was made (file,
column, levels, codes, seed, residual per level) as JSON in the schema metadata.
Deterministic for a seed: scikit-learn's KMeans (Lloyd, one k-means++ start) on one thread,
whatever the machine's core count.
"""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..data.files import list_column_to_2d, read_table, scalar_column
from ..errors import ConfigError, DataError
from .output import open_item_file, write_parquet_atomically

logger = logging.getLogger(__name__)

META_KEY = b"semantic_ids"
MAX_ITER = 50  # Lloyd iterations per level: 3 levels of 64 codes on 91,717 x 128 take ~8 s
ITEM_ID = "item_id"


def read_vectors(path: Path | str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(item ids (n,) int64 ascending, vectors (n, dim) float32) of every item but the padding
    item 0; each problem is one DataError naming file, column and (where it has one) row."""
    path = Path(path)
    pfile = open_item_file(path, [ITEM_ID, column],
                           not_found_fix="pass --item-file an item_info.parquet or "
                                         "item_emb.parquet file",
                           column_fix="pass --column one of the file's embedding columns (a file "
                                      "keyed by item_id: item_info or item_emb)")
    schema = pfile.schema_arrow
    if not pa.types.is_integer(schema.field(ITEM_ID).type):
        raise DataError(path, f"has type {schema.field(ITEM_ID).type}, expected int64 ids",
                        column=ITEM_ID, fix="write item ids as int64")
    typ = schema.field(column).type
    value_type = getattr(typ, "value_type", None)
    if value_type is None or not pa.types.is_floating(value_type):
        raise DataError(path, f"has type {typ}, expected a list of floats per item (an "
                        "embedding)", column=column, fix="pass --column an embedding column")
    table = read_table(pfile, path, [ITEM_ID, column])
    ids = scalar_column(table.column(ITEM_ID), path, ITEM_ID, np.int64,
                        null_fix="every row needs its item id")
    vectors = list_column_to_2d(table.column(column), path, column, np.float32,
                                null_fix="recompute that item's vector")
    bad = ~np.isfinite(vectors).all(axis=1) if vectors.size else np.zeros(len(ids), bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(path, "vector holds NaN or inf", column=column, row=row,
                        fix="recompute that item's vector")
    if (ids < 0).any():
        row = int(np.flatnonzero(ids < 0)[0])
        raise DataError(path, f"negative item id {ids[row]}", column=ITEM_ID, row=row,
                        fix="item ids are 1..N (0 is the padding item)")
    order = np.argsort(ids, kind="stable")
    repeat = ids[order[1:]] == ids[order[:-1]]
    if repeat.any():
        row = int(order[1:][repeat].min())
        raise DataError(path, f"item_id {ids[row]} appears more than once", column=ITEM_ID,
                        row=row, fix="keep one row per item")
    padding = np.flatnonzero(ids == 0)
    if padding.size and np.any(vectors[padding[0]] != 0):
        raise DataError(path, "the row of item_id 0 (padding) is not all zeros", column=column,
                        row=int(padding[0]), fix="item ids start at 1 (0 is padding): if the "
                        "file numbers its first item 0, add 1 to every item_id")
    keep = order[ids[order] > 0]
    return ids[keep], vectors[keep]


def residual_kmeans(vectors: np.ndarray, levels: int, codes: int,
                    seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    """(codes (n, levels) int64 in 1..codes, centroids: one (codes, dim) array per level,
    relative residual after each level: sum of squared residuals / sum of squared vectors)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    residual = np.array(vectors, np.float32)
    total = float(np.square(residual, dtype=np.float64).sum()) or 1.0
    out = np.zeros((len(residual), levels), np.int64)
    centroids, errors = [], []
    for level in range(levels):
        start = time.perf_counter()
        kmeans = KMeans(n_clusters=codes, n_init=1, max_iter=MAX_ITER, algorithm="lloyd",
                        random_state=seed + level)
        # one thread: Lloyd's sums then run in one order, so codes do not depend on the cores
        with threadpool_limits(limits=1), warnings.catch_warnings():
            # fewer distinct residuals than codes (tiny data): some codes stay unused
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = kmeans.fit_predict(residual)
        centers = kmeans.cluster_centers_.astype(np.float32)
        residual -= centers[labels]
        out[:, level] = labels + 1
        centroids.append(centers)
        errors.append(float(np.square(residual, dtype=np.float64).sum()) / total)
        logger.info("level %d/%d: %d codes (%d used), %d iterations, relative residual %.4f, "
                    "%.1f s", level + 1, levels, codes, len(np.unique(labels)), kmeans.n_iter_,
                    errors[-1], time.perf_counter() - start)
    return out, centroids, errors


def reconstruct(codes: np.ndarray, centroids: list[np.ndarray]) -> np.ndarray:
    """The sum of each item's centroids over the levels: what its codes say of its vector."""
    return sum(centers[codes[:, level] - 1] for level, centers in enumerate(centroids))


def check_options(levels: int, codes: int) -> None:
    if levels < 1:
        raise ConfigError(f"--levels {levels}: must be >= 1")
    if codes < 2:
        raise ConfigError(f"--codes {codes}: must be >= 2")


def semantic_ids(item_file: Path | str, column: str, out: Path | str, levels: int = 3,
                 codes: int = 64, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """Read, quantise, write OUT atomically; returns (path, metadata). Everything is checked
    before anything is written: a bad input leaves no output."""
    check_options(levels, codes)
    start = time.perf_counter()
    ids, vectors = read_vectors(item_file, column)
    if len(ids) < codes:
        raise ConfigError(f"--codes {codes}: {item_file} has only {len(ids)} items, fewer than "
                          f"the codes of one level. Fix: pass --codes {max(2, len(ids))} or less")
    logger.info("%s: %d items x %d dims from column %s", item_file, *vectors.shape, column)
    sids, _, errors = residual_kmeans(vectors, levels, codes, seed)
    table = pa.table({ITEM_ID: pa.array(ids, pa.int64()),
                      **{f"sid_{level + 1}": pa.array(sids[:, level], pa.int64())
                         for level in range(levels)}})
    meta = {"item_file": str(item_file), "column": column, "levels": levels, "codes": codes,
            "seed": seed, "n_items": int(len(ids)), "dim": int(vectors.shape[1]),
            "relative_residual": [round(e, 6) for e in errors],
            "seconds": round(time.perf_counter() - start, 1)}
    return write_parquet_atomically(table, META_KEY, meta, out), meta
