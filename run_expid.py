"""Train one experiment of a config folder and append its validation result.

Usage: python run_expid.py --config config/DIN_demo_tuner_config --expid <expid> --gpu 0
(--gpu -1 runs on the CPU). The result line goes to <config folder name>.csv in the current
folder; log and best checkpoint to <model_root>/<dataset_id>/<expid>.log|.model.
"""
import argparse
import sys

from src.cli import run_main, setup_logging
from src.experiment import load_params, log_file, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="./config/", help="config folder")
    parser.add_argument("--expid", required=True, help="experiment id in its model_config.yaml")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for the CPU")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many training steps (overrides max_steps)")
    args = parser.parse_args()
    params = load_params(args.config, args.expid, args.gpu)
    if args.max_steps:
        params["max_steps"] = args.max_steps
    setup_logging(log_file(params))
    train(params, args.config, argv=sys.argv)


if __name__ == "__main__":
    run_main(main)
