"""Progress of long loops (training epochs, scoring) for a person watching or a log reader.

On a terminal: one tqdm bar. Anywhere else (a log file, a batch scheduler, `nohup`): a line
every 10% of the loop and at least every `every_seconds`, so an hour-long epoch is never
silent and its log still stays short. Both show rows/s, the ETA and what the caller adds
(running loss, last validation AUC).
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

logger = logging.getLogger(__name__)


def _duration(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """p = Progress(total_steps, "epoch 1"); p.update(rows=8192, loss=0.41); p.close()."""

    def __init__(self, total: int, desc: str, unit: str = "batches", every_seconds: float = 60.0,
                 interactive: bool | None = None, enabled: bool = True) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.every_seconds = every_seconds
        self.enabled = enabled
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.done = self.rows = 0
        self.start = self.last_line = time.monotonic()
        self.next_tenth = 1
        self.info = {}
        self.bar = (tqdm(total=self.total, desc=desc, unit=unit[:-1] if unit.endswith("s")
                         else unit, file=sys.stderr, dynamic_ncols=True, leave=False)
                    if enabled and self.interactive else None)

    def _rate(self):
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return self.rows / elapsed, elapsed

    def summary(self) -> str:
        rate, elapsed = self._rate()
        left = (self.total - self.done) * elapsed / max(self.done, 1)
        extra = "".join(f", {k} {v:.4f}" if isinstance(v, float) else f", {k} {v}"
                        for k, v in self.info.items() if v is not None)
        return (f"{self.desc}: {100 * self.done / max(self.total, 1):.0f}% ({self.done:,}/"
                f"{self.total:,} {self.unit}), {rate:,.0f} rows/s, elapsed {_duration(elapsed)}, "
                f"ETA {_duration(left)}{extra}")

    def update(self, steps: int = 1, rows: int = 0, **info: Any) -> None:
        self.done += steps
        self.rows += rows
        self.info.update(info)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(steps)
            rate, _ = self._rate()
            self.bar.set_postfix({"rows/s": f"{rate:,.0f}", **{
                k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in self.info.items()
                if v is not None}}, refresh=False)
            return
        now = time.monotonic()
        tenth = 10 * self.done // max(self.total, 1)
        if tenth >= self.next_tenth or now - self.last_line >= self.every_seconds:
            self.next_tenth = tenth + 1
            self.last_line = now
            logger.info(self.summary())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            if self.enabled:
                logger.info(self.summary())
