"""One mapping of errors to exit statuses (src/cli.py) for every entry point: a user error is
one line and exit 2, Ctrl-C is `interrupted` and exit 130, never a traceback."""
import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from src.cli import exit_status
from src.errors import ConfigError, DataError, SubmissionError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("err, status", [
    (ConfigError("x"), 2), (DataError("f.parquet", "bad"), 2), (SubmissionError("x"), 2),
    (KeyboardInterrupt(), 130), (ValueError("a bug"), 1), (RuntimeError("a bug"), 1),
])
def test_exit_status(err, status):
    assert exit_status(err) == status


def test_no_entry_point_maps_errors_itself():
    """sys.exit with a status of its own, or a failed run's returncode written out, appears
    only in src/cli.py: everything else goes through run_main or exit_status."""
    found = []
    for path in sorted((REPO / "src").rglob("*.py")):
        if path == REPO / "src" / "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit") \
                    and node.args and isinstance(node.args[0], ast.Constant):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "returncode" \
                            and isinstance(value, ast.Constant) and value.value != 0:
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} returncode "
                                     f"{value.value}")
    assert not found, "\n".join(found)


def test_ctrl_c_in_the_data_check_is_one_line_and_130(tmp_path):
    """python -m src.validation interrupted while it reads its config: `interrupted`, exit
    130, no traceback. The config is a FIFO, so the child is known to be reading it (our
    open for writing returns once it has opened it) when SIGINT arrives: no timing involved."""
    config = tmp_path / "config"
    config.mkdir()
    fifo = config / "model_config.yaml"
    os.mkfifo(fifo)
    child = subprocess.Popen([sys.executable, "-m", "src.validation", "--config", str(config),
                              "--expid", "x"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    writer = open(fifo, "w")  # returns once the child has opened the FIFO to read it
    try:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        writer.close()
    assert child.returncode == 130, err
    assert err.strip() == "interrupted" and "Traceback" not in err
