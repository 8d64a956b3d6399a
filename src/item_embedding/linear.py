"""Closed-form embeddings of the modality vectors: PCA recipes and a random projection.

All functions take a list of modality blocks, (N + 1, dim) arrays (text, image and, with
`--title-emb`, titles) with the padding item in row 0, and ignore that row when fitting;
they return (N + 1, out_dim) float64 arrays whose row 0 is zero.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK_ROWS = 16_384  # rows per float64 block when accumulating covariances (bounded memory)


def _mean_cov(x):
    """Mean and covariance of rows 1.. of x, accumulated in float64 blocks."""
    rows = x[1:]
    mean = rows.mean(axis=0, dtype=np.float64)
    cov = np.zeros((x.shape[1], x.shape[1]))
    for lo in range(0, rows.shape[0], CHUNK_ROWS):
        block = rows[lo:lo + CHUNK_ROWS].astype(np.float64) - mean
        cov += block.T @ block
    return mean, cov / max(rows.shape[0] - 1, 1)


def pca(x: np.ndarray, dims: int, whiten: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Project rows on the top `dims` principal axes (fitted on all real items).

    Each axis is signed so that its largest-magnitude loading is positive: eigen solvers
    return axes with arbitrary signs, and fixed signs make the output reproducible.
    Returns (projection with row 0 zero, explained variances of the axes).
    """
    if dims > x.shape[1]:
        raise ValueError(f"cannot keep {dims} principal axes of {x.shape[1]}-dim vectors")
    mean, cov = _mean_cov(x)
    evals, evecs = np.linalg.eigh(cov)
    keep = np.argsort(evals)[::-1][:dims]
    evals, axes = np.maximum(evals[keep], 0.0), evecs[:, keep]
    axes = axes * np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(dims)])
    out = np.zeros((x.shape[0], dims))
    for lo in range(1, x.shape[0], CHUNK_ROWS):
        out[lo:lo + CHUNK_ROWS] = (x[lo:lo + CHUNK_ROWS].astype(np.float64) - mean) @ axes
    if whiten:
        # tiny floor: a constant direction would otherwise divide by zero
        out /= np.sqrt(np.maximum(evals, 1e-12 * max(evals.max(), 1e-300)))
    return out, evals


def pca_concat(blocks: Sequence[np.ndarray], dims: int = 128) -> np.ndarray:
    """The organisers' recipe: concatenate the modalities as they are, PCA to dims.

    The larger-scale modality (the image vectors) dominates the leading axes; that is the
    recipe's known weakness and the reason the other methods exist.
    """
    return pca(np.hstack(blocks), dims)[0]


def pca_per_modality(blocks: Sequence[np.ndarray], dims: Sequence[int] = (64, 64),
                     weights: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
    """PCA each modality on its own, whiten, then concatenate with the given weights.

    Whitening gives every kept axis unit variance, so neither modality wins by scale;
    weights then set each modality's share on purpose.
    """
    parts = [w * pca(x, d, whiten=True)[0] for x, d, w in zip(blocks, dims, weights, strict=True)]
    return np.hstack(parts)


def standardise_modalities(*blocks: np.ndarray) -> np.ndarray:
    """Concatenate modalities after z-scoring each dimension and dividing each block by the
    square root of its width, so every modality has the same total variance (1) whatever
    its width or raw scale. float32, row 0 zeros. The input of `random` and `contrastive`."""
    parts = []
    for x in blocks:
        rows = x[1:].astype(np.float64)
        std = rows.std(axis=0)
        std[std == 0] = 1.0
        z = np.zeros(x.shape, np.float32)
        z[1:] = ((rows - rows.mean(axis=0)) / std / np.sqrt(x.shape[1])).astype(np.float32)
        parts.append(z)
    return np.hstack(parts)


def random_projection(blocks: Sequence[np.ndarray], dims: int = 128, seed: int = 0) -> np.ndarray:
    """A Gaussian random projection of the standardised modalities: the same input as
    `contrastive` and no learning, hence its baseline."""
    x = standardise_modalities(*blocks)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((x.shape[1], dims)) / np.sqrt(dims)
    out = x.astype(np.float64) @ weights
    out[0] = 0.0
    return out
