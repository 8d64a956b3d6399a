"""src/atomic.py: a file is replaced whole or not at all, and no temporary file is left."""
import os
import subprocess
import sys

import pytest
import torch

from src.atomic import atomic_write, leftovers
from src.errors import UserError, WriteError
from src.training.checkpoints import atomic_save
from src.tuning.tuner import GridRuns


def test_content_replaces_the_file_and_no_temporary_is_left(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old\n")
    with atomic_write(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp")
        tmp.write_text("new\n")
        assert path.read_text() == "old\n"  # not replaced before the block ends
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_an_error_keeps_the_old_file_and_removes_the_temporary(tmp_path, error):
    path = tmp_path / "a.csv"
    path.write_text("old\n")
    with pytest.raises(error):
        with atomic_write(path) as tmp:
            tmp.write_text("half")
            raise error()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_full_disk_keeps_the_old_file(tmp_path):
    """A write cut short by the file size limit (a full disk, by real means) in a child
    process: the old content stays, no temporary is left."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    code = (
        "import resource, signal, sys\n"
        "from src.atomic import atomic_write\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        f"with atomic_write({str(path)!r}) as tmp:\n"
        "    tmp.write_bytes(b'x' * 5000)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode != 0 and "File too large" in done.stderr
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_leftovers_lists_the_temporary_names_atomic_write_makes_and_only_those(tmp_path):
    path = tmp_path / "a.csv"
    others = ["a.csv.bak", "a.csv.tmp", "a.csv.x-1.tmp", "a.csv.12-3.tmp.old", "b.a.csv.1-2.tmp",
              "a.csv2.1-2.tmp", "a.csv.gz.1-2.tmp"]  # the last: a temporary of a.csv.gz
    for name in others:
        (tmp_path / name).write_text("")
    with atomic_write(path) as first, atomic_write(path) as second:
        first.write_text("1")
        second.write_text("2")
        assert first != second  # two writes of one process to one path
        assert leftovers(path) == sorted([first, second])
    assert leftovers(path) == [] and path.read_text() == "1"
    assert leftovers(tmp_path / "no_folder" / "a.csv") == []


def test_a_failed_write_is_a_user_error_naming_the_path_and_still_an_os_error(tmp_path):
    path = tmp_path / "a.csv"
    with pytest.raises(WriteError) as caught:
        with atomic_write(path) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    err = caught.value
    assert isinstance(err, UserError) and isinstance(err, OSError)
    assert str(err).startswith(f"cannot write {path}: No space left on device. Fix: ")
    assert err.strerror == "No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_save_that_fails_midway_keeps_the_old_file_and_no_temporary(tmp_path):
    """torch.save fails after it has created its file (a lambda cannot be pickled): the
    previous checkpoint stays and no temporary file is left."""
    path = tmp_path / "x.model"
    atomic_save({"w": torch.zeros(3)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception, match="lambda"):
        atomic_save({"w": torch.ones(3), "f": lambda: 0}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.model"]


def test_the_tuner_removes_the_temporary_files_of_a_killed_run(tmp_path, monkeypatch):
    """Before a run starts, the temporary checkpoints and training states a killed run of the
    same experiment left are removed, and nothing else."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [f"x{partial}.{kind}.{pid}-0.tmp" for partial in ("", ".partial")
             for kind, pid in (("model", 11), ("state", 12))]
    kept = ["x.model", "x.model.bak", "y.model.11-0.tmp", "x.log"]
    for name in stale + kept:
        (folder / name).write_text("")
    runs = GridRuns(tmp_path / "grid", ["x"], lock_paths={"x": folder / "x.lock"})
    assert runs.check("x") is None
    assert sorted(p.name for p in folder.iterdir()) == sorted(kept)
