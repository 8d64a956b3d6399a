"""The generator's items (src/data/generator.py): latent contents in topics, popularity,
quality and likes/views levels; tags, titles, text and image embeddings, the organisers' PCA
and the graded item_emb embeddings; and the three item files they go to."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from .gen_files import fixed_lists, list_array, write_table
from .gen_latent import (EMB_DIM, IMG_DIM, IMG_NUISANCE, ITEM_SPREAD, LATENT_DIM, PCA_FIT_MAX,
                         POP_SIGMA, QUANT_LEVELS, TAGS_LEN, TOPIC_POP_EXP, TXT_DIM, TXT_NUISANCE,
                         component_rng, pad_row0, unit_rows)


def _bucket(x, quantiles):
    """0..9 buckets at the given quantiles of x (skewed like real popularity levels)."""
    return np.digitize(x, np.quantile(x, quantiles)).astype(np.int64)


# ---- items ------------------------------------------------------------------------------

def make_items(cfg: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    rng = component_rng(seed, "items")
    n, k = cfg["n_items"], cfg["n_topics"]
    centres = unit_rows(rng.standard_normal((k, LATENT_DIM)))
    topic_share = rng.dirichlet(np.full(k, 2.0))
    topic = rng.choice(k, size=n, p=topic_share)
    z = centres[topic] + ITEM_SPREAD * rng.standard_normal((n, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    logpop = POP_SIGMA * rng.standard_normal(n)
    quality = rng.standard_normal(n)
    views = _bucket(logpop + 0.3 * rng.standard_normal(n), QUANT_LEVELS)
    likes = _bucket(0.7 * logpop + 0.7 * quality + 0.3 * rng.standard_normal(n), QUANT_LEVELS)

    items = dict(topic=pad_row0(topic), z=pad_row0(z), likes=pad_row0(likes), views=pad_row0(views),
                 centres=centres, logpop=pad_row0(logpop), quality=pad_row0(quality))
    items["zn"] = np.zeros((n + 1, LATENT_DIM), np.float32)
    items["zn"][1:] = unit_rows(z)

    # Cumulative weights for popularity-driven and within-topic proposals.
    w = np.exp(logpop)
    items["global_cum"] = np.cumsum(w)
    by_topic = np.argsort(topic, kind="stable")
    items["by_topic"] = by_topic + 1
    items["topic_cum"] = np.cumsum(w[by_topic] ** TOPIC_POP_EXP)
    counts = np.bincount(topic, minlength=k)
    if (counts == 0).any():
        raise ValueError(f"n_topics={k} is too many for n_items={n}: a topic has no items")
    items["topic_end"] = np.cumsum(counts)
    items["topic_start"] = items["topic_end"] - counts
    ends = items["topic_cum"][items["topic_end"] - 1]
    items["topic_lo"] = np.concatenate([[0.0], ends[:-1]])
    items["topic_hi"] = ends
    items["topic_share"] = topic_share
    return items


def _make_tags(cfg, seed, items):
    """Variable-length tag lists (ordered most relevant first) and the item_info 5-slot
    left-padded version. Tags come mostly from the item's topic pool."""
    rng = component_rng(seed, "tags")
    n, k, n_tags = cfg["n_items"], cfg["n_topics"], cfg["n_tags"]
    n_generic = max(1, (n_tags - 1) // 10)
    if n_tags - 1 - n_generic < k:
        raise ValueError(f"n_tags={n_tags} is too small for n_topics={k}: each topic "
                         f"needs a tag; use n_tags >= {k + n_generic + 1}")
    # tags 1..n_generic are generic; the rest are spread over topics round-robin.
    topical = np.arange(n_generic + 1, n_tags)
    tag_topic = rng.permutation(np.arange(topical.size) % k)
    order = np.argsort(tag_topic, kind="stable")
    pool = topical[order]
    pool_end = np.cumsum(np.bincount(tag_topic, minlength=k))
    pool_start = pool_end - np.bincount(tag_topic, minlength=k)

    n_per = np.minimum(rng.poisson(2.5, n), 10)
    owner = np.repeat(np.arange(1, n + 1), n_per)
    topic = items["topic"][owner]
    size = pool_end[topic] - pool_start[topic]
    # u**2 skews towards the first tags of a pool: a few tags per topic are common.
    topical_pick = pool[pool_start[topic] + (size * rng.random(owner.size) ** 2).astype(int)]
    generic_pick = 1 + (n_generic * rng.random(owner.size) ** 2).astype(int)
    flat = np.where(rng.random(owner.size) < 0.8, topical_pick, generic_pick)
    # drop repeats within an item, keeping first occurrences in order
    _, first = np.unique(owner.astype(np.int64) * n_tags + flat, return_index=True)
    keep = np.sort(first)
    owner, flat = owner[keep], flat[keep].astype(np.int64)
    lens = np.bincount(owner, minlength=n + 1)[1:]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)

    rank = np.arange(flat.size) - offsets[owner - 1]
    shown = np.minimum(lens, TAGS_LEN)
    top = rank < TAGS_LEN
    info = np.zeros((n + 1, TAGS_LEN), np.int64)
    info[owner[top], TAGS_LEN - shown[owner[top] - 1] + rank[top]] = flat[top]
    return flat, offsets, info


def _make_titles(cfg, seed, items):
    rng = component_rng(seed, "titles")
    n, k = cfg["n_items"], cfg["n_topics"]
    words_per_topic, n_generic = 15, 300
    syll = np.array([c + v for c in "bdfgklmnprstvz" for v in "aeiou"])
    n_words = k * words_per_topic + n_generic
    n_syll = rng.integers(2, 4, n_words)
    parts = syll[rng.integers(0, syll.size, (n_words, 3))]
    vocab = ["".join(p[:m]) for p, m in zip(parts, n_syll)]
    n_w = np.clip(2 + rng.poisson(3, n), 2, 12)
    owner = np.repeat(np.arange(n), n_w)
    topic = items["topic"][1:][owner]
    topical = topic * words_per_topic + rng.integers(0, words_per_topic, owner.size)
    generic = k * words_per_topic + rng.integers(0, n_generic, owner.size)
    word = np.where(rng.random(owner.size) < 0.7, topical, generic)
    bounds = np.concatenate([[0], np.cumsum(n_w)])
    return [" ".join(vocab[w] for w in word[bounds[i]:bounds[i + 1]]).capitalize()
            for i in range(n)]


def _modal_views(seed, items):
    """Text and image embeddings: complementary noisy linear views of the content."""
    rng = component_rng(seed, "modalities")
    z = items["z"][1:] * np.sqrt(LATENT_DIM)      # unit variance per content dim
    n = z.shape[0]
    text_good = rng.permutation(LATENT_DIM) < LATENT_DIM // 2
    views = []
    for dim, good, n_nuis, nuis_std, noise, scale in (
            (TXT_DIM, text_good, TXT_NUISANCE, 1.3, 0.35, 1.0),
            (IMG_DIM, ~text_good, IMG_NUISANCE, 1.6, 0.35, 2.5)):
        gain = np.where(good, 1.0, 0.15)          # the faint half sits below the noise floor
        basis = np.linalg.qr(rng.standard_normal((dim, LATENT_DIM + n_nuis)))[0].T
        nuis = nuis_std * rng.standard_normal((n, n_nuis))
        signal = np.hstack([z * gain, nuis]) @ basis
        offset = rng.standard_normal(dim) * 0.5   # real encoders have a large common mean
        x = signal + offset + noise * rng.standard_normal((n, dim), dtype=np.float32)
        views.append((scale * x).astype(np.float32))
    return views[0], views[1]


def _pca128(seed, txt, img):
    """The organisers' recipe: concat(text, image) -> PCA to 128, fit on a sample."""
    rng = component_rng(seed, "pca")
    x = np.hstack([txt, img])
    n = x.shape[0]
    fit = np.sort(rng.choice(n, size=min(n, PCA_FIT_MAX), replace=False))
    xs = x[fit].astype(np.float64)
    mean = xs.mean(axis=0)
    xs -= mean
    evals, evecs = np.linalg.eigh(xs.T @ xs)
    comps = evecs[:, ::-1][:, :EMB_DIM]
    comps *= np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(EMB_DIM)])  # stable signs
    return (x - mean.astype(np.float32)) @ comps.astype(np.float32)


def _alt_embeddings(seed, items):
    """item_emb.parquet: four 128-d embeddings of graded quality, so comparing is meaningful."""
    rng = component_rng(seed, "alt_emb")
    z = items["z"][1:] * np.sqrt(LATENT_DIM)
    n = z.shape[0]
    extra = np.stack([items["logpop"][1:] / POP_SIGMA, items["quality"][1:]], axis=1)
    half = rng.permutation(LATENT_DIM)[: LATENT_DIM // 2]
    out = {}
    # name: (content, content gain, noise std). v1 also knows popularity and quality, like
    # an embedding learnt from interactions; v3 sees only half the content; e4 is nearly noise.
    for name, content, gain, noise in (
            ("item_emb_d128_v1", np.hstack([z, extra]), 1.0, 0.15),
            ("item_emb_d128_v2", z, 1.0, 0.6),
            ("item_emb_d128_v3", z[:, half], 1.0, 0.15),
            ("item_emb_d128_e4", z, 0.05, 1.0)):
        basis = np.linalg.qr(rng.standard_normal((EMB_DIM, content.shape[1])))[0].T
        x = gain * content @ basis + noise * rng.standard_normal((n, EMB_DIM))
        out[name] = x.astype(np.float32)
    return out


def write_items(root: Path, seed: int, cfg: dict[str, Any], items: dict[str, np.ndarray],
                progress: bool) -> np.ndarray:
    n = cfg["n_items"]
    steps = tqdm(total=3, desc="items", unit="file", disable=not progress)
    txt, img = _modal_views(seed, items)
    emb = _pca128(seed, txt, img)
    tags_flat, tags_off, tags_info = _make_tags(cfg, seed, items)
    titles = _make_titles(cfg, seed, items)
    ids = np.arange(1, n + 1, dtype=np.int64)
    write_table(pa.table({
        "item_id": ids,
        "item_title": pa.array(titles, pa.string()),
        "item_tags": list_array(tags_flat, tags_off),
        "likes_level": items["likes"][1:],
        "views_level": items["views"][1:],
        "txt_emb_BERT": fixed_lists(txt),
        "img_emb_CLIPRN50": fixed_lists(img),
    }), root / "item_feature.parquet", use_dictionary=False)
    steps.update()
    del txt, img
    emb_full = np.zeros((n + 1, EMB_DIM), np.float64)
    emb_full[1:] = emb
    write_table(pa.table({
        "item_id": np.arange(n + 1, dtype=np.int64),
        "item_tags": fixed_lists(tags_info),
        "item_emb_d128": fixed_lists(emb_full),
    }), root / "MicroLens_1M_x1" / "item_info.parquet", use_dictionary=False)
    steps.update()
    alt = _alt_embeddings(seed, items)
    write_table(pa.table({"item_id": ids, **{k: fixed_lists(v) for k, v in alt.items()}}),
           root / "item_emb.parquet", use_dictionary=False)
    steps.update()
    steps.close()
    return emb_full
