"""SIGTERM and SIGHUP handled like SIGINT: the running command stops through KeyboardInterrupt, so
every ``finally``/``except BaseException`` that removes a partial output runs (a batch scheduler, a
container stop or a closed terminal sends these, not SIGINT)."""

from __future__ import annotations

import signal
import threading

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


def _raise(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Route SIGTERM/SIGHUP to KeyboardInterrupt (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in SIGNALS:
        if signal.getsignal(s) in (signal.SIG_DFL, None):
            signal.signal(s, _raise)
