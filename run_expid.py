"""Train one experiment of a config folder and append its validation result.

Usage: python run_expid.py --config config/DIN_demo_tuner_config --expid <expid> --gpu 0
(--gpu -1 runs on the CPU). The result line goes to <config folder name>.csv in the current
folder; log, best checkpoint and training state to <model_root>/<dataset_id>/<expid>.*.
A run killed part-way continues from its last evaluation when started again (--fresh: from
scratch). A finished run with the same settings and data is kept unless --fresh; a new run of
a finished experiment writes beside it (<expid>.partial.*) and replaces it only when it
finishes. Files owned by another config folder (<expid>.owner.json) are never written.
--max-steps N caps training; a capped run is filed as <expid>.max_steps_N and never
replaces the full run's checkpoint or result.
"""
from __future__ import annotations

import argparse
import sys

from src.cli import CONFIG_FOLDER_HELP, make_parser, run_main, setup_logging
from src.experiment import load_params, train


def main() -> None:
    parser = make_parser(__doc__, [
        "python run_expid.py --config config/DIN_demo_tuner_config "
        "--expid DIN_MicroLens_demo_x1_001_b4df6352 --gpu -1",
        "python run_expid.py --config config/DIN_demo_tuner_config "
        "--expid DIN_MicroLens_demo_x1_001_b4df6352 --max-steps 200   # a quick capped run"])
    parser.add_argument("--config", default="./config/", help=CONFIG_FOLDER_HELP + ", or any "
                        "folder with model_config.yaml and dataset_config.yaml")
    parser.add_argument("--expid", required=True, help="experiment id in its model_config.yaml "
                        "(the tuner's summary lists them)")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for the CPU")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many training steps (a capped run, filed apart)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (unset: the cores not busy elsewhere)")
    parser.add_argument("--fresh", action="store_true",
                        help="start from scratch even if a killed run left a training state, "
                             "and retrain a finished run (replaced only when this one finishes)")
    parser.add_argument("--tuner-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.config, args.expid, args.gpu)
    if args.max_steps:
        params.update(max_steps=args.max_steps, capped=True)
    train(params, args.config, argv=sys.argv, threads=args.threads, fresh=args.fresh,
          tuner_pid=args.tuner_pid)


if __name__ == "__main__":
    run_main(main)
