"""Write a file whole or not at all: the one way files are replaced in this project.

    with atomic_write(path) as tmp:
        frame.to_csv(tmp)        # any writer: pandas, pyarrow, torch.save, open(tmp, "w")

The content goes to a temporary file in path's folder (a rename is only atomic within one
file system); on leaving the block it is flushed to disk (fsync) and renamed over path, so a
reader, or a process killed mid-write, sees the old file or the complete new one. On any
error, Ctrl-C included, the temporary file is removed and path is left as it was; an OSError
(a full disk, a missing folder) becomes a WriteError naming path: one line and exit 2 from a
command (src/cli.py run_main), still an OSError to code that catches those.

A process killed inside the block leaves its temporary file: temp_path names it and
leftovers(path) finds it again, so the naming is defined here only.
"""
from __future__ import annotations

import glob
import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WriteError

_serial = itertools.count()  # two writes of one process to one path get two temporary names
_TEMP_TAIL = re.compile(r"\.\d+-\d+\.tmp")  # what temp_path appends to path's name


def temp_path(path: Path | str) -> Path:
    """A new temporary name for path, in its folder: `<name>.<pid>-<serial>.tmp`."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{next(_serial)}.tmp")


def leftovers(path: Path | str) -> list[Path]:
    """The temporary files (or folders) of path that exist: left by a process killed while
    writing path, or made by one writing it now, so remove them only where no other process
    can be writing path (under its writer's lock)."""
    path = Path(path)
    candidates = path.parent.glob(glob.escape(path.name) + ".*.tmp")
    return sorted(p for p in candidates if _TEMP_TAIL.fullmatch(p.name[len(path.name):]))


@contextmanager
def atomic_write(path: Path | str) -> Iterator[Path]:
    """Yields the temporary path to write (temp_path); path gets its content when the block
    ends without an error."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the content on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(path, err) from err
        raise
