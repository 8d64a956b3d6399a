"""Write a file whole or not at all: the one way files are replaced in this project.

    with atomic_write(path) as tmp:
        frame.to_csv(tmp)        # any writer: pandas, pyarrow, torch.save, open(tmp, "w")

The content goes to a temporary file in path's folder (a rename is only atomic within one
file system); on leaving the block it is flushed to disk (fsync) and renamed over path, so a
reader, or a process killed mid-write, sees the old file or the complete new one. On any
error, Ctrl-C included, the temporary file is removed and path is left as it was.
"""
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_serial = itertools.count()  # two writes of one process to one path get two temporary names


@contextmanager
def atomic_write(path) -> Iterator[Path]:
    """Yields the temporary path to write; path gets its content when the block ends
    without an error. The temporary name ends in .tmp (what leftovers are searched by)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{next(_serial)}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the content on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
