"""Grid search over a tuner config: one run per listed GPU slot, results recorded and summarised.

Usage: python run_param_tuner.py --config config/DIN_demo_tuner_config.yaml --gpu 0 1
(--gpu -1 runs on the CPU; `--gpu 0 0` puts two runs on GPU 0). Rerunning the same command
skips experiments that already have a result and retries the missing or failed ones; a run
killed part-way continues from its last evaluation. --report then writes the grid's report
(python -m src.report), also when some runs failed.
"""
import argparse

from src.cli import run_main, setup_logging
from src.tuning.tuner import GridFailed, tune


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="tuner config yaml")
    parser.add_argument("--gpu", type=int, nargs="+", default=[-1],
                        help="one slot per entry: GPU index, or -1 for the CPU")
    parser.add_argument("--force", action="store_true",
                        help="rerun experiments already done, from scratch")
    parser.add_argument("--report", action="store_true",
                        help="then write reports/<grid>/index.html (python -m src.report)")
    args = parser.parse_args()
    setup_logging()
    try:
        tune(args.config, args.gpu, force=args.force)
    except GridFailed:
        report(args)  # failed runs are shown in it
        raise
    report(args)


def report(args):
    """With --report: the grid's report, written after the summary."""
    if args.report:
        from src.report.build import write_report
        index = write_report(args.config, command=f"python -m src.report --config {args.config}")
        print(f"report: {index}")


if __name__ == "__main__":
    run_main(main)
