"""Which users' histories an embedding may learn from, and which measure it.

A train positive of the challenge is the next item of a user's full history in
item_seq.parquet, so an embedding fitted on consecutive history pairs has, by design, seen
co-occurrences that the CTR model is later trained on: that is legitimate co-occurrence
learning. The proxy, however, must not be measured on pairs the embedding was fitted on.
A fixed share of users is therefore held out by a hash of their user_id (independent of
file order, of the method and of its seed): their histories never enter training, and the
last transition of each of them is a proxy query.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

# Share of users held out, and the salt of the hash that picks them. Changing either
# changes which users the proxy measures; both are recorded in the output file's metadata.
HOLDOUT_FRACTION = 0.1
HOLDOUT_SALT = 20250101


def heldout_mask(user_ids: npt.ArrayLike, fraction: float = HOLDOUT_FRACTION,
                 salt: int = HOLDOUT_SALT) -> np.ndarray:
    """Boolean mask of held-out users: a 64-bit mix of (user_id, salt) below fraction."""
    x = (np.asarray(user_ids, np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def training_pairs(users: np.ndarray, offsets: np.ndarray, items: np.ndarray, window: int = 1,
                   fraction: float = HOLDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(anchor, positive) item pairs from the histories of users not held out: every pair of
    items at most `window` positions apart, in history order."""
    keep = ~heldout_mask(users, fraction)
    lengths = np.diff(offsets)
    owner_keep = np.repeat(keep, lengths)
    position = np.arange(items.size) - np.repeat(offsets[:-1], lengths)
    anchors, positives = [], []
    for gap in range(1, window + 1):
        # a pair (i, i + gap) is valid when i + gap is still inside the same history
        i = np.flatnonzero(owner_keep & (position + gap < np.repeat(lengths, lengths)))
        anchors.append(items[i])
        positives.append(items[i + gap])
    return np.concatenate(anchors), np.concatenate(positives)


def proxy_queries(users: np.ndarray, offsets: np.ndarray, items: np.ndarray,
                  fraction: float = HOLDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last transition of every held-out user with at least two items:
    (history offsets of the prefix as (start, stop) arrays, target item)."""
    lengths = np.diff(offsets)
    chosen = np.flatnonzero(heldout_mask(users, fraction) & (lengths >= 2))
    start = offsets[chosen]
    stop = offsets[chosen + 1] - 1  # the prefix excludes the last item, the target
    return start, stop, items[stop]
