"""Helpers over per-frame sequences (valid masks, runs)."""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

import numpy as np

T = TypeVar("T")


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in ``mask``."""
    v = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(v[1:] != v[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def prefetch(items: Iterable[T], depth: int = 3) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` ahead of the consumer.

    Rendering (numpy, OpenCV) and encoding (FFmpeg) both release the GIL, so producing frame t+1
    while frame t is encoded uses both cores.  An exception in the producer is raised in the
    consumer; a consumer that stops early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as exc:  # handed to the consumer
            q.put((False, exc))

    worker = threading.Thread(target=produce, name="reenact-fx-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


class Stopwatch:
    """Seconds and calls accumulated per stage name, from any number of threads (stages that run
    in several threads at once add up their busy time)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds[stage] += dt
                self.calls[stage] += 1

    def fps(self) -> dict[str, float]:
        return {k: self.calls[k] / v for k, v in self.seconds.items() if v > 0}
