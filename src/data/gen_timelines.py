"""The generator's users and their timelines (src/data/generator.py): each user's topics and
interest, the impressions proposed to them and clicked by the world's law until their history
is full, the impressions after it (valid/test), and the exact-25% selection of rows."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from .gen_latent import (HIST_LOGN_SIGMA, HIST_MAX, HIST_MIN, LATENT_DIM, P_GLOBAL, POS_RATE,
                         STICKY, USER_SPREAD, component_rng, pad_row0, unit_rows)
from .worlds import world_user_draws

if TYPE_CHECKING:
    from .worlds import ClickLaw, World

logger = logging.getLogger(__name__)


def make_users(cfg: dict[str, Any], seed: int, items: dict[str, np.ndarray],
               world: World) -> dict[str, np.ndarray]:
    rng = component_rng(seed, "users")
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
    users = dict(topics=pad_row0(topics), cum_w=pad_row0(np.cumsum(weights, axis=1)),
                 un=pad_row0(unit_rows(interest).astype(np.float32)),
                 hist_len=pad_row0(np.minimum(lens, HIST_MAX)), n_top=pad_row0(n_top))
    users.update(world_user_draws(world, component_rng(seed, f"users_{world.name}"),
                                  items["centres"], users["topics"], USER_SPREAD, LATENT_DIM))
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


def calibrate_bias(seed: int, items: dict[str, np.ndarray], users: dict[str, np.ndarray],
                   law: ClickLaw) -> float:
    """Intercept that makes the mean click probability of proposals POS_RATE, so the
    exact 25% sub-sampling later barely changes the probabilities."""
    rng = component_rng(seed, "calibrate")
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


def simulate(seed: int, items: dict[str, np.ndarray], users: dict[str, np.ndarray], law: ClickLaw,
             bias: float, progress: bool) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Run every user's timeline until their history is full. Returns the histories and
    the pool of impressions that have a non-empty history before them (train candidates)."""
    rng = component_rng(seed, "timeline")
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


def future_impressions(seed: int, name: str, users: dict[str, np.ndarray],
                       items: dict[str, np.ndarray], law: ClickLaw, hist: np.ndarray,
                       last_topic: np.ndarray, bias: float, chosen: np.ndarray) -> list[np.ndarray]:
    """Impressions after the history ends, for valid/test users: the prefix is the whole
    history, so none of these labels appear in item_seq.parquet."""
    rng = component_rng(seed, name)
    k = 1 + rng.poisson(law.world.future_mean, chosen.size)
    uid = np.repeat(chosen, k)
    item = _propose(rng, items, users, uid, last_topic[uid])
    recent = _recent_clicks(hist, uid, users["hist_len"][uid], law.world.recent_len)
    prob = 1 / (1 + np.exp(-(law.logit(uid, item, recent) + bias)))
    click = rng.random(uid.size) < prob
    return [uid.astype(np.int32), users["hist_len"][uid].astype(np.int16),
            item.astype(np.int32), prob.astype(np.float32), click]


def select_rows(seed: int, name: str, pool: list[np.ndarray], n_rows: int) -> dict[str, np.ndarray]:
    """Exactly POS_RATE positives, in random order. Keeping positives at rate a and
    negatives at rate b turns P(click)=p into a p / (a p + b (1 - p)): still the true
    probability of the kept row."""
    rng = component_rng(seed, name)
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
