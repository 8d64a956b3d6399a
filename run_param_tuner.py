"""Grid search over a tuner config: one run per listed GPU slot, results recorded and summarised.

Usage: python run_param_tuner.py --config config/DIN_demo_tuner_config.yaml --gpu 0 1
(--gpu -1 runs on the CPU; `--gpu 0 0` puts two runs on GPU 0). Rerunning the same command
skips experiments that already have a result and retries the missing or failed ones; a run
killed part-way continues from its last evaluation. --report then writes the grid's report
(python -m src.report), also when some runs failed.
On a Ray cluster: --ray auto|HOST:PORT|local [--gpus-per-run 1] [--cpus-per-run 1]
[--retries 1] [--scheduler asha [--grace-period 1] [--reduction-factor 4]] (README, "Grids
on a Ray cluster"); results, summary and resume are the same.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from src.cli import TUNER_YAML_HELP, make_parser, run_main, setup_logging
from src.errors import UserError
from src.tuning.tuner import GridFailed, tune

if TYPE_CHECKING:
    from src.tuning.ray_runner import RayRunner


def main() -> None:
    parser = make_parser(__doc__, [
        "python run_param_tuner.py --config config/DIN_demo_tuner_config.yaml --check",
        "python run_param_tuner.py --config config/DIN_demo_tuner_config.yaml --gpu 0 1",
        "python run_param_tuner.py --config config/DIN_demo_tuner_config.yaml --gpu -1 --report",
        "python prediction.py --config config/DIN_demo_tuner_config --expid best   # then"])
    parser.add_argument("--config", required=True, help=TUNER_YAML_HELP)
    parser.add_argument("--gpu", type=int, nargs="+", default=None,
                        help="one slot per entry: GPU index, or -1 for the CPU "
                             "(unset: one CPU slot, -1)")
    parser.add_argument("--force", action="store_true",
                        help="rerun experiments already done, from scratch")
    parser.add_argument("--check", action="store_true",
                        help="only check the config, every grid point's values and the data "
                             "files, then exit (0: all good); nothing is trained or written")
    parser.add_argument("--report", action="store_true",
                        help="then write reports/<grid>/index.html (python -m src.report)")
    ray = parser.add_argument_group("on a Ray cluster (pip install -r requirements-ray.txt)")
    ray.add_argument("--ray", metavar="ADDRESS",
                     help="auto (the cluster of this machine), HOST:PORT (its head node) or "
                          "local (start Ray on this machine only)")
    ray.add_argument("--gpus-per-run", type=float, default=1, help="GPUs of each run")
    ray.add_argument("--cpus-per-run", type=float, default=1, help="CPUs of each run")
    ray.add_argument("--retries", type=int, default=1,
                     help="restarts of a run whose worker process or node died")
    ray.add_argument("--scheduler", choices=["asha"], default=None,
                     help="asha: stop weak grid points early (Ray Tune's ASHA on validation AUC)")
    ray.add_argument("--grace-period", type=int, default=1,
                     help="ASHA: evaluations before a run can be stopped")
    ray.add_argument("--reduction-factor", type=float, default=4,
                     help="ASHA: about 1 in this many runs goes on at each rung")
    args = parser.parse_args()
    setup_logging()
    if args.check:
        tune(args.config, args.gpu or [-1], executor=executor(args), check_only=True)
        return
    try:
        tune(args.config, args.gpu or [-1], force=args.force, executor=executor(args))
    except GridFailed:
        report(args)  # failed runs are shown in it
        raise
    report(args)


def executor(args: argparse.Namespace) -> RayRunner | None:
    """None (the local slots), or the Ray executor of --ray; options of one used with the
    other are refused, so that nothing is silently ignored."""
    ray_only = [f"--{name.replace('_', '-')}" for name, default in (
        ("gpus_per_run", 1), ("cpus_per_run", 1), ("retries", 1), ("scheduler", None),
        ("grace_period", 1), ("reduction_factor", 4)) if getattr(args, name) != default]
    if not args.ray:
        if ray_only:
            raise UserError(f"{', '.join(ray_only)} need(s) --ray. Fix: add --ray local (or the "
                            f"address of a Ray cluster), or drop them")
        return None
    if args.gpu is not None:
        raise UserError("--gpu chooses slots on this machine; with --ray, each run gets "
                        "--gpus-per-run GPUs wherever Ray places it. Fix: drop --gpu (use "
                        "--gpus-per-run 0 for CPU runs)")
    from src.experiment import train  # torch: only for a grid on Ray, which trains in-process
    from src.tuning.ray_runner import RayRunner
    return RayRunner(args.ray, train, gpus_per_run=args.gpus_per_run,
                     cpus_per_run=args.cpus_per_run,
                     retries=args.retries, scheduler=args.scheduler,
                     grace_period=args.grace_period, reduction_factor=args.reduction_factor)


def report(args: argparse.Namespace) -> None:
    """With --report: the grid's report, written after the summary."""
    if args.report:
        from src.report.build import write_report
        index = write_report(args.config, command=f"python -m src.report --config {args.config}")
        print(f"report: {index}")


if __name__ == "__main__":
    run_main(main)
