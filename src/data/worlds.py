"""Click laws ("worlds") of the data generator: how a click depends on the item, the user and
the user's recent clicks. Every world writes the same files with the same schema; what
differs is which signal a model has to find, so a model chosen in one world can be checked
in the others (a model fitted to one law's formula wins there and nowhere else).

In every world the click logit is
    alpha * taste(item, user, recent clicks) + beta_pop * popularity + gamma_quality * quality
    + user bias + intercept,
popularity and quality being the item's standardised log popularity and hidden quality
(the likes/views levels are noisy buckets of them). The worlds:

- cosine: taste = cos(item content, the user's interest), one interest vector per user (a mix
  of 1-3 topics plus a personal offset). The generator's original law.
- multi_interest: the user keeps 1-3 separate interests (one per topic, each with its own
  offset) and clicks what matches ANY of them: taste = max over the interests of the cosine.
  A mean of the history points between the interests and matches none of them well.
- target_side: the target item's own popularity and quality carry most of the signal and the
  taste little, as the real leaderboard suggests (a model that saw almost no history reached
  0.98 test AUC there).
- recency: taste = cos(item, a weighted sum of the last few clicked items' contents, most
  recent first, plus a little of the long-term interest): the order of the history matters.
- user_heavy: the cosine law plus a per-user click bias that only user_id can learn, with
  fewer users, longer histories and more rows per user.

Each world's ground truth (generator summary): the best achievable AUC (the true click
probabilities), the history oracle (this law with the user's latent part replaced by what the
row's 64 history items show of it) and the history-blind oracle (the true probability averaged
per target item).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class World:
    name: str
    description: str
    taste: str = "mean"               # "mean" | "max" | "recent" (module docstring)
    alpha: float = 7.5                # weight of the taste in the logit
    beta_pop: float = 0.5             # weight of standardised log popularity
    gamma_quality: float = 1.2        # weight of the hidden item quality
    recent_weights: tuple = ()        # recency: weights of the last clicks, most recent first
    long_term_weight: float = 0.0     # recency: weight of the long-term interest beside them
    user_bias_std: float = 0.0        # std of the per-user click bias (logit units)
    users_factor: float = 1.0         # the scale's n_users times this
    hist_logn_mu: float = 1.2         # history length = 3 + floor(lognormal(mu, 1)): mean ~8
    future_mean: float = 3.0          # valid/test impressions per chosen user: 1 + Poisson

    @property
    def recent_len(self) -> int:
        return len(self.recent_weights)


WORLDS = {w.name: w for w in (
    World("cosine", "a cosine between item content and one interest vector per user"),
    World("multi_interest", "the best match among 1-3 separate interests of a user (maximum, "
          "not mean)", taste="max"),
    World("target_side", "the target item's popularity and quality carry most of the signal, "
          "the history little", alpha=2.5, beta_pop=1.5, gamma_quality=2.5),
    World("recency", "the last three clicks matter most (weights 1, 0.5, 0.25), the long-term "
          "interest a little (0.25)", taste="recent", recent_weights=(1.0, 0.5, 0.25),
          long_term_weight=0.25),
    World("user_heavy", "the cosine law plus a per-user click bias only user_id can learn; a "
          "fifth of the users, longer histories (mean ~25), more rows per user",
          user_bias_std=1.0, users_factor=0.2, hist_logn_mu=2.6, future_mean=10.0),
)}
DEFAULT_WORLD = "cosine"


def get_world(name: str) -> World:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; expected one of {', '.join(WORLDS)}")
    return WORLDS[name]


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ClickLaw:
    """A world's click logit for given users, items and recent clicks (without the intercept,
    which the generator calibrates), and its history oracle's logit for a row's history.

    items: the generator's item arrays (zn: unit contents, logpop, quality; row 0 padding);
    users: its user arrays (un: unit interest; topics, n_top; row 0 padding); extras: the
    world's own user draws (interests for max, bias for user_heavy)."""

    def __init__(self, world: World, items: dict[str, np.ndarray], users: dict[str, np.ndarray],
                 pop_sigma: float) -> None:
        self.world, self.items, self.users = world, items, users
        self.item_bias = (world.beta_pop * items["logpop"] / pop_sigma
                          + world.gamma_quality * items["quality"]).astype(np.float32)

    def logit(self, uid: np.ndarray, item: np.ndarray,
              recent: np.ndarray | None = None) -> np.ndarray:
        """uid, item: (n,) ids; recent: (n, recent_len) ids of the last clicks before this
        impression, most recent first, 0 where there is none (only the recency law reads it)."""
        w, zn = self.world, self.items["zn"][item]
        if w.taste == "max":
            taste = self._max_cos(zn, uid)
        elif w.taste == "recent":
            taste = np.einsum("nd,nd->n", zn, self._recent_interest(
                self.users["un"][uid], recent))
        else:
            taste = np.einsum("nd,nd->n", zn, self.users["un"][uid])
        out = w.alpha * taste + self.item_bias[item]
        if w.user_bias_std:
            out = out + self.users["bias"][uid]
        return out

    def _max_cos(self, zn, uid):
        cos = np.einsum("nd,nkd->nk", zn, self.users["interests"][uid])
        slots = np.arange(cos.shape[1])
        return np.where(slots < self.users["n_top"][uid, None], cos, -np.inf).max(axis=1)

    def _recent_interest(self, long_term, recent):
        """Unit vector of sum_j weight_j * content(recent_j) + long_term_weight * long_term;
        rows with no recent click fall back to the long-term interest alone."""
        w = self.world
        weights = np.asarray(w.recent_weights, np.float32)
        mix = np.einsum("j,njd->nd", weights, self.items["zn"][recent])
        none = (recent == 0).all(axis=1)
        mix = mix + w.long_term_weight * long_term
        mix[none] = long_term[none]
        return _unit(mix).astype(np.float32)

    def history_logit(self, item: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """The law's logit with the user's latent part estimated from the row's history
        seqs (n, 64) of item ids, left-padded with 0 (no user bias: the history shows none)."""
        w, zn = self.world, self.items["zn"]
        target, history = zn[item], zn[seqs]
        if w.taste == "max":
            # the history's best match stands in for the best-matching interest
            cos = np.einsum("nd,nld->nl", target, history)
            taste = np.where(seqs > 0, cos, -np.inf).max(axis=1)
            taste = np.where(np.isfinite(taste), taste, 0.0)
        else:
            # the history's mean direction stands in for the long-term interest
            mean_dir = _unit(history.sum(axis=1))
            if w.taste == "recent":
                mean_dir = self._recent_interest(mean_dir, last_clicks(seqs, w.recent_len))
            taste = np.einsum("nd,nd->n", target, mean_dir)
        return w.alpha * taste + self.item_bias[item]


def last_clicks(seqs: np.ndarray, k: int) -> np.ndarray:
    """(n, k) ids of the last k real items of left-padded rows, most recent first, 0 where a
    row has fewer. Works for right-aligned histories (the padding is on the left)."""
    return seqs[:, ::-1][:, :k].copy() if k else np.zeros((len(seqs), 0), seqs.dtype)


def world_user_draws(world: World, seed_rng: np.random.Generator, centres: np.ndarray,
                     topics: np.ndarray, user_spread: float,
                     latent_dim: int) -> dict[str, np.ndarray]:
    """The world's own per-user draws, from their own random stream (so the cosine world's
    data stays what it was): separate interests (max) and a click bias (user_heavy)."""
    n = topics.shape[0] - 1  # row 0 is the padding user
    extra = {}
    if world.taste == "max":
        # half the cosine world's personal offset: each interest stays near its own topic,
        # so interests are distinct and a mean of them matches none
        offsets = 0.5 * user_spread * seed_rng.standard_normal((n, 3, latent_dim)) / np.sqrt(latent_dim)
        interests = np.zeros((n + 1, 3, latent_dim), np.float32)
        interests[1:] = _unit(centres[topics[1:]] + offsets)
        extra["interests"] = interests
    if world.user_bias_std:
        bias = np.zeros(n + 1, np.float32)
        bias[1:] = world.user_bias_std * seed_rng.standard_normal(n)
        extra["bias"] = bias
    return extra
