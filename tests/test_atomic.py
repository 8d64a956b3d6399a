"""src/atomic.py: a file is replaced whole or not at all, and no temporary file is left."""
import os
import subprocess
import sys

import pytest

from src.atomic import atomic_write


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
