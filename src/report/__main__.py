"""Write a shareable HTML report of a tuner grid and of the task-1 item-embedding comparison.

It shows the learning curves of every run, the validation AUC against each tuned key, the
results table, and item-embedding AUCs with their seed spread beside the recall proxy.

Usage: python -m src.report --config config/X [--item-embedding PATH] [--out reports/X]
(from the folder the tuner ran in: X.csv and X_summary.csv are read there). Open
reports/X/index.html in a browser; the folder is self-contained.
"""
from __future__ import annotations

import sys

from ..cli import make_parser, run_main, setup_logging
from .build import write_report


def main() -> None:
    parser = make_parser(__doc__, [
        "python -m src.report --config config/DIN_demo_tuner_config",
        "python -m src.report --config config/DIN_demo_tuner_config.yaml --out reports/demo"],
        prog="python -m src.report")
    parser.add_argument("--config", help="grid folder config/X (the tuner YAML's path without "
                        ".yaml) or the tuner config config/X.yaml itself")
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
