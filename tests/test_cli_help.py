"""Every entry script's --help shows its options' defaults, example commands, and what
--config names (the tuner YAML with .yaml, or the grid folder: the YAML's path without it)."""
import subprocess
import sys

import pytest

from .conftest import REPO

# command (after python), texts its --help must show
HELPS = {
    ("run_expid.py",): ["(default: -1)", "(default: ./config/)", "without .yaml"],
    ("run_param_tuner.py",): ["(default: 1)", "(default: 4)", "with .yaml"],
    ("prediction.py",): ["(default: best)", "(default: mean)", "(default: submission)",
                         "without .yaml", "best:3"],
    ("demo.py",): ["(default: -1)"],
    ("-m", "src.submission"): ["./data/MicroLens_1M_x1/test.parquet", "manifest"],
    ("-m", "src.report"): ["(default: reports/<grid name>)", "without .yaml"],
    ("-m", "src.item_embedding"): ["build --help"],
    ("-m", "src.item_embedding", "build"): ["(default: 0)", "(default: rms)"],
    ("-m", "src.item_embedding", "encode-titles"): ["(default: 256)", "(default: cpu)"],
    ("-m", "src.item_embedding", "evaluate"): ["(default: mean)", "(default: baseline)"],
    ("-m", "src.item_embedding", "semantic-ids"): ["(default: item_emb_d128)", "(default: 3)"],
    ("-m", "src.data.checks"): ["(default: train valid test)", "without .yaml"],
    ("-m", "src.data.generator"): ["(default: tiny)", "(default: cosine)"],
}


@pytest.mark.slow  # 13 interpreters importing torch
def test_every_entry_script_help_shows_defaults_and_examples():
    # all at once: each pays for its imports (torch), not one after the other
    running = {command: subprocess.Popen([sys.executable, *command, "--help"], cwd=REPO,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
               for command in HELPS}
    for command, process in running.items():
        out, err = process.communicate(timeout=300)
        name = " ".join(command)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        examples = out.split("\nExamples:\n", 1)
        assert len(examples) == 2, f"{name} --help has no Examples section"
        assert all(line.startswith("  python ") for line in examples[1].splitlines()), \
            f"{name}: examples are not commands"
        for text in HELPS[command]:
            assert text in " ".join(out.split()), f"{name} --help lacks {text!r}"
