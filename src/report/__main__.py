"""Write a shareable HTML report of a tuner grid and of the task-1 item-embedding comparison.

It shows the learning curves of every run, the validation AUC against each tuned key, the
results table, and item-embedding AUCs with their seed spread beside the recall proxy.

Usage: python -m src.report --config config/X [--item-embedding PATH] [--out reports/X]
(from the folder the tuner ran in: X.csv and X_summary.csv are read there). Open
reports/X/index.html in a browser; the folder is self-contained.
"""
import argparse
import sys

from ..cli import run_main, setup_logging
from .build import write_report


def main():
    parser = argparse.ArgumentParser(prog="python -m src.report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="grid folder config/X or its tuner config config/X.yaml")
    parser.add_argument("--item-embedding", metavar="CSV",
                        help="item_embedding_results.csv of src.item_embedding evaluate "
                             "(default: the one beside the grid folder, if any)")
    parser.add_argument("--out", help="report folder (default: reports/<grid name>)")
    args = parser.parse_args()
    setup_logging()
    index = write_report(args.config, args.item_embedding, args.out,
                         command="python -m src.report " + " ".join(sys.argv[1:]))
    print(f"report: {index}")


if __name__ == "__main__":
    run_main(main)
