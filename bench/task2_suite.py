"""Task 2 in every world: each model block x each click law of the generator x training seeds,
trained to early stopping (evaluated about every half epoch), scored against the generator's
ground truth, summarised over the worlds, and written up as one results document.

Usage (from the repo root; data, configs, checkpoints, result lines, scores and the log all go
under --work, so the repository stays clean):
  python bench/task2_suite.py --work runs/task2_suite                 # small data, all of it
  python bench/task2_suite.py --work runs/task2_suite --table-only    # no training: the doc
  python bench/task2_suite.py --work /tmp/suite --scale tiny --worlds cosine \\
      --blocks baseline_DIN CosineInterest --seeds 1 --epochs 1 --max-steps 5 \\
      --doc /tmp/suite/doc.md

Per world: the data is generated once into WORK/data/<world> (python -m src.datagen; kept
when its summary.json has the same scale, seed and world), semantic ids once when a block uses
them. Per (world, block): a tuner config WORK/configs/<world>/<world>__<label>.yaml (grid:
the training seeds; caps: epochs, eval_steps, early_stop_patience), run by run_param_tuner.py
with --gpu -1 once per slot, from WORK. A rerun skips finished runs (the tuner does); a
failing config is reported and the suite goes on, then exits 1. Per run: test and validation
scores cached in WORK/scores/<world>/<expid>.npz (keyed by the run id of its result line).
Then: a table per world, the summary over worlds, a rank-average ensemble of each model
family's best block, the recommendation (RULE below), and the doc (--doc), whose appendix is
docs/task2_single_world.md copied in. Progress and everything the tuners print: WORK/suite.log.

This file is the command line and the order of the work; the parts live beside it: the blocks,
feature sets and RULE in task2_suite_blocks.py, preparing and training a world in
task2_suite_train.py, scores, tables and the rule's choice in task2_suite_score.py, the doc in
task2_suite_doc.py.
"""
import argparse
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # the suite's parts and task2_table live beside it

from task2_suite_blocks import (BASELINE, BLOCKS, ENSEMBLE, RULE,  # noqa: E402
                                feature_set_problems, known_models, model_blocks, unavailable)
from task2_suite_doc import command_lines, document, explain, pct  # noqa: E402
from task2_suite_score import (ensemble_members, ensemble_rows, recommend,  # noqa: E402
                               summarise_worlds, world_runs, world_table)
from task2_suite_train import Eta, Log, train_world, written_spaces  # noqa: E402

from src.atomic import atomic_write  # noqa: E402
from src.cli import run_main  # noqa: E402
from src.data.worlds import WORLDS  # noqa: E402
from src.errors import UserError  # noqa: E402


# --- the whole suite --------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path,
                        help="folder for data, configs, checkpoints, result lines, scores, log")
    parser.add_argument("--scale", default="small", choices=("tiny", "small", "medium", "full"))
    parser.add_argument("--data-seed", type=int, default=0, help="the generator's seed")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    parser.add_argument("--blocks", nargs="+", default=list(BLOCKS), choices=list(BLOCKS),
                        help=f"labels of the suite's table (the baseline {BASELINE} is always in)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="training seeds")
    parser.add_argument("--epochs", type=int, default=10, help="epoch cap of every run")
    parser.add_argument("--eval-steps", type=int, default=None,
                        help="steps between evaluations (default: half an epoch per block)")
    parser.add_argument("--patience", type=int, default=2,
                        help="evaluations without gain before early stopping")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap on training steps per run (smoke runs)")
    parser.add_argument("--slots", type=int, default=2, help="runs at a time (CPU slots)")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "task2_results.md")
    parser.add_argument("--table-only", action="store_true",
                        help="no data, no training: score what is there and write the doc")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.work, args.doc = args.work.resolve(), args.doc.resolve()
    if BASELINE not in args.blocks:
        args.blocks.insert(0, BASELINE)  # every gap is measured from it
    return args


def main(argv=None):
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    os.chdir(args.work)  # result lines and ./checkpoints/ of every tuner config live here
    log = Log(args.work / "suite.log")
    log.say(f"suite: {shlex.join(args.argv)}")
    if not args.table_only:
        (args.work / "suite_command.txt").write_text(
            "python bench/task2_suite.py " + shlex.join(args.argv) + "\n")
    blocks = model_blocks()
    skipped = unavailable(args.blocks, blocks, known_models(),
                          feature_set_problems({BLOCKS[label][1] for label in args.blocks}))
    for label, why in skipped.items():
        log.say(f"skipped: {label}: {why}")
    labels = [label for label in args.blocks if label not in skipped]
    if BASELINE not in labels:
        raise UserError(f"the baseline {BASELINE} cannot run: {skipped[BASELINE]}")
    eta = Eta(len(args.worlds) * len(labels))
    summaries, failures, runs, scores = {}, [], {}, {}
    for world in args.worlds:
        summary, failed = train_world(world, labels, args, log, eta, blocks)
        failures += failed
        if summary is not None:
            summaries[world] = summary
    log.say("scoring (cached scores are reused)")
    for world, summary in summaries.items():
        truth = args.work / "data" / world / "ground_truth" / "test_truth.parquet"
        runs[world], scores[world] = world_runs(world, labels, args.work, truth, log)
    families = {label: blocks[BLOCKS[label][0]]["model"] for label in labels}
    members = ensemble_members(runs, families)
    tables, notes = {}, [f"{label}: {why}" for label, why in skipped.items()]
    notes += [f"{failed}: failed (its log in WORK/suite.log)" for failed in failures]
    for world, summary in summaries.items():
        if BASELINE not in runs[world]:
            notes.append(f"world {world}: no baseline DIN runs, so no table")
            continue
        truth = args.work / "data" / world / "ground_truth" / "test_truth.parquet"
        rows = dict(runs[world])
        ensemble = ensemble_rows(world, members, scores[world], truth, args.work)
        if ensemble:
            rows[ENSEMBLE] = ensemble
        tables[world] = world_table(world, rows, summary["best_auc"])
    if not tables:
        log.say("no world has results yet: no doc written")
        return 1
    summary = summarise_worlds(tables)
    choice = recommend(summary, list(tables))
    uses_sid = any(BLOCKS[label][1] == "task2_sid" for label in labels)
    spaces = written_spaces(args.work, list(tables), [e["block"] for e in summary
                                                      if e["block"] != ENSEMBLE])
    text = document(args, {w: summaries[w] for w in tables}, tables, summary, choice, spaces,
                    command_lines(args, list(tables), labels, uses_sid), runs, notes, members)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.doc) as tmp:  # a rerun's doc replaces the last one whole
        tmp.write_text(text)
    log.say("summary over the worlds (mean rank, mean gap closed, loses in):")
    for e in summary:
        log.say(f"  {e['block']}: {e['mean_rank']:.1f}, {pct(e['mean_gap'])}, "
                f"{', '.join(e['lost']) or '-'}")
    log.say(f"rule: {RULE}")
    log.say(explain(choice, summary, list(tables), members).replace("**", ""))
    log.say(f"doc: {args.doc}")
    if failures:
        log.say(f"{len(failures)} failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # main returns 1 when a run failed
