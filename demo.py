"""The whole challenge workflow on generated data, on a CPU, in a few minutes.

Generates tiny MicroLens-shaped data into data/demo/ (if absent), tunes the demo DIN config,
picks the best experiment, scores the test set and zips the submission, then prints the zip's
path, the validation AUC and the best AUC achievable on this data.
Usage: python demo.py [--gpu -1]
"""
from __future__ import annotations

import json
from pathlib import Path

from src.cli import make_parser, run_main, setup_logging
from src.data.generator import generate
from src.predict import predict_test
from src.tuning.tuner import tune

DATA_DIR = Path("data/demo")
TUNER_CONFIG = "config/DIN_demo_tuner_config.yaml"


def main() -> None:
    parser = make_parser(__doc__, ["python demo.py", "python demo.py --gpu 0"])
    parser.add_argument("--gpu", type=int, nargs="+", default=[-1],
                        help="tuner slots: GPU indexes, -1 for the CPU")
    args = parser.parse_args()
    setup_logging()
    summary_file = DATA_DIR / "ground_truth" / "summary.json"
    if not summary_file.exists():
        generate(DATA_DIR, scale="tiny", seed=0)
    summary = json.loads(summary_file.read_text())
    config_dir, _ = tune(TUNER_CONFIG, args.gpu)
    result = predict_test(config_dir, "best", gpu=args.gpu[0])
    print(result["verdict"])
    print(f"submission zip:        {result['zip']}")
    print(f"validation AUC:        {result['valid_auc']:.4f}  ({result['expid']})")
    print(f"best achievable AUC:   {summary['best_auc']['valid']:.4f} on valid "
          f"(AUC of the true click probabilities)")


if __name__ == "__main__":
    run_main(main)
