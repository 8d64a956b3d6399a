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

Parts: the latent model's constants and random streams (gen_latent.py), items and their
files (gen_items.py), users and timelines (gen_timelines.py), the parquet writing
(gen_files.py); this module puts them together, writes the ground truth and the summary.

Run: python -m src.datagen --scale {tiny,small,medium,full} [--world NAME] --out DIR [--seed N]
[--quiet]
It ends by printing the vocabulary sizes to put in a dataset config (the numbers
`vocab_size: auto` computes from the written files, src/data/vocab.py).
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

from ..atomic import atomic_write
from ..cli import make_parser, run_main
from .gen_files import list_array, row_seqs, write_rows, write_table
from .gen_items import make_items, write_items
from .gen_latent import POOL_FACTOR, POP_SIGMA, component_rng
from .gen_timelines import calibrate_bias, future_impressions, make_users, select_rows, simulate
from .vocab import dataset_vocab_sizes
from .worlds import DEFAULT_WORLD, WORLDS, ClickLaw, get_world

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


def _history_oracle_auc(rows, hist, law):
    """AUC of the click law's own logit with the user's latent part replaced by what the row
    shows of it (worlds.ClickLaw.history_logit; in the cosine world the normalised sum of the
    true contents of the row's history items). A practical ceiling for models that see only
    the row (true item contents, true item bias, the 64 history items), below best_auc,
    which knows each user's true interest."""
    seqs = row_seqs(hist, rows["user"], rows["t"])
    return float(roc_auc_score(rows["label"], law.history_logit(rows["item"], seqs)))


# ---- entry points -----------------------------------------------------------------------

def generate(out_dir: Path | str, scale: str = "tiny", seed: int = 0, progress: bool = True,
             world: str = DEFAULT_WORLD) -> dict[str, Any]:
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

    items = make_items(cfg, seed)
    write_items(root, seed, cfg, items, progress)
    users = make_users(cfg, seed, items, world)
    law = ClickLaw(world, items, users, POP_SIGMA)
    bias = calibrate_bias(seed, items, users, law)
    hist, last_topic, pool = simulate(seed, items, users, law, bias, progress)
    hist_len = users["hist_len"]

    uid = np.arange(1, cfg["n_users"] + 1)
    offsets = np.concatenate([[0], np.cumsum(hist_len[1:])]).astype(np.int32)
    flat = hist[1:][np.arange(hist.shape[1]) < hist_len[1:, None]].astype(np.int64)
    write_table(pa.table({"user_id": uid.astype(np.int64), "item_seq": list_array(flat, offsets)}),
           root / "item_seq.parquet")
    del flat

    # valid and test users are disjoint; each gets a few impressions after its history
    need = [int(np.ceil(POOL_FACTOR * cfg[k] / (1 + world.future_mean)))
            for k in ("n_valid", "n_test")]
    if sum(need) > cfg["n_users"]:
        raise ValueError(f"scale {scale!r}: n_users={cfg['n_users']} is too few for "
                         f"n_valid + n_test; needs at least {sum(need)}")
    chosen = component_rng(seed, "future_users").permutation(uid)
    splits = {
        "train": select_rows(seed, "select_train", pool, cfg["n_train"]),
        "valid": select_rows(seed, "select_valid", future_impressions(
            seed, "future_valid", users, items, law, hist, last_topic, bias, chosen[:need[0]]),
            cfg["n_valid"]),
        "test": select_rows(seed, "select_test", future_impressions(
            seed, "future_test", users, items, law, hist, last_topic, bias,
            chosen[need[0]:need[0] + need[1]]), cfg["n_test"]),
    }
    del pool
    for name, rows in splits.items():
        write_rows(data / f"{name}.parquet", rows, hist, items, with_label=name != "test",
                    with_id=name == "test", progress=progress)

    truth = root / "ground_truth"
    for name, key in (("valid", "row"), ("test", "ID")):
        rows = splits[name]
        write_table(pa.table({key: np.arange(rows["label"].size, dtype=np.int64),
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
    with atomic_write(truth / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    """python -m src.data.generator (or src.datagen): one line and exit 2 on a user error."""
    run_main(_main, argv)


def _main(argv: list[str] | None) -> None:
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
