"""Where tasks run: a local process pool (default, no Ray needed) or Ray.

Both take the same calls (``submit(fn, *args)`` of a ``work`` function, ``wait``, ``result``) and
carry the workers' progress back to the driver (``drain``): a multiprocessing queue for the pool, a
small Ray actor for Ray.  Ray starts a local cluster for the run unless ``address`` names an existing
one (``ray://host:10001`` or ``auto``); its workers need reenact-fx installed and the media, the output
folder and the analysis cache on paths they share with the driver (a shared file system).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait

from . import BatchError

_SINK = None   # the progress queue of a pool worker (set by its initializer)


def _quiet_worker() -> None:
    # a worker renders one job with its own threads (BLAS threads on top only oversubscribe), and
    # mediapipe's C++ logging of every worker would bury the driver's progress
    for k, v in (("OMP_NUM_THREADS", "1"), ("GLOG_minloglevel", "2"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(k, v)


def _init_worker(sink, log: str | None) -> None:
    global _SINK
    _SINK = sink
    _quiet_worker()
    if log:   # the libraries' own chatter (mediapipe, TensorFlow Lite) goes to the run's log
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _pool_call(fn, *args):
    return fn(*args, sink=_SINK)


class LocalExecutor:
    """A pool of ``workers`` processes (spawned: mediapipe and FFmpeg run threads, which fork
    would copy in an undefined state)."""

    name = "local"

    def __init__(self, workers: int, log: str | None = None, **_):
        self.workers, self.log = max(1, int(workers)), log
        ctx = mp.get_context("spawn")
        self._queue = ctx.Queue()
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(self._queue, log))

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker(s)" + (
            f"; worker output in {self.log}" if self.log else "")

    def submit(self, fn, *args):
        return self._pool.submit(_pool_call, fn, *args)

    def wait(self, handles, timeout: float):
        done, _ = futures_wait(list(handles), timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle) -> dict:
        return handle.result()   # a crashed worker raises BrokenProcessPool: the runner reports it

    def drain(self) -> list:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except (queue.Empty, OSError, ValueError):
                return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._queue.close()


class _ActorSink:
    """The progress sink a Ray task gets: puts go to the driver's progress actor."""

    def __init__(self, actor):
        self.actor = actor

    def put(self, item) -> None:
        self.actor.put.remote(item)


def _ray_call(fn, args, sink):
    _quiet_worker()
    return fn(*args, sink=sink)


class RayExecutor:
    """Ray tasks, each asking for ``cpus``/``gpus`` (a local cluster of ``workers`` CPUs by
    default, or the cluster at ``address``)."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, cpus: float = 1.0,
                 gpus: float = 0.0):
        try:
            import ray
        except ImportError:
            raise BatchError('--executor ray needs Ray: pip install "reenact-fx[batch]"') from None
        self.ray, self.address = ray, address
        self.workers, self.cpus, self.gpus = max(1, int(workers)), float(cpus), float(gpus)
        self._owned = not ray.is_initialized()
        if self._owned:
            kwargs = dict(include_dashboard=False, log_to_driver=False,
                          configure_logging=True, logging_level="ERROR")
            if address:
                ray.init(address=address, **kwargs)
            else:
                # a local cluster sized for this run: its CPUs are the worker slots
                # on the loopback address: a run's own cluster talks to nothing outside
                ray.init(num_cpus=self.workers * max(self.cpus, 1.0),
                         object_store_memory=256 * 1024 ** 2, _node_ip_address="127.0.0.1",
                         **kwargs)

        @ray.remote(num_cpus=0)
        class Progress:
            def __init__(self):
                self.items = []

            def put(self, item):
                self.items.append(item)

            def drain(self):
                out, self.items = self.items, []
                return out

        self._progress = Progress.remote()
        self._sink = _ActorSink(self._progress)
        self._task = ray.remote(_ray_call).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                                   max_retries=1)

    def describe(self) -> str:
        where = self.address or f"local cluster, {self.workers} CPU slot(s)"
        res = self.ray.cluster_resources()
        return (f"ray ({where}; cluster CPUs {res.get('CPU', 0):g}, GPUs {res.get('GPU', 0):g}; "
                f"{self.cpus:g} CPU, {self.gpus:g} GPU per task; worker logs in Ray's session "
                f"folder)")

    def submit(self, fn, *args):
        return self._task.remote(fn, args, self._sink)

    def wait(self, handles, timeout: float):
        handles = list(handles)
        if not handles:
            return []
        # every task ready within the timeout (the driver polls progress in between anyway)
        ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=timeout)
        return ready

    def result(self, handle) -> dict:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as exc:   # the task's worker died, or Ray failed
            import re

            raise RuntimeError(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()) from None

    def drain(self) -> list:
        return self.ray.get(self._progress.drain.remote())

    def close(self) -> None:
        if self._owned:
            self.ray.shutdown()


def make(name: str, workers: int, log: str | None = None, **options):
    if name == "local":
        return LocalExecutor(workers, log)
    if name == "ray":
        return RayExecutor(workers, **options)
    raise BatchError(f"unknown executor '{name}'; choose local or ray", key="executor")
