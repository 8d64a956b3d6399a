"""Build one item_info file with a chosen item-embedding method.

Methods (each returns one 128-d vector per item, aligned by item_id):
  pca_concat        text ++ image -> PCA 128: the organisers' recipe
  pca_per_modality  PCA each modality, whiten, weighted concatenation (default 64 + 64,
                    or 43 + 43 + 42 with titles)
  contrastive       projection of the standardised modalities trained with InfoNCE on
                    consecutive items of the (non-held-out) histories in item_seq.parquet
  random            random projection of the standardised modalities (contrastive's baseline)
  item_emb_v1/v2/v3/e4  a column of item_emb.parquet, passed through
The first four read the text and image embeddings of item_feature.parquet, plus the titles'
sentence embeddings when given a title-embedding file (`--title-emb`, see titles.py).

Output scale: the DIN feeds item_emb_d128 through a Linear layer whose initial weights and
Adam steps assume inputs of order 1, and methods differ in raw scale by orders of magnitude
(PCA of raw CLIP vectors versus unit-norm contrastive vectors). By default (`scale="rms"`)
every method's matrix is multiplied by ONE constant so the root-mean-square coordinate over
real items is 1 (mean squared row norm = 128). A single constant keeps each method's
geometry (relative axis variances, cosines) intact. `scale="none"` keeps the raw values,
e.g. to reproduce the organisers' item_info exactly.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import inputs
from .contrastive import ContrastiveOptions, train_contrastive
from .holdout import HOLDOUT_FRACTION, HOLDOUT_SALT, training_pairs
from .linear import pca_concat, pca_per_modality, random_projection
from .output import EMB_DIM, write_item_info
from .titles import load_title_emb

logger = logging.getLogger(__name__)

SCALES = ("rms", "none")
# Defaults of the method options, also the set of option names each method accepts.
# pca_per_modality: None = 128 dims split evenly over the modalities, equal weights.
PER_MODALITY_DEFAULTS = {"modality_dims": None, "modality_weights": None}
CONTRASTIVE_DEFAULTS = ContrastiveOptions().as_dict()
METHOD_OPTIONS = {
    "pca_concat": {},
    "pca_per_modality": PER_MODALITY_DEFAULTS,
    "contrastive": CONTRASTIVE_DEFAULTS,
    "random": {},
    **{name: {} for name in inputs.ITEM_EMB_COLUMNS},
}
METHODS = tuple(METHOD_OPTIONS)
# Methods that read item_feature's modalities, and so can take titles as a third one.
MODALITY_METHODS = ("pca_concat", "pca_per_modality", "contrastive", "random")


def modalities(data_dir: Path | str, n_items: int,
               title_emb: Path | str | None) -> list[np.ndarray]:
    """[text, image] or, with a title-embedding file, [text, image, titles]."""
    blocks = list(inputs.load_modalities(data_dir, n_items))
    if title_emb is not None:
        blocks.append(load_title_emb(title_emb, n_items))
    return blocks


def _build_pca_concat(blocks, data_dir, n_items, seed, opts, progress):
    return pca_concat(blocks, EMB_DIM), {}


def _build_pca_per_modality(blocks, data_dir, n_items, seed, opts, progress):
    k = len(blocks)
    dims = opts["modality_dims"] or tuple(EMB_DIM // k + (i < EMB_DIM % k) for i in range(k))
    weights = opts["modality_weights"] or (1.0,) * k
    names = ",".join(["text", "image", "titles"][:k])
    if len(dims) != k or sum(dims) != EMB_DIM or min(dims) < 1:
        raise ConfigError(f"--modality-dims {','.join(map(str, dims))}: expected {k} positive "
                          f"sizes ({names}) adding up to {EMB_DIM}")
    too_wide = [i for i in range(k) if dims[i] > blocks[i].shape[1]]
    if too_wide:
        i = too_wide[0]
        raise ConfigError(f"--modality-dims {','.join(map(str, dims))}: the {names.split(',')[i]} "
                          f"vectors have {blocks[i].shape[1]} dims, fewer than the {dims[i]} "
                          f"asked of them; give that modality at most {blocks[i].shape[1]}")
    if len(weights) != k or min(weights) < 0:
        raise ConfigError(f"--modality-weights {','.join(map(str, weights))}: expected {k} "
                          f"non-negative numbers ({names})")
    return pca_per_modality(blocks, dims, weights), {"modality_dims": list(dims),
                                                     "modality_weights": list(weights)}


def _build_random(blocks, data_dir, n_items, seed, opts, progress):
    return random_projection(blocks, EMB_DIM, seed), {}


def _build_contrastive(blocks, data_dir, n_items, seed, opts, progress):
    options = ContrastiveOptions(**opts)
    if options.dims != EMB_DIM:
        raise ConfigError(f"dims={options.dims}: item_emb_d128 holds {EMB_DIM} values")
    for key in ("epochs", "batch_size", "window", "hidden"):
        if getattr(options, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(options, key)}: must be >= 1")
    users, offsets, items = inputs.load_histories(data_dir, n_items)
    anchors, positives = training_pairs(users, offsets, items, options.window)
    logger.info("contrastive: %d training pairs from %d users (%.0f%% held out)",
                anchors.size, users.size, 100 * HOLDOUT_FRACTION)
    return train_contrastive(blocks, anchors, positives, seed, options, progress)


def _build_passthrough(column):
    def build(blocks, data_dir, n_items, seed, opts, progress):
        return inputs.load_item_emb(data_dir, column, n_items), {"column": column}
    return build


BUILDERS = {
    "pca_concat": _build_pca_concat,
    "pca_per_modality": _build_pca_per_modality,
    "contrastive": _build_contrastive,
    "random": _build_random,
    **{name: _build_passthrough(col) for name, col in inputs.ITEM_EMB_COLUMNS.items()},
}


def rescale(embedding: np.ndarray, scale: str) -> tuple[np.ndarray, float]:
    """Multiply by one constant so the RMS coordinate of real items is 1 (scale="rms")."""
    if scale == "none":
        return embedding, 1.0
    rms = float(np.sqrt(np.mean(np.square(embedding[1:]))))
    factor = 1.0 / rms if rms > 0 else 1.0
    return embedding * factor, factor


def method_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The method's full option dict: its defaults updated with options; unknown keys are
    an error naming the key and the allowed ones."""
    if method not in METHOD_OPTIONS:
        raise ConfigError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    allowed = METHOD_OPTIONS[method]
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"option {unknown[0]!r} does not apply to --method {method}; it "
                          f"accepts {', '.join(sorted(allowed)) or 'no options'}")
    return {**allowed, **options}


def build(method: str, data_dir: Path | str, out: Path | str, seed: int = 0, scale: str = "rms",
          options: dict[str, Any] | None = None, progress: bool = True,
          title_emb: Path | str | None = None) -> tuple[Path, dict[str, Any]]:
    """Build and write an item_info file; return (path, metadata). title_emb: a
    title-embedding parquet (titles.py) to use as a third modality."""
    opts = method_options(method, options)
    if scale not in SCALES:
        raise ConfigError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}")
    if title_emb is not None and method not in MODALITY_METHODS:
        raise ConfigError(f"--title-emb applies to {', '.join(MODALITY_METHODS)}; --method "
                          f"{method} passes a column of item_emb.parquet through")
    started = time.time()
    n_items = inputs.num_items(data_dir)
    tags = inputs.load_item_tags(data_dir)
    blocks = modalities(data_dir, n_items, title_emb) if method in MODALITY_METHODS else None
    embedding, facts = BUILDERS[method](blocks, data_dir, n_items, seed, opts, progress)
    embedding = np.asarray(embedding, np.float64)
    if embedding.shape != (n_items + 1, EMB_DIM):
        raise AssertionError(f"{method} returned shape {embedding.shape}")
    embedding[0] = 0.0
    embedding, factor = rescale(embedding, scale)
    metadata = {
        "method": method, "seed": int(seed), "options": opts, "scale": scale,
        "scale_factor": factor, "data_dir": str(Path(data_dir).resolve()), "n_items": n_items,
        # methods that read item_seq never saw these users; the proxy measures on them
        "holdout": {"fraction": HOLDOUT_FRACTION, "salt": HOLDOUT_SALT},
        "modalities": ["text", "image"] + (["titles"] if title_emb is not None else []),
        "title_emb": str(Path(title_emb).resolve()) if title_emb is not None else None,
        "seconds": round(time.time() - started, 1), **facts,
    }
    path = write_item_info(out, tags, embedding, metadata)
    logger.info("wrote %s (%s, seed %d) in %.1f s", path, method, seed, metadata["seconds"])
    return path, metadata
