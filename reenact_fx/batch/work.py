"""What a worker runs (in a process of the local pool or a Ray task): plain functions of plain data.

- ``track(job, path)``: track one media file into the shared analysis cache (keyed by content, so
  every later task of any job with that media reads it);
- ``analyze(job)``: the job's analysis (tracks from the cache; conversion, smoothing);
- ``render(job)``: the whole clip to its final file (written under a hidden name, then renamed);
- ``render(job, chunk=(a, b))``: frames a..b-1 as a lossless PNG sequence (RGB, and the matte as
  alpha when the look writes alpha) in ``DIR/.chunks``;
- ``join(job, dirs)``: the chunks' frames, in order, encoded once into the final file, so the seams
  carry no re-encoding artefacts: the file is the same as a one-task render of the same frames.

Each returns a result dict (``ok``, ``seconds``, ``error``, ``notes``); a ReenactError or any other
exception becomes ``ok: False`` with the error's text, so one failing clip never takes a worker down.
"""

from __future__ import annotations

import os
import time
import traceback

import numpy as np

from ..errors import ReenactError
from .jobs import Job


class _Reporter:
    """Throttled progress to the driver: (job id, stage, done, total) on the sink."""

    def __init__(self, sink, job: Job, task: str):
        self.sink, self.job, self.task = sink, job, task
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.sink is None or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        try:
            self.sink.put((self.job.id, self.task, stage, int(done), int(total)))
        except Exception:   # progress is a courtesy: never fail a render over it
            self.sink = None


def _effect(job: Job):
    from ..pipeline.effect import Effect

    return Effect(**job.settings.effect_kwargs(), cache=job.cache)


def _analyze(fx, job: Job, report):
    from ..pipeline.timing import Timing

    if job.problem:
        raise ReenactError(job.problem)
    s = job.span
    timing = Timing(s.fps, s.target_times(), s.driver_times())
    a = fx.analyze(job.target, job.driver, progress=report, timing=timing)
    if a.frame_count != job.frames:
        raise ReenactError(f"analysis made {a.frame_count} frames, the clip needs {job.frames}")
    return a


def _guard(task: str, job: Job, fn) -> dict:
    t0 = time.perf_counter()
    try:
        out = fn() or {}
        return {"ok": True, "task": task, "job": job.id, "seconds": time.perf_counter() - t0,
                "pid": os.getpid(), **out}
    except ReenactError as exc:
        error = str(exc)
    except Exception as exc:   # a bug or a library failure: keep the traceback's last lines
        error = f"{type(exc).__name__}: {exc} [{' | '.join(traceback.format_exc().splitlines()[-3:])}]"
    return {"ok": False, "task": task, "job": job.id, "seconds": time.perf_counter() - t0,
            "pid": os.getpid(), "error": error}


def track(job: Job, path: str, *, sink=None) -> dict:
    """Track one media file of the job into the shared cache (run once per media before the jobs
    that use it, so two workers never track the same file at once)."""
    def run():
        with _effect(job) as fx:
            fx.track(path)
        return {"media": path}
    return _guard("track", job, run)


def analyze(job: Job, *, sink=None) -> dict:
    def run():
        with _effect(job) as fx:
            a = _analyze(fx, job, _Reporter(sink, job, "analyze"))
            return {"notes": list(a.notes), "frames": a.frame_count}
    return _guard("analyze", job, run)


def render(job: Job, chunk: tuple[int, int] | None = None, chunk_dir: str | None = None, *,
           sink=None) -> dict:
    def run():
        report = _Reporter(sink, job, "render" if chunk is None else f"chunk {chunk[0]}")
        with _effect(job) as fx:
            a = _analyze(fx, job, report if chunk is None else None)
            if chunk is None:
                fx.render(job.output, progress=lambda d, n: report("render", d, n))
                return {"notes": list(a.notes), "frames": a.frame_count}
            return _render_chunk(fx, job, chunk, chunk_dir, report)
    return _guard("render" if chunk is None else "chunk", job, run)


def _render_chunk(fx, job: Job, chunk: tuple[int, int], folder: str, report) -> dict:
    from ..media import MediaWriter

    a, b = chunk
    w, h = fx.analysis.size
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    writer = MediaWriter(folder, w, h, fx.analysis.fps, codec="png", alpha=job.alpha,
                         protect=[job.target, job.driver or job.target])
    try:
        for t, rgb, a8 in fx.frames(range(a, b), alpha=job.alpha):
            writer.write(rgb, a8)
            report("render", t + 1 - a, b - a)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {"chunk": [a, b], "frames": b - a}


def join(job: Job, folders: list[str], *, sink=None) -> dict:
    def run():
        import cv2

        from ..media import MediaWriter

        report = _Reporter(sink, job, "join")
        names = [os.path.join(d, n) for d in folders for n in sorted(os.listdir(d))]
        if len(names) != job.frames:
            raise ReenactError(f"the chunks hold {len(names)} frames, the clip needs {job.frames}")
        writer = None
        try:
            for i, name in enumerate(names):
                img = cv2.imread(name, cv2.IMREAD_UNCHANGED)
                if img is None:
                    raise ReenactError("a chunk frame cannot be read", path=name)
                rgb = np.ascontiguousarray(img[..., 2::-1])
                a8 = np.ascontiguousarray(img[..., 3]) if img.shape[2] == 4 else None
                if writer is None:
                    writer = MediaWriter(job.output, rgb.shape[1], rgb.shape[0], job.span.fps,
                                         codec=job.codec, alpha=job.alpha,
                                         protect=[job.target, job.driver or job.target])
                writer.write(rgb, a8)
                report("join", i + 1, len(names))
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        writer.close()
        return {"frames": len(names)}
    return _guard("join", job, run)
