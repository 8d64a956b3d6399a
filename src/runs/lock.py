"""One writer per grid and per experiment: exclusive locks on files.

A lock is an flock(2) on a file, held while the process runs. The kernel drops it when the
process exits or dies, kill -9 included, so a stale lock of a dead process is simply taken
over by the next one. The file holds the holder's pid, host and start time, for the message
that refuses a second writer. (flock is local to a machine: on a shared file system used
from several hosts, run one tuner per config.)
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..params import host

logger = logging.getLogger(__name__)


class Locked(UserError):
    """Another live process holds the lock."""


def _describe(info):
    if not info:
        return "another process"
    return (f"pid {info.get('pid')} on host {info.get('host')} (since {info.get('since')}: "
            f"{info.get('command', '')[:120]})")


def _read(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


class FileLock:
    """with FileLock(path, "the grid of X"): ... ; raises Locked naming the holder."""

    def __init__(self, path: Path | str, what: str, fix: str = "") -> None:
        self.path, self.what, self.fix = Path(path), what, fix
        self.fd = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read(fd)
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise Locked(f"{self.what} is in use by {_describe(holder)}; lock file "
                             f"{self.path}. Fix: {self.fix or 'wait for it to finish or stop it'}"
                             ) from None
            raise
        previous = _read(fd)
        if previous.get("pid") and previous.get("host") == host():
            logger.info("Taking over the lock of %s left by pid %s (no longer running)",
                        self.what, previous["pid"])
        info = {"pid": os.getpid(), "host": host(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode("utf-8"))
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays for the next holder
            self.fd = None

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()
        return False


def holder(path: Path | str) -> dict[str, Any] | None:
    """The holder's info if a live process holds the lock at path, else None."""
    path = Path(path)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read(fd) or {"pid": "?"}
    finally:
        os.close(fd)  # releases the probe lock, if it got one
    return None


def describe(info: dict[str, Any] | None) -> str:
    return _describe(info)
