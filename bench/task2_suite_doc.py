"""The task-2 suite's results document: setup, a table per world, the summary over the worlds,
the recommendation and why, every run, and docs/task2_single_world.md as its appendix.

A helper of bench/task2_suite.py, which puts the repository root and bench/ on sys.path.
"""
import re
import shlex

from task2_suite_blocks import (APPENDIX, APPENDIX_HEADING, BASELINE, BLOCKS, ENSEMBLE,
                                FEATURE_SETS, RULE, SID_CODES, SID_LEVELS)


def explain(choice, summary, worlds, members):
    """One paragraph: what the rule picked and why (members: the ensemble's blocks)."""
    if choice is None:
        out = [e for e in summary if e["block"] != BASELINE]
        why = "; ".join(f"{e['block']} loses in {', '.join(e['lost'])}" if e["lost"] else
                        f"{e['block']} did not run in every world" for e in out)
        return (f"**No recommendation**: no candidate qualifies ({why or 'no candidates'}); "
                f"the baseline DIN stays.")
    others = [e for e in summary if e["block"] not in (BASELINE, choice["block"])]
    also = [f"{e['block']} ({pct(e['mean_gap'])}, mean rank {e['mean_rank']:.1f})"
            for e in others if not e["lost"] and set(worlds) <= set(e["worlds"])]
    losing = [f"{e['block']} ({', '.join(e['lost'])})" for e in others if e["lost"]]
    return (f"**Recommended: {choice['block']}** ({describe(choice['block'], members)}): it "
            f"loses to the baseline DIN in none of the {len(worlds)} worlds and closes "
            f"{pct(choice['mean_gap'])} of the gap on average (mean rank {choice['mean_rank']:.1f})"
            + (f"; the other qualifying candidates: {', '.join(also)}" if also
               else "; no other candidate qualifies")
            + (f". Losing to the baseline DIN somewhere: {'; '.join(losing)}." if losing else "."))


# --- the document -----------------------------------------------------------------------------
def pct(value):
    return f"{100 * value:.0f}%"


def describe(label, members):
    """What a candidate is: its model block and feature set, or the ensemble's members."""
    if label == ENSEMBLE:
        return "rank average of " + " + ".join(members)
    block, feature_set = BLOCKS[label]
    return f"`{block}`, {FEATURE_SETS[feature_set]}"


def world_section(world, summary, table, members):
    lines = [f"### World `{world}`", "",
             f"{summary.get('world_description', '').capitalize()}. " + "; ".join(
                 f"{name}: valid {summary[key]['valid']:.4f}, test {summary[key]['test']:.4f}"
                 for name, key in (("best achievable AUC", "best_auc"),
                                   ("history oracle", "history_oracle_auc"),
                                   ("history-blind oracle", "history_blind_oracle_auc"))
                 if key in summary) + ".", "",
             "| rank | candidate | what | seeds | valid AUC | test AUC | spread | gap closed "
             "(test) | loses to baseline DIN |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['rank']} | {r['block']} | {describe(r['block'], members)} | "
                     f"{r['seeds']} | {r['valid_mean']:.4f} | {r['test_mean']:.4f} | "
                     f"{r['test_spread']:.4f} | {pct(r['gap_closed_test'])} | "
                     f"{'yes' if r['loses'] else '-'} |")
    return lines


def summary_section(summary, worlds, members):
    lines = ["| candidate | what | worlds run | mean rank | mean gap closed (test) | "
             "loses to the baseline DIN in |", "|---|---|---|---|---|---|"]
    for e in summary:
        lines.append(f"| {e['block']} | {describe(e['block'], members)} | {len(e['worlds'])} of "
                     f"{len(worlds)} | {e['mean_rank']:.1f} | {pct(e['mean_gap'])} | "
                     f"{', '.join(e['lost']) or '-'} |")
    return lines


def setup_section(args, summaries, spaces, commands, runs, notes, members):
    """spaces: {label: the tuner_space its configs were written with}."""
    ended = [r["ended"] for world_rows in runs.values() for rs in world_rows.values()
             for r in rs]
    first = next(iter(summaries.values()))
    space = spaces[BASELINE]
    lines = [
        "## Setup", "",
        f"- Data: `--scale {args.scale}`, data seed {args.data_seed}, one folder per world "
        f"({', '.join(summaries)}): {first['n_items']:,} items, {first['n_train']:,} train / "
        f"{first['n_valid']:,} valid / {first['n_test']:,} test rows; users per world: "
        + ", ".join(f"{w} {s['n_users']:,}" for w, s in summaries.items()) + ".",
        f"- Training: seeds {', '.join(map(str, space['seed']))} per block; at most "
        f"{space['epochs']} epoch(s); evaluated every `eval_steps` steps ("
        + ", ".join(f"{label} {s['eval_steps']}" for label, s in spaces.items())
        + f"), early stopping after {space['early_stop_patience']} evaluations without gain"
        + (f"; at most {space['max_steps']} steps (`max_steps`)" if space.get("max_steps")
           else "")
        + "; `deterministic: True`, one thread per run. "
        f"How the runs ended: {summarise_endings(ended)}.",
        "- Shortened for the CPU: generated data at this scale instead of the real 3.6M train "
        "rows; the CPU-sized blocks (`*_cpu`) at their shipped values, no grid over learning "
        "rate or regularisation; an epoch cap; "
        f"{len(space['seed'])} training seed(s), so a spread is the difference of few runs.",
        "- Measured: validation AUC from each run's result line; test AUC of its zip (as "
        "prediction.py writes it) against the generator's ground truth; gap closed = (candidate "
        "- baseline DIN) / (best achievable - baseline DIN) on the test means; rank by mean test "
        "AUC within the world. The ensemble is the rank average (prediction.py `--average rank`) "
        "of the best block of each model family (model class), best by validation AUC averaged "
        "over seeds and worlds, one ensemble per training seed, its validation AUC by the "
        "same rule on the members' validation scores: "
        + (" + ".join(members) or "none (fewer than two families ran)") + ".",
        "", "Commands (from the repository root; `WORK` is the suite's `--work`):", "", "```bash",
        *commands, "```"]
    if notes:
        lines += ["", "Left out:", ""] + [f"- {note}" for note in notes]
    return lines


def summarise_endings(ended):
    counts = {kind: ended.count(kind) for kind in sorted(set(ended))}
    return ", ".join(f"{count} by {kind}" for kind, count in counts.items()) or "no runs"


def runs_section(runs):
    lines = ["Every run (world, candidate, expid: seed, valid AUC, test AUC, how it ended):", "",
             "```"]
    for world, world_rows in runs.items():
        for label, rows in world_rows.items():
            for r in sorted(rows, key=lambda r: r["seed"]):
                lines.append(f"{world} {label} {r['expid']}: seed {r['seed']}, valid "
                             f"{r['valid_auc']:.4f}, test {r['test_auc']:.4f}, {r['ended']}")
    return lines + ["```"]


def document(args, summaries, tables, summary, choice, spaces, commands, runs, notes, members):
    worlds = list(tables)
    lines = [
        "# Task 2: every model in every world (CPU, generated data)", "",
        "Generated by `bench/task2_suite.py` (do not edit by hand: a rerun rewrites it). Every "
        "model block of the suite trained on the data of each click law of the generator "
        "(`src/data/worlds.py`), a model chosen in one world checked in the others. The "
        "earlier comparison on the cosine law alone is the "
        f"[appendix](#{anchor(APPENDIX_HEADING)}) (also "
        "[task2_single_world.md](task2_single_world.md)).", ""]
    lines += setup_section(args, summaries, spaces, commands, runs, notes, members)
    lines += ["", "## Per world", ""]
    for world, table in tables.items():
        lines += world_section(world, summaries[world], table, members) + [""]
    lines += ["## Summary over the worlds", ""] + summary_section(summary, worlds, members)
    lines += ["", "## The recommendation", "", f"Rule: {RULE}", "",
              explain(choice, summary, worlds, members), "", "## Runs", ""] + runs_section(runs)
    lines += ["", f"## {APPENDIX_HEADING}", "",
              "Kept verbatim in [task2_single_world.md](task2_single_world.md), copied here.", ""]
    return "\n".join(lines) + "\n" + APPENDIX.read_text()


def anchor(heading):
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def command_lines(args, worlds, labels, uses_sid):
    """The commands that made the doc: the suite's own, then what it runs per world."""
    suite = "python bench/task2_suite.py " + shlex.join(args.argv)
    lines = [suite] if not args.table_only else []
    saved = args.work / "suite_command.txt"
    if args.table_only and saved.is_file():
        lines.append(saved.read_text().strip())
    if args.table_only:
        lines.append(suite)
    lines += ["# what it runs, per world W and block LABEL:",
              f"python -m src.datagen --scale {args.scale} --world W --seed {args.data_seed} "
              f"--out WORK/data/W --quiet"]
    if uses_sid:
        lines.append("python -m src.item_embedding semantic-ids --item-file WORK/data/W/"
                     "item_emb.parquet --column item_emb_d128_v1 --levels "
                     f"{SID_LEVELS} --codes {SID_CODES} --out WORK/data/W/item_sid.parquet")
    lines.append("(cd WORK && python REPO/run_param_tuner.py --config "
                 f"WORK/configs/W/W__LABEL.yaml --gpu {' '.join(['-1'] * args.slots)})")
    return lines
