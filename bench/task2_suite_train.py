"""Preparing and training one world of the task-2 suite: its data (and semantic ids), a tuner
config per block, the tuner runs with a line per run as it ends; the progress log and ETA.

A helper of bench/task2_suite.py, which puts the repository root and bench/ on sys.path.
"""
import json
import math
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from task2_suite_blocks import BLOCKS, REPO, SID_CODES, SID_LEVELS, feature_cols

# the tuner's log line as a run ends: "<expid> <status>[, on <where>]"
RUN_END = re.compile(r" INFO (\S+_\d{3}_[0-9a-f]{8}) (ok|failed.*?|interrupted|stopped early|"
                     r"not started)(, on .*)?$")


# --- progress -------------------------------------------------------------------------------
class Log:
    """Lines to the console and WORK/suite.log, timestamped; tuner output to the log only."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def say(self, text):
        line = f"{datetime.now():%H:%M:%S} {text}"
        print(line, flush=True)
        self.file.write(line + "\n")

    def quiet(self, text):
        self.file.write(text if text.endswith("\n") else text + "\n")


class Eta:
    """A rough ETA: the mean wall time of the configs that trained, times those left."""

    def __init__(self, total):
        self.total, self.done, self.trained, self.seconds = total, 0, 0, 0.0

    def ended(self, seconds, trained):
        self.done += 1
        if trained:
            self.trained += 1
            self.seconds += seconds

    def __str__(self):
        left = self.total - self.done
        if not left:
            return "all configs done"
        if not self.trained:
            return f"{left} config(s) left, ETA unknown"
        return f"{left} config(s) left, ETA {left * self.seconds / self.trained / 60:.0f} min"


# --- preparing one world ---------------------------------------------------------------------
def run_logged(cmd, log, cwd):
    """Run a command, its output into the log; its exit status."""
    log.quiet(f"$ (cd {cwd} && {shlex.join(map(str, cmd))})")
    done = subprocess.run(list(map(str, cmd)), cwd=cwd, capture_output=True, text=True)
    log.quiet(done.stdout + done.stderr)
    return done.returncode


def read_summary(data_dir):
    path = Path(data_dir) / "ground_truth" / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_data(world, args, data_dir, log):
    """The world's generator summary, generating the data unless it is there already."""
    summary = read_summary(data_dir)
    wanted = (args.scale, args.data_seed, world)
    if summary and (summary.get("scale"), summary.get("seed"), summary.get("world")) == wanted:
        log.say(f"{world}: data in {data_dir} (scale {args.scale}, seed {args.data_seed}) kept")
        return summary
    log.say(f"{world}: generating {args.scale} data into {data_dir}")
    status = run_logged([sys.executable, "-m", "src.datagen", "--scale", args.scale, "--world",
                         world, "--seed", args.data_seed, "--out", data_dir, "--quiet"], log, REPO)
    return read_summary(data_dir) if status == 0 else None


def ensure_sids(data_dir, log):
    """item_sid.parquet of the world's item_emb_d128_v1 (once); True when it is there."""
    out = Path(data_dir) / "item_sid.parquet"
    if out.is_file():
        return True
    status = run_logged([sys.executable, "-m", "src.item_embedding", "semantic-ids",
                         "--item-file", Path(data_dir) / "item_emb.parquet",
                         "--column", "item_emb_d128_v1", "--levels", SID_LEVELS,
                         "--codes", SID_CODES, "--out", out], log, REPO)
    return status == 0 and out.is_file()


def eval_steps_of(args, batch_size, train_rows):
    """--eval-steps, else about half an epoch's steps at the block's batch size."""
    return args.eval_steps or max(1, math.ceil(train_rows / batch_size / 2))


def tuner_config(world, label, data_dir, args, eval_steps):
    """The tuner config of one (world, block): the block, its feature set on the world's data,
    the training seeds as the grid and the caps."""
    block, feature_set = BLOCKS[label]
    dataset_id = f"{world}_{feature_set}"
    split = Path(data_dir) / "MicroLens_1M_x1"
    space = {"seed": list(args.seeds), "epochs": args.epochs, "eval_steps": eval_steps,
             "early_stop_patience": args.patience, "deterministic": True, "verbose": 0}
    if args.max_steps:
        space["max_steps"] = args.max_steps
    return {
        "base_config": f"{REPO / 'config' / 'task2_config'}/",
        "base_expid": block,
        "dataset_id": dataset_id,
        "dataset_config": {dataset_id: {
            "data_root": f"{data_dir}/", "data_format": "parquet",
            **{f"{name}_data": str(split / f"{name}.parquet")
               for name in ("train", "valid", "test")},
            "item_info": str(split / "item_info.parquet"), "rebuild_dataset": False,
            "feature_cols": feature_cols(feature_set, Path(data_dir)),
            "label_col": {"name": "label", "dtype": "float"}}},
        "tuner_space": space,
    }


def write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def config_path(work, world, label):
    return work / "configs" / world / f"{world}__{label}.yaml"


def tuner_command(tuner_yaml, slots):
    return [sys.executable, str(REPO / "run_param_tuner.py"), "--config", str(tuner_yaml),
            "--gpu", *["-1"] * slots]


def run_tuner(tuner_yaml, slots, work, log, where):
    """Run one tuner config from WORK, its output into the log and a line per run as it
    ends; (the tuner's exit status, how many runs ended, its last line)."""
    cmd = tuner_command(tuner_yaml, slots)
    log.quiet(f"$ (cd {work} && {shlex.join(cmd)})")
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    count, last = 0, ""
    for line in proc.stdout:
        log.quiet(line)
        last = line.strip() or last
        ended = RUN_END.search(line.rstrip("\n"))
        if ended:
            count += 1
            log.say(f"  {where}: {ended.group(1)} {ended.group(2)}")
        elif "Skipping" in line and "with results already" in line:
            log.say(f"  {where}: {line.split(' INFO ', 1)[-1].strip()}")
    return proc.wait(), count, last



def train_world(world, labels, args, log, eta, blocks):
    """Data, configs and tuner runs of one world; (generator summary or None, failures)."""
    data_dir = args.work / "data" / world
    summary = read_summary(data_dir) if args.table_only else ensure_data(world, args, data_dir,
                                                                            log)
    if summary is None:
        log.say(f"FAILED: {world}: no data ({'not generated' if args.table_only else 'see log'})")
        return None, [f"{world}: data"]
    failures = []
    for label in labels if not args.table_only else ():
        block, feature_set = BLOCKS[label]
        if feature_set == "task2_sid" and not ensure_sids(data_dir, log):
            log.say(f"FAILED: {world}/{label}: semantic ids not written (see log)")
            failures.append(f"{world}/{label}")
            eta.ended(0, False)
            continue
        path = config_path(args.work, world, label)
        steps = eval_steps_of(args, blocks[block]["batch_size"], summary["n_train"])
        config = tuner_config(world, label, data_dir, args, steps)
        write_if_changed(path, f"# {world}/{label}: written by bench/task2_suite.py\n"
                         + yaml.safe_dump(config, default_flow_style=None, sort_keys=False))
        start = time.monotonic()
        status, ended, last = run_tuner(path, args.slots, args.work, log, f"{world}/{label}")
        seconds = time.monotonic() - start
        if status == 130:
            raise KeyboardInterrupt
        eta.ended(seconds, trained=ended > 0)
        if status != 0:
            failures.append(f"{world}/{label}")
            log.say(f"FAILED: {world}/{label}: the tuner exited {status}: {last[:300]} "
                    f"(all of it in {args.work}/suite.log)")
        log.say(f"{world}/{label}: done in {seconds:.0f} s; {eta}")
    return summary, failures


def written_spaces(work, worlds, labels):
    """{label: tuner_space of its first written config}: the caps the runs were made with
    (also under --table-only, whatever its arguments)."""
    spaces = {}
    for label in labels:
        for world in worlds:
            path = config_path(work, world, label)
            if path.is_file():
                spaces[label] = yaml.safe_load(path.read_text())["tuner_space"]
                break
    return spaces
