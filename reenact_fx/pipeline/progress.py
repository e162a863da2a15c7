"""A terminal progress line: stage, frames, fps and ETA (stderr, redrawn in place on a TTY)."""

from __future__ import annotations

import sys
import time


class Progress:
    # below this much time a rate means nothing (a cached stage reports all its frames at once)
    MIN_RATE_TIME = 0.05

    def __init__(self, stage: str, total: int, stream=None, min_interval: float = 0.25,
                 unit: str = "fps"):
        self.stage, self.total = stage, max(int(total), 0)
        self.unit = unit               # what a rate of done / second is called: fps, steps/s
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.start = self.last = time.perf_counter()
        self.done = 0
        self.min_interval = min_interval if self.tty else 5.0

    def restart(self, total: int) -> None:
        """Count again from now (a new stage of work with its own rate)."""
        self.start = self.last = time.perf_counter()
        self.done, self.total = 0, max(int(total), 0)

    def __call__(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if now - self.last >= self.min_interval or done >= self.total:
            self.last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        dt = max(now - self.start, 1e-9)
        fps = self.done / dt if dt >= self.MIN_RATE_TIME else 0.0
        left = (self.total - self.done) / fps if fps > 0 else float("nan")
        if self.done >= self.total:
            left = 0.0
        eta = f"{int(left // 60)}:{int(left % 60):02d}" if left == left else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        width = 24
        fill = int(width * pct / 100)
        return (f"{self.stage:<8} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                f"{pct:5.1f}%  {f'{fps:6.1f}' if fps > 0 else '     -'} {self.unit}  ETA {eta}")

    def _draw(self, now: float) -> None:
        end = "" if self.tty and self.done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + self.line(now) + end)
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.done < self.total:
            self.stream.write("\n")
