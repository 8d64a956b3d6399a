"""One mapping of errors to exit statuses (src/cli.py) for every entry point: a user error is
one line and exit 2, Ctrl-C is `interrupted` and exit 130, never a traceback."""
import ast
import os
import resource
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


def _is_main_block(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and ast.unparse(node.test) in ("__name__ == '__main__'", '__name__ == "__main__"'))


def _calls_run_main(nodes):
    return any(isinstance(n, ast.Call) and ast.unparse(n.func) == "run_main"
               for node in nodes for n in ast.walk(node))


def _module_file(path, node):
    """The file a `from X import name` in path imports from (None outside this repo)."""
    if node.level:
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
    else:
        base = REPO
    target = base.joinpath(*(node.module or "").split("."))
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _function(path, name):
    """The definition of the function name as module path has it: its own, or the one it
    imports from a module of this repo (None when there is none)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname in (None, name)
                                                    for a in node.names):
            source = _module_file(path, node)
            return _function(source, name) if source else None
    return None


def entry_points():
    """(path, the statements of its `if __name__ == "__main__":` block) of every script and
    python -m module: the top-level scripts, src/ and bench/."""
    paths = [*REPO.glob("*.py"), *(REPO / "src").rglob("*.py"), *(REPO / "bench").glob("*.py")]
    for path in sorted(paths):
        for node in ast.parse(path.read_text()).body:
            if _is_main_block(node):
                yield path, node.body


def test_every_entry_point_goes_through_run_main():
    """Each `if __name__ == "__main__":` block calls run_main, or a function (its module's or
    one it imports) that does: one mapping of errors to exit statuses for every command."""
    found, missing = [], []
    for path, body in entry_points():
        name = str(path.relative_to(REPO))
        found.append(name)
        called = [_function(path, ast.unparse(n.func)) for node in body for n in ast.walk(node)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        if not (_calls_run_main(body) or any(f and _calls_run_main(f.body) for f in called)):
            missing.append(name)
    # the walk sees the entry points of each kind (scripts, python -m modules, benchmarks)
    assert {"run_expid.py", "src/datagen.py", "src/report/__main__.py",
            "bench/compare_commits.py"} <= set(found)
    assert not missing, f"entry points that map errors themselves: {missing}"


def test_an_output_that_cannot_be_written_is_one_error_line_exit_2_and_no_partial_file(
        tmp_path):
    """python -m src.datagen on a full disk (a file size limit of 200 kB, set in the child
    only): one `error:` line naming the file, exit 2, and neither that file nor a temporary
    of it is left."""
    def full_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "src.datagen", "--scale", "tiny", "--out",
                           str(out), "--quiet"], cwd=REPO, preexec_fn=full_disk,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}/"), lines
    failed = Path(lines[0][len("error: cannot write "):].split(": ")[0])
    assert failed.parent.is_dir() and not failed.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
