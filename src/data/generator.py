"""Deterministic generator of MicroLens_1M_MMCTR-shaped data.

The real challenge data cannot be downloaded here, so tests, demos and benchmarks run on
data that has exactly the real files, columns, dtypes and padding, drawn from a latent
model whose true click probabilities are saved next to it (ground_truth/).

Latent model, in the order it is drawn:
  * Items sit in topics: content z_i = topic centre + item offset (LATENT_DIM dims), a
    log-normal popularity and a hidden quality. likes/views levels are noisy 0..9 buckets
    of popularity (likes also see quality).
  * Text (768-d) and image (1024-d) embeddings are complementary noisy views of z: each
    sees half of the content dims clearly and the other half faintly, and each carries
    large modality-specific nuisance. The image view has the larger scale, so the
    organisers' recipe (concat -> PCA 128, in item_info) spends components on image
    nuisance and loses part of the text-only content; a smarter fusion does better.
  * Users mix 1-3 topics; their interest u is that mix plus a personal offset.
  * A user's timeline is a stream of impressions. Each impression proposes an item
    (popularity-driven, or from the user's topics with a pull towards the topic of the
    last click, so consecutive history items are related) and is clicked with
    p = sigmoid(ALPHA cos(z_i, u) + popularity + quality + bias) in the default world
    (`cosine`); other worlds (src/data/worlds.py, `--world NAME`) click by other laws over
    the same latent items and users. Clicks form the history
    (item_seq.parquet). Train rows are impressions inside the timeline (positives are the
    next history items), valid/test rows are impressions after the history ends, so no
    valid/test label is visible in item_seq.parquet.
  * Rows are sub-sampled to exactly 25% positives; the saved click_prob accounts for the
    sub-sampling, so it is the true P(label=1 | row) and its AUC is the best achievable.

Run: python -m src.datagen --scale {tiny,small,medium,full} [--world NAME] --out DIR [--seed N]
[--quiet]
It ends by printing the vocabulary sizes to put in a dataset config (the numbers
`vocab_size: auto` computes from the written files, src/data/vocab.py).
"""
import json
import logging
import os
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from ..cli import make_parser
from .vocab import dataset_vocab_sizes
from .worlds import DEFAULT_WORLD, WORLDS, ClickLaw, get_world, world_user_draws

logger = logging.getLogger(__name__)

# Presets. n_tags is the item_tags vocab size (tag ids 1..n_tags-1); item_id vocab is
# n_items + 1. n_topics sets how many content clusters items and users are drawn from.
SCALES = {
    # tiny: big enough that one epoch of the demo DIN clearly learns from histories
    "tiny": dict(n_items=2_000, n_users=12_000, n_train=100_000, n_valid=5_000,
                 n_test=5_000, n_tags=200, n_topics=20),
    "small": dict(n_items=20_000, n_users=200_000, n_train=600_000, n_valid=10_000,
                  n_test=50_000, n_tags=2_000, n_topics=100),
    "medium": dict(n_items=50_000, n_users=300_000, n_train=1_000_000, n_valid=10_000,
                   n_test=100_000, n_tags=11_740, n_topics=150),
    "full": dict(n_items=91_717, n_users=1_000_000, n_train=3_600_000, n_valid=10_000,
                 n_test=379_142, n_tags=11_740, n_topics=200),
}

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


def _rng(seed, name):
    """An independent, reproducible stream per component, so adding a draw to one part
    does not shift the random numbers of another."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pad0(a):
    """Prepend a zero row: index 0 is the padding item/user, so arrays index by id."""
    return np.concatenate([np.zeros((1,) + a.shape[1:], a.dtype), a])


def _bucket(x, quantiles):
    """0..9 buckets at the given quantiles of x (skewed like real popularity levels)."""
    return np.digitize(x, np.quantile(x, quantiles)).astype(np.int64)


# ---- items ------------------------------------------------------------------------------

def _make_items(cfg, seed):
    rng = _rng(seed, "items")
    n, k = cfg["n_items"], cfg["n_topics"]
    centres = _unit(rng.standard_normal((k, LATENT_DIM)))
    topic_share = rng.dirichlet(np.full(k, 2.0))
    topic = rng.choice(k, size=n, p=topic_share)
    z = centres[topic] + ITEM_SPREAD * rng.standard_normal((n, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    logpop = POP_SIGMA * rng.standard_normal(n)
    quality = rng.standard_normal(n)
    views = _bucket(logpop + 0.3 * rng.standard_normal(n), QUANT_LEVELS)
    likes = _bucket(0.7 * logpop + 0.7 * quality + 0.3 * rng.standard_normal(n), QUANT_LEVELS)

    items = dict(topic=_pad0(topic), z=_pad0(z), likes=_pad0(likes), views=_pad0(views),
                 centres=centres, logpop=_pad0(logpop), quality=_pad0(quality))
    items["zn"] = np.zeros((n + 1, LATENT_DIM), np.float32)
    items["zn"][1:] = _unit(z)

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
    rng = _rng(seed, "tags")
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
    rng = _rng(seed, "titles")
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
    rng = _rng(seed, "modalities")
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
    rng = _rng(seed, "pca")
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
    rng = _rng(seed, "alt_emb")
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


# ---- users and timelines ----------------------------------------------------------------

def _make_users(cfg, seed, items, world):
    rng = _rng(seed, "users")
    n, k = cfg["n_users"], cfg["n_topics"]
    n_top = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2])
    # users favour big topics a little more than items do
    share = items["topic_share"] ** 1.3
    topics = rng.choice(k, size=(n, 3), p=share / share.sum())
    weights = rng.dirichlet(np.ones(3), size=n)
    weights[n_top == 1] = [1.0, 0.0, 0.0]
    weights[n_top == 2, 2] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    interest = np.einsum("uk,ukd->ud", weights, items["centres"][topics])
    interest += USER_SPREAD * rng.standard_normal((n, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    lens = HIST_MIN + np.floor(rng.lognormal(world.hist_logn_mu, HIST_LOGN_SIGMA, n)).astype(int)
    users = dict(topics=_pad0(topics), cum_w=_pad0(np.cumsum(weights, axis=1)),
                 un=_pad0(_unit(interest).astype(np.float32)),
                 hist_len=_pad0(np.minimum(lens, HIST_MAX)), n_top=_pad0(n_top))
    users.update(world_user_draws(world, _rng(seed, f"users_{world.name}"), items["centres"],
                                  users["topics"], USER_SPREAD, LATENT_DIM))
    return users


def _propose(rng, items, users, uid, last_topic):
    """One proposed item per user in uid: popularity-driven or from the user's topics."""
    n = uid.size
    r_mode, r_slot, r_sticky, r_topic, r_glob = rng.random((5, n))
    slot = (r_slot > users["cum_w"][uid, 0]).astype(np.int64) + (r_slot > users["cum_w"][uid, 1])
    topic = users["topics"][uid, slot]
    topic = np.where((r_sticky < STICKY) & (last_topic >= 0), last_topic, topic)
    lo, hi = items["topic_lo"][topic], items["topic_hi"][topic]
    idx = np.searchsorted(items["topic_cum"], lo + r_topic * (hi - lo), side="right")
    idx = np.clip(idx, items["topic_start"][topic], items["topic_end"][topic] - 1)
    by_interest = items["by_topic"][idx]
    gcum = items["global_cum"]
    by_pop = 1 + np.minimum(np.searchsorted(gcum, r_glob * gcum[-1], side="right"), gcum.size - 1)
    return np.where(r_mode < P_GLOBAL, by_pop, by_interest)


def _recent_clicks(hist, uid, n_clicks, k):
    """(n, k) the last k clicks of each user before now, most recent first, 0 for none."""
    pos = n_clicks[:, None] - 1 - np.arange(k)
    recent = hist[uid[:, None], np.maximum(pos, 0)].astype(np.int64)
    recent[pos < 0] = 0
    return recent


def _calibrate_bias(seed, items, users, law):
    """Intercept that makes the mean click probability of proposals POS_RATE, so the
    exact 25% sub-sampling later barely changes the probabilities."""
    rng = _rng(seed, "calibrate")
    n_users = users["un"].shape[0] - 1
    uid = rng.integers(1, n_users + 1, 200_000)
    # the last click's topic is, to first order, one of the user's own topics
    last = users["topics"][uid, rng.integers(0, 3, uid.size)]
    # the recency law's recent clicks are unknown here: its long-term interest stands in
    no_clicks = np.zeros((uid.size, law.world.recent_len), np.int64)
    logit = law.logit(uid, _propose(rng, items, users, uid, last), no_clicks)
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logit + mid)))).mean() > POS_RATE:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def _simulate(seed, items, users, law, bias, progress):
    """Run every user's timeline until their history is full. Returns the histories and
    the pool of impressions that have a non-empty history before them (train candidates)."""
    rng = _rng(seed, "timeline")
    hist_len = users["hist_len"]
    n_users = hist_len.size - 1
    hist = np.zeros((n_users + 1, hist_len.max()), np.int32)
    n_clicks = np.zeros(n_users + 1, np.int64)
    last_topic = np.full(n_users + 1, -1, np.int64)
    active = np.arange(1, n_users + 1)
    pool = []
    bar = tqdm(total=int(hist_len.sum()), desc="histories", unit="click", disable=not progress)
    rounds = 0
    while active.size:
        rounds += 1
        if rounds > 1_000_000:
            raise RuntimeError("timeline simulation did not finish: click probabilities too low")
        item = _propose(rng, items, users, active, last_topic[active])
        recent = _recent_clicks(hist, active, n_clicks[active], law.world.recent_len)
        prob = 1 / (1 + np.exp(-(law.logit(active, item, recent) + bias)))
        click = rng.random(active.size) < prob
        t = n_clicks[active]
        seen = t > 0
        pool.append((active[seen].astype(np.int32), t[seen].astype(np.int16),
                     item[seen].astype(np.int32), prob[seen].astype(np.float32), click[seen]))
        cu, ci = active[click], item[click]
        hist[cu, n_clicks[cu]] = ci
        n_clicks[cu] += 1
        last_topic[cu] = items["topic"][ci]
        active = active[n_clicks[active] < hist_len[active]]
        bar.update(int(click.sum()))
    bar.close()
    logger.info("timelines done in %d rounds", rounds)
    pool = [np.concatenate(col) for col in zip(*pool)]
    return hist, last_topic, pool


def _future(seed, name, users, items, law, hist, last_topic, bias, chosen):
    """Impressions after the history ends, for valid/test users: the prefix is the whole
    history, so none of these labels appear in item_seq.parquet."""
    rng = _rng(seed, name)
    k = 1 + rng.poisson(law.world.future_mean, chosen.size)
    uid = np.repeat(chosen, k)
    item = _propose(rng, items, users, uid, last_topic[uid])
    recent = _recent_clicks(hist, uid, users["hist_len"][uid], law.world.recent_len)
    prob = 1 / (1 + np.exp(-(law.logit(uid, item, recent) + bias)))
    click = rng.random(uid.size) < prob
    return [uid.astype(np.int32), users["hist_len"][uid].astype(np.int16),
            item.astype(np.int32), prob.astype(np.float32), click]


def _select(seed, name, pool, n_rows):
    """Exactly POS_RATE positives, in random order. Keeping positives at rate a and
    negatives at rate b turns P(click)=p into a p / (a p + b (1 - p)): still the true
    probability of the kept row."""
    rng = _rng(seed, name)
    uid, t, item, prob, click = pool
    n_pos = int(round(n_rows * POS_RATE))
    pos, neg = np.flatnonzero(click), np.flatnonzero(~click)
    if pos.size < n_pos or neg.size < n_rows - n_pos:
        raise RuntimeError(f"{name}: only {pos.size} positive / {neg.size} negative candidate "
                           f"impressions for {n_rows} rows; raise n_users for this scale")
    keep = np.concatenate([rng.choice(pos, n_pos, replace=False),
                           rng.choice(neg, n_rows - n_pos, replace=False)])
    keep = keep[rng.permutation(keep.size)]
    a, b = n_pos / pos.size, (n_rows - n_pos) / neg.size
    p = prob[keep].astype(np.float64)
    return dict(user=uid[keep].astype(np.int64), t=t[keep].astype(np.int64),
                item=item[keep].astype(np.int64), label=click[keep].astype(np.int64),
                prob=a * p / (a * p + b * (1 - p)))


# ---- writing ----------------------------------------------------------------------------

def _list(flat, offsets):
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat))


def _fixed(matrix):
    n, w = matrix.shape
    return _list(matrix.reshape(-1), np.arange(0, n * w + 1, w, dtype=np.int32))


def _write(table, path, **kwargs):
    """Write to a temporary name and rename, so a crash never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, **kwargs)
    os.replace(tmp, path)


def _row_seqs(hist, user, t):
    """Last SEQ_LEN items of each row's history prefix, left-padded with 0."""
    pos = t[:, None] - SEQ_LEN + np.arange(SEQ_LEN)
    seq = hist[user[:, None], np.maximum(pos, 0)].astype(np.int64)
    seq[pos < 0] = 0
    return seq


def _history_oracle_auc(rows, hist, law):
    """AUC of the click law's own logit with the user's latent part replaced by what the row
    shows of it (worlds.ClickLaw.history_logit; in the cosine world the normalised sum of the
    true contents of the row's history items). A practical ceiling for models that see only
    the row (true item contents, true item bias, the 64 history items), below best_auc,
    which knows each user's true interest."""
    seqs = _row_seqs(hist, rows["user"], rows["t"])
    return float(roc_auc_score(rows["label"], law.history_logit(rows["item"], seqs)))


def _write_rows(path, rows, hist, items, with_label, with_id, progress):
    fields = ([("ID", pa.int64())] if with_id else []) + [
        ("user_id", pa.int64()), ("item_seq", pa.list_(pa.int64())), ("item_id", pa.int64()),
        ("likes_level", pa.int64()), ("views_level", pa.int64())]
    fields += [("label", pa.int64())] if with_label else []
    schema = pa.schema(fields)
    n = rows["user"].size
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for lo in tqdm(range(0, n, ROW_CHUNK), desc=path.name, unit="chunk",
                       disable=not progress or n <= ROW_CHUNK):
            s = slice(lo, min(n, lo + ROW_CHUNK))
            item = rows["item"][s]
            cols = [np.arange(s.start, s.stop, dtype=np.int64)] if with_id else []
            cols += [rows["user"][s], _fixed(_row_seqs(hist, rows["user"][s], rows["t"][s])),
                     item, items["likes"][item], items["views"][item]]
            cols += [rows["label"][s]] if with_label else []
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
    os.replace(tmp, path)


def _write_items(root, seed, cfg, items, progress):
    n = cfg["n_items"]
    steps = tqdm(total=3, desc="items", unit="file", disable=not progress)
    txt, img = _modal_views(seed, items)
    emb = _pca128(seed, txt, img)
    tags_flat, tags_off, tags_info = _make_tags(cfg, seed, items)
    titles = _make_titles(cfg, seed, items)
    ids = np.arange(1, n + 1, dtype=np.int64)
    _write(pa.table({
        "item_id": ids,
        "item_title": pa.array(titles, pa.string()),
        "item_tags": _list(tags_flat, tags_off),
        "likes_level": items["likes"][1:],
        "views_level": items["views"][1:],
        "txt_emb_BERT": _fixed(txt),
        "img_emb_CLIPRN50": _fixed(img),
    }), root / "item_feature.parquet", use_dictionary=False)
    steps.update()
    del txt, img
    emb_full = np.zeros((n + 1, EMB_DIM), np.float64)
    emb_full[1:] = emb
    _write(pa.table({
        "item_id": np.arange(n + 1, dtype=np.int64),
        "item_tags": _fixed(tags_info),
        "item_emb_d128": _fixed(emb_full),
    }), root / "MicroLens_1M_x1" / "item_info.parquet", use_dictionary=False)
    steps.update()
    alt = _alt_embeddings(seed, items)
    _write(pa.table({"item_id": ids, **{k: _fixed(v) for k, v in alt.items()}}),
           root / "item_emb.parquet", use_dictionary=False)
    steps.update()
    steps.close()
    return emb_full


# ---- entry points -----------------------------------------------------------------------

def generate(out_dir, scale="tiny", seed=0, progress=True, world=DEFAULT_WORLD):
    """Generate one data set of the given scale and click law (src/data/worlds.py) into
    out_dir; returns the summary dict."""
    world = get_world(world)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}")
    cfg = dict(SCALES[scale])
    cfg["n_users"] = int(round(cfg["n_users"] * world.users_factor))
    root = Path(out_dir)
    data = root / "MicroLens_1M_x1"
    logger.info("generating scale=%s world=%s seed=%d into %s", scale, world.name, seed, root)

    items = _make_items(cfg, seed)
    _write_items(root, seed, cfg, items, progress)
    users = _make_users(cfg, seed, items, world)
    law = ClickLaw(world, items, users, POP_SIGMA)
    bias = _calibrate_bias(seed, items, users, law)
    hist, last_topic, pool = _simulate(seed, items, users, law, bias, progress)
    hist_len = users["hist_len"]

    uid = np.arange(1, cfg["n_users"] + 1)
    offsets = np.concatenate([[0], np.cumsum(hist_len[1:])]).astype(np.int32)
    flat = hist[1:][np.arange(hist.shape[1]) < hist_len[1:, None]].astype(np.int64)
    _write(pa.table({"user_id": uid.astype(np.int64), "item_seq": _list(flat, offsets)}),
           root / "item_seq.parquet")
    del flat

    # valid and test users are disjoint; each gets a few impressions after its history
    need = [int(np.ceil(POOL_FACTOR * cfg[k] / (1 + world.future_mean)))
            for k in ("n_valid", "n_test")]
    if sum(need) > cfg["n_users"]:
        raise ValueError(f"scale {scale!r}: n_users={cfg['n_users']} is too few for "
                         f"n_valid + n_test; needs at least {sum(need)}")
    chosen = _rng(seed, "future_users").permutation(uid)
    splits = {
        "train": _select(seed, "select_train", pool, cfg["n_train"]),
        "valid": _select(seed, "select_valid", _future(
            seed, "future_valid", users, items, law, hist, last_topic, bias, chosen[:need[0]]),
            cfg["n_valid"]),
        "test": _select(seed, "select_test", _future(
            seed, "future_test", users, items, law, hist, last_topic, bias,
            chosen[need[0]:need[0] + need[1]]), cfg["n_test"]),
    }
    del pool
    for name, rows in splits.items():
        _write_rows(data / f"{name}.parquet", rows, hist, items, with_label=name != "test",
                    with_id=name == "test", progress=progress)

    truth = root / "ground_truth"
    for name, key in (("valid", "row"), ("test", "ID")):
        rows = splits[name]
        _write(pa.table({key: np.arange(rows["label"].size, dtype=np.int64),
                         "label": rows["label"], "click_prob": rows["prob"]}),
               truth / f"{name}_truth.parquet")

    # History-blind oracle: the true probability averaged per target item over train,
    # roughly the best a model without item_seq can do.
    tr = splits["train"]
    n_items = cfg["n_items"]
    mean_pool = ClickLaw(replace(world, taste="mean"), items, users, POP_SIGMA)
    count = np.bincount(tr["item"], minlength=n_items + 1)
    mean_p = np.bincount(tr["item"], weights=tr["prob"], minlength=n_items + 1)
    blind = np.where(count > 0, mean_p / np.maximum(count, 1), tr["prob"].mean())
    summary = dict(
        scale=scale, world=world.name, world_description=world.description, seed=int(seed),
        **{k: int(v) for k, v in cfg.items()},
        n_history_items=int(hist_len[1:].sum()),
        mean_history_len=round(float(hist_len[1:].mean()), 3),
        positive_rate={k: float(v["label"].mean()) for k, v in splits.items()},
        best_auc={k: float(roc_auc_score(splits[k]["label"], splits[k]["prob"]))
                  for k in ("valid", "test")},
        history_blind_oracle_auc={
            k: float(roc_auc_score(splits[k]["label"], blind[splits[k]["item"]]))
            for k in ("valid", "test")},
        history_oracle_auc={k: _history_oracle_auc(splits[k], hist, law)
                            for k in ("valid", "test")},
        # the same oracle with the history mean-pooled, the cosine law's estimate of taste:
        # below history_oracle_auc where the world's law pools the history otherwise
        mean_pool_history_oracle_auc={k: _history_oracle_auc(splits[k], hist, mean_pool)
                                      for k in ("valid", "test")},
        click_bias=float(bias),
        # what vocab_size: auto gives for these files: the values for a dataset config
        vocab_sizes=dataset_vocab_sizes(data / "item_info.parquet", data / "train.parquet",
                                        data / "valid.parquet", data / "test.parquet"),
    )
    tmp = truth / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, truth / "summary.json")
    return summary


def main(argv=None):
    parser = make_parser(__doc__, ["python -m src.data.generator --out data/demo",
                                   "python -m src.data.generator --out data/full --scale full "
                                   "--world recency --seed 1"],
                         prog="python -m src.data.generator")
    parser.add_argument("--scale", choices=list(SCALES), default="tiny",
                        help="preset size (tiny: tests; full: the real row counts)")
    parser.add_argument("--out", required=True, help="output directory (e.g. data/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole data set")
    parser.add_argument("--world", choices=list(WORLDS), default=DEFAULT_WORLD,
                        help="the click law (src/data/worlds.py): " + "; ".join(
                            f"{w.name}: {w.description}" for w in WORLDS.values()))
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got --seed={args.seed}")
    s = generate(args.out, scale=args.scale, seed=args.seed, progress=not args.quiet,
                 world=args.world)
    print(f"wrote {args.scale} data (world {args.world}, seed {args.seed}) to {args.out}: "
          f"{s['n_train']} train / {s['n_valid']} valid / {s['n_test']} test rows, "
          f"{s['n_items']} items, {s['n_users']} users, mean history {s['mean_history_len']}")
    print(f"best achievable AUC: valid {s['best_auc']['valid']:.4f}, "
          f"test {s['best_auc']['test']:.4f}; history-blind oracle: "
          f"valid {s['history_blind_oracle_auc']['valid']:.4f}, "
          f"test {s['history_blind_oracle_auc']['test']:.4f}; history oracle (interest "
          f"estimated from the row's history): valid {s['history_oracle_auc']['valid']:.4f}, "
          f"test {s['history_oracle_auc']['test']:.4f}")
    sizes = s["vocab_sizes"]
    print("vocab sizes for the dataset config (what vocab_size: auto computes): "
          + ", ".join(f"{name} {size}" for name, size in sizes.items())
          + f"; user_id with oov: True {sizes['user_id'] + 1}")


if __name__ == "__main__":
    main()
