"""The batch driver: plan jobs from a timeline, skip the finished ones, run the rest on an executor,
aggregate progress, write the report and the relinked timeline.

A job of at most ``chunk_frames`` frames (or any job when ``chunk_frames`` is 0) is one task.  A
longer one is an ``analyze`` task (it fills the shared analysis cache), then one task per chunk of
frames (lossless PNG), then a ``join`` task that encodes the chunks' frames once.  Chunks already
finished by an interrupted run are reused (journal + complete folder).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction

from . import BatchError
from .jobs import CHUNK_DIR, MEDIA_DIR, Job, Journal, make_job


@dataclass
class Options:
    executor: str = "local"
    workers: int = 1
    address: str | None = None
    chunk_frames: int = 0
    handles: int = 0
    rate: Fraction | None = None
    cache: object = True
    formats: list = field(default_factory=list)
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    quiet: bool = False
    codec: str | None = None           # every clip's output codec, over the clips' own looks


@dataclass
class _State:
    job: Job
    status: str = "pending"            # pending, running, done, skipped, failed
    tasks: list = field(default_factory=list)
    error: str | None = None
    notes: list = field(default_factory=list)
    chunks: list = field(default_factory=list)
    chunks_left: set = field(default_factory=set)
    started: float | None = None
    finished: float | None = None


def _clean_partials(out_dir: str) -> None:
    """Hidden partial outputs left by a killed run (never under a final name) are removed."""
    for pattern in (os.path.join(out_dir, MEDIA_DIR, ".*.partial-*"),
                    os.path.join(out_dir, CHUNK_DIR, "*", ".*.partial-*"),
                    os.path.join(out_dir, ".*.partial-*")):
        for p in glob.glob(pattern):
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)


def _complete(job: Job) -> bool:
    """The output holds exactly the job's frames (a check on top of the journal's word)."""
    if job.codec == "png":
        return os.path.isdir(job.output) and len(os.listdir(job.output)) == job.frames
    from ..media import MediaReader

    try:
        with MediaReader(job.output) as r:
            return r.info.frame_count == job.frames
    except Exception:
        return False


class _Bar:
    """Progress over every job's frames, aggregated from the workers' reports."""

    def __init__(self, total: int, quiet: bool):
        from ..pipeline.progress import Progress

        self.bar = None if quiet else Progress("batch", total)
        self.parts: dict[tuple, int] = {}
        self.shown = -1

    def update(self, items) -> None:
        for job, task, stage, done, total in items:
            if stage == "render":     # frames rendered (tracking and joining are not counted)
                self.parts[(job, task)] = done
        done = min(sum(self.parts.values()), self.bar.total) if self.bar is not None else 0
        if self.bar is not None and done != self.shown:
            self.shown = done
            self.bar(done)

    def finish_job(self, job: Job) -> None:
        for k in [k for k in self.parts if k[0] == job.id]:
            del self.parts[k]
        self.parts[(job.id, "done")] = job.frames
        self.update([])

    def close(self):
        if self.bar is not None:
            self.bar.finish()


def run(timeline_path: str, out_dir: str, opts: Options, stream=None) -> dict:
    """Render the timeline's reenact-fx clips into ``out_dir``; returns the report (also written
    to ``out_dir/report.json``)."""
    from . import executors, relink
    from .timeline import affected, read_timeline, source_format

    stream = stream or sys.stderr
    say = (lambda *a: None) if opts.quiet else (lambda msg: print(msg, file=stream, flush=True))
    t_start = time.time()
    timeline = read_timeline(timeline_path, opts.rate)
    refs = affected(timeline, timeline_path, rate=opts.rate, handles=opts.handles)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.join(out_dir, MEDIA_DIR), exist_ok=True)
    fmt = source_format(timeline, timeline_path)
    timeline_out = relink.outputs(timeline_path, out_dir, fmt, opts.formats)
    _clean_partials(out_dir)
    journal = Journal(out_dir)
    journal.write("run", timeline=os.path.abspath(timeline_path), executor=opts.executor,
                  workers=opts.workers)
    cache = opts.cache
    if cache is True:   # one folder for every worker, wherever it runs (the analysis cache is
        from ..pipeline.cache import default_root   # keyed by content: workers share entries)

        cache = str(default_root())
    states = [_State(make_job(r, out_dir, cache, opts.codec)) for r in refs]
    clips = {s.job.id: r.clip for s, r in zip(states, refs)}
    for s in states:
        s.notes = list(s.job.notes)
        if journal.finished(s.job) and _complete(s.job):
            s.status = "skipped"
        elif s.job.problem:
            s.status, s.error = "failed", s.job.problem
            journal.write("failed", job=s.job.id, key=s.job.key, error=s.error)
    todo = [s for s in states if s.status == "pending"]
    say(f"batch: {len(states)} reenact-fx clip(s) in {timeline_path}; "
        f"{sum(s.status == 'skipped' for s in states)} already rendered, "
        f"{sum(s.status == 'failed' for s in states)} cannot render, {len(todo)} to render")
    ex = None
    try:
        if todo:
            ex = executors.make(opts.executor, opts.workers, address=opts.address,
                                cpus=opts.cpus_per_task, gpus=opts.gpus_per_task,
                                log=os.path.join(out_dir, "workers.log"))
            say(f"batch: executor {ex.describe()}")
            _schedule(ex, todo, journal, out_dir, opts, _Bar(sum(s.job.frames for s in todo),
                                                               opts.quiet))
    finally:
        if ex is not None:
            ex.close()
        journal.close()

    for s in states:
        if s.status in ("done", "skipped"):
            relink.relink(clips[s.job.id], s.job)
    written, problems = [], []
    for path in timeline_out:
        try:
            written.append(relink.write(timeline, path))
        except BatchError as exc:
            problems.append(str(exc))
    report = _report(timeline_path, out_dir, opts, states, written, problems, t_start)
    _write_json(os.path.join(out_dir, "report.json"), report)
    _summary(report, say)
    return report


def _schedule(ex, todo: list[_State], journal: Journal, out_dir: str, opts: Options, bar) -> None:
    from . import work

    running: dict = {}     # handle -> (state, task kind, chunk)

    def submit(s: _State, kind: str, chunk=None):
        job = s.job
        if kind == "render" and chunk is None:
            h = ex.submit(work.render, job)
        elif kind == "analyze":
            h = ex.submit(work.analyze, job)
        elif kind == "chunk":
            h = ex.submit(work.render, job, chunk, job.chunk_dir(out_dir, chunk))
        else:
            h = ex.submit(work.join, job, [job.chunk_dir(out_dir, c) for c in s.chunks])
        running[h] = (s, kind, chunk)

    def fail(s: _State, error: str) -> None:
        if s.status == "failed":
            return
        s.status, s.error, s.finished = "failed", error, time.time()
        journal.write("failed", job=s.job.id, key=s.job.key, error=error)

    def start(s: _State) -> None:
        if s.chunks:
            return      # already started
        s.chunks = s.job.chunks(opts.chunk_frames)
        if len(s.chunks) == 1:
            submit(s, "render")
            return
        done = journal.chunks.get(s.job.key, set())
        s.chunks_left = {c for c in s.chunks if not (
            c in done and os.path.isdir(s.job.chunk_dir(out_dir, c)))}
        submit(s, "analyze" if s.chunks_left else "join")

    # each media file is tracked once, by one task, before the jobs that use it (with a warm
    # cache these tasks only hash the file); a job starts when all of its media are tracked
    waiting: dict[int, set] = {}
    tracking: dict[tuple, list] = {}
    for s in todo:
        s.status, s.started = "running", time.time()
        journal.write("start", job=s.job.id, key=s.job.key)
        needs = set()
        if opts.cache is not False:
            tracking_settings = json.dumps(s.job.settings.params.get("tracking", {}),
                                           sort_keys=True, default=str)
            for media in filter(None, (s.job.target, s.job.driver)):
                k = (os.path.realpath(media), tracking_settings)
                if k not in tracking:
                    tracking[k] = []
                    h = ex.submit(work.track, s.job, media)
                    running[h] = (s, "track", k)
                if k not in needs:      # a clip driven by its own media needs it once
                    tracking[k].append(s)
                    needs.add(k)
        waiting[id(s)] = needs
        if not needs:
            start(s)

    while running:
        for h in ex.wait(running, timeout=0.5):
            s, kind, chunk = running.pop(h)
            try:
                r = ex.result(h)
            except Exception as exc:   # a worker that died (killed, out of memory, crashed)
                r = {"ok": False, "task": kind, "error": f"the worker failed: "
                     f"{type(exc).__name__}: {exc}", "seconds": None}
            if kind == "track":
                # a tracking failure is not the job's verdict: its own task tracks again and
                # reports the error in the job's words
                for other in tracking[chunk]:
                    other.tasks.append({"task": "track", "media": chunk[0],
                                        "seconds": r.get("seconds"), "pid": r.get("pid"),
                                        "ok": r.get("ok")})
                    waiting[id(other)].discard(chunk)
                    if not waiting[id(other)]:
                        start(other)
                continue
            s.tasks.append({k: r.get(k) for k in ("task", "chunk", "seconds", "pid", "ok")})
            s.notes += [n for n in r.get("notes", []) if n not in s.notes]
            if not r["ok"]:
                fail(s, r["error"])
                continue
            if s.status == "failed":
                continue    # another task of this job failed: its other results are dropped
            if kind == "analyze":
                for c in sorted(s.chunks_left):
                    submit(s, "chunk", c)
            elif kind == "chunk":
                journal.write("chunk", job=s.job.id, key=s.job.key, chunk=list(chunk))
                s.chunks_left.discard(chunk)
                if not s.chunks_left:
                    submit(s, "join")
            if kind in ("render", "join"):
                s.status, s.finished = "done", time.time()
                journal.write("done", job=s.job.id, key=s.job.key, output=s.job.output,
                              frames=s.job.frames)
                shutil.rmtree(os.path.join(out_dir, CHUNK_DIR, s.job.id), ignore_errors=True)
                bar.finish_job(s.job)
        bar.update(ex.drain())
    bar.close()


def _report(timeline_path, out_dir, opts, states, written, problems, t_start) -> dict:
    jobs = []
    for s in states:
        j = s.job
        jobs.append({
            "id": j.id, **j.where, "status": s.status,
            "output": j.output if s.status in ("done", "skipped") else None,
            "target": j.target, "driver": j.driver, "key": j.key,
            "frames": j.frames, "clip_frames": j.span.frames if j.span else None,
            "fps": str(j.span.fps) if j.span else None, "codec": j.codec,
            "seconds": round(s.finished - s.started, 3) if s.started and s.finished else None,
            "tasks": s.tasks, "error": s.error, "notes": s.notes})
    failed = [j for j in jobs if j["status"] == "failed"]
    return {"version": 1, "timeline": os.path.abspath(timeline_path), "out": out_dir,
            "executor": opts.executor, "workers": opts.workers,
            "chunk_frames": opts.chunk_frames, "handles": opts.handles,
            "started": round(t_start, 3), "seconds": round(time.time() - t_start, 3),
            "relinked_timelines": written, "timeline_errors": problems,
            "counts": {k: sum(j["status"] == k for j in jobs)
                       for k in ("done", "skipped", "failed")},
            "failed": [j["id"] for j in failed], "jobs": jobs}


def _write_json(path: str, data) -> None:
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _summary(report: dict, say) -> None:
    c = report["counts"]
    say(f"batch: {c['done']} rendered, {c['skipped']} skipped (done before), {c['failed']} failed "
        f"in {report['seconds']:.1f} s")
    for j in report["jobs"]:
        if j["status"] == "failed":
            say(f"  FAILED {j['id']} (track '{j['track']}', clip '{j['clip']}'): {j['error']}")
    for e in report["timeline_errors"]:
        say(f"  timeline not written: {e}")
    for p in report["relinked_timelines"]:
        say(f"batch: wrote {p}")
    say(f"batch: report {os.path.join(report['out'], 'report.json')}")
