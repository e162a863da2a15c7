"""SIGTERM and SIGHUP handled like SIGINT: the running command stops through KeyboardInterrupt, so
every ``finally``/``except BaseException`` that removes a partial output runs (a batch scheduler, a
container stop or a closed terminal sends these, not SIGINT)."""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


def _raise(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def handled():
    """Within the block, SIGTERM/SIGHUP raise KeyboardInterrupt (main thread only; elsewhere, or
    when the embedding program set its own handlers, nothing changes); restored afterwards."""
    before = {}
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            if signal.getsignal(s) in (signal.SIG_DFL, None):
                before[s] = signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)
