"""The latent model's constants and random streams, shared by the parts of the data generator
(src/data/generator.py: items in gen_items.py, users and timelines in gen_timelines.py, the
parquet files in gen_files.py)."""
from __future__ import annotations

import zlib

import numpy as np

# ---- latent model (changing any of these changes every generated file) ----------------
LATENT_DIM = 32          # content dims; half seen well by text, half by image
ITEM_SPREAD = 0.8        # item offset from its topic centre (centre has norm 1)
USER_SPREAD = 1.0        # personal offset of a user's interest from their topic mix
POP_SIGMA = 1.3          # std of log popularity: heavy tail, many rare items
TOPIC_POP_EXP = 0.6      # within-topic proposals use popularity**this (flatter: niches appear)
P_GLOBAL = 0.45          # share of popularity-driven proposals (mostly off-interest negatives)
STICKY = 0.5             # interest-driven proposal reuses the last click's topic
# The click law's weights (taste, popularity, quality) and the history-length and
# future-impression parameters belong to each world: src/data/worlds.py.
# likes/views level cut points (quantiles): low levels common, high levels rare
QUANT_LEVELS = [0.25, 0.45, 0.6, 0.72, 0.81, 0.88, 0.93, 0.96, 0.985]
POS_RATE = 0.25          # positives in every split, as in the real train (900k of 3.6M)
HIST_MIN, HIST_MAX = 3, 100   # full history length range (real: 3..100, mean about 8)
HIST_LOGN_SIGMA = 1.0    # length = 3 + floor(lognormal(world's mu, this))
POOL_FACTOR = 1.6        # valid/test impressions drawn per needed row (slack for exact 25%)
SEQ_LEN = 64             # item_seq in train/valid/test rows, left-padded with 0
TAGS_LEN = 5             # item_info.item_tags, left-padded with 0
EMB_DIM = 128
TXT_DIM, IMG_DIM = 768, 1024
TXT_NUISANCE, IMG_NUISANCE = 40, 72   # modality-specific directions unrelated to content
PCA_FIT_MAX = 20_000     # items the organisers' PCA is fitted on
ROW_CHUNK = 500_000      # rows per parquet write (bounds memory of the 64-wide item_seq)


def component_rng(seed: int, name: str) -> np.random.Generator:
    """An independent, reproducible stream per component, so adding a draw to one part
    does not shift the random numbers of another."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pad_row0(a: np.ndarray) -> np.ndarray:
    """Prepend a zero row: index 0 is the padding item/user, so arrays index by id."""
    return np.concatenate([np.zeros((1,) + a.shape[1:], a.dtype), a])
