"""Score the test set with a trained experiment (or several, averaged) and zip prediction.csv.

Usage: python prediction.py --config config/DIN_demo_tuner_config --expid best [--gpu 0]
`--expid best` takes the experiment with the best validation AUC among the config's grid (with
its current settings and data), `--expid best:3` averages the three best, `--expid A B` averages
A and B (`--average rank`: the mean of each member's normalised test-score ranks instead of
the mean of their probabilities, in (0, 1]; the ensemble's validation AUC the same way).
Writes submission/<name>/prediction.csv (header ID,Task2; `--task 1` for ID,Task1,
`--task 1 2` for both) and submission/<name>.zip, then checks the zip against the test file.
Beside the zip, <name>.manifest.json records its members with their validation AUCs, the
averaging rule, the submission's validation AUC and the test file's size and sha256; it is
printed here and by `python -m src.submission submission/<name>.zip`.
A checkpoint is used only if it was made by this config and data and by the run whose result
picked it, and if its weights hash to what that run recorded. An experiment whose run did not
finish (no result line, or a later run's training state left) is refused unless
--allow-unfinished.
"""

from __future__ import annotations

from src.cli import CONFIG_FOLDER_HELP, make_parser, run_main, setup_logging
from src.manifest import format_manifest
from src.predict import AVERAGES, predict_test


def main() -> None:
    parser = make_parser(__doc__, [
        "python prediction.py --config config/DIN_demo_tuner_config --expid best --gpu 0",
        "python prediction.py --config config/DIN_demo_tuner_config --expid best:3 "
        "--average rank   # the 3 best, rank-averaged",
        "python -m src.submission submission/ensemble3_20af7ce4.zip   # its members and check"])
    parser.add_argument("--config", required=True, help=CONFIG_FOLDER_HELP)
    parser.add_argument("--expid", nargs="+", default=["best"],
                        help="experiment id(s), best, or best:K (the K best, averaged)")
    parser.add_argument("--average", choices=AVERAGES, default="mean",
                        help="how an ensemble's scores are combined: mean of probabilities "
                             "or mean of normalised ranks (rank/n, ties averaged)")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for the CPU")
    parser.add_argument("--task", type=int, nargs="+", choices=(1, 2), default=[2],
                        help="challenge task column(s) to write: 1, 2 or both")
    parser.add_argument("--out", default="submission", help="output folder")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (unset: the cores not busy elsewhere)")
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="score an experiment whose run did not finish (killed, or still "
                             "training) with its best checkpoint so far")
    args = parser.parse_args()
    setup_logging()
    result = predict_test(args.config, args.expid, args.gpu, tasks=args.task, out_dir=args.out,
                          threads=args.threads, average=args.average,
                          allow_unfinished=args.allow_unfinished)
    print(result["verdict"])
    print(format_manifest(result["manifest"]))
    print(f"manifest: {result['manifest_path']}")
    print(f"submission: {result['zip']}")


if __name__ == "__main__":
    run_main(main)
