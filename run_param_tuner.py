"""Grid search over a tuner config: one run per listed GPU slot, results recorded and summarised.

Usage: python run_param_tuner.py --config config/DIN_demo_tuner_config.yaml --gpu 0 1
(--gpu -1 runs on the CPU; `--gpu 0 0` puts two runs on GPU 0). Rerunning the same command
skips experiments that already have a result and retries the missing or failed ones; a run
killed part-way continues from its last evaluation.
"""
import argparse

from src.cli import run_main, setup_logging
from src.tuning.tuner import tune


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="tuner config yaml")
    parser.add_argument("--gpu", type=int, nargs="+", default=[-1],
                        help="one slot per entry: GPU index, or -1 for the CPU")
    parser.add_argument("--force", action="store_true",
                        help="rerun experiments already done, from scratch")
    args = parser.parse_args()
    setup_logging()
    tune(args.config, args.gpu, force=args.force)


if __name__ == "__main__":
    run_main(main)
