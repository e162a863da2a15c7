"""Jobs (one per affected clip), their content keys, and the journal that makes a batch resumable.

A job's key hashes everything its output depends on (reenact-fx's version, the target and driver
files' identity, the clip's frame mapping, every effective setting, the codec), so a rerun redoes a
job exactly when its result would differ.  The journal (``DIR/journal.jsonl``) is append-only, one
JSON object a line, flushed and fsynced per event: after a SIGKILL at any point it still holds every
finished job (a torn last line is ignored).  Outputs are written under hidden ``.partial`` names and
renamed into place, so a final name only ever holds a complete file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from .timeline import ClipRef, Span, job_id

CHUNK_DIR = ".chunks"
MEDIA_DIR = "media"


@dataclass
class Job:
    """Everything a worker needs to render one clip (plain data: it is pickled to workers)."""

    id: str
    key: str
    target: str | None
    driver: str | None
    settings: Any                  # config.presets.Settings
    span: Span | None
    output: str                    # final path (a file, or a folder for png)
    codec: str
    alpha: bool
    cache: Any                     # Effect(cache=...): True, False or a folder
    where: dict = field(default_factory=dict)
    problem: str | None = None     # known before rendering (missing media): the job fails
    notes: list = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.span.total if self.span else 0

    def chunks(self, size: int) -> list[tuple[int, int]]:
        """[start, stop) frame ranges of at most ``size`` frames (one range: no chunking)."""
        n = self.frames
        if size <= 0 or n <= size:
            return [(0, n)]
        return [(a, min(a + size, n)) for a in range(0, n, size)]

    def chunk_dir(self, out_dir: str, chunk: tuple[int, int]) -> str:
        return os.path.join(out_dir, CHUNK_DIR, self.id, f"{chunk[0]:06d}-{chunk[1]:06d}")


def _identity(path: str | None) -> Any:
    if not path or not os.path.isfile(path):
        return path
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def _extension(codec: str) -> str:
    from ..media import CODECS

    return CODECS[codec][2]


def make_job(ref: ClipRef, out_dir: str, cache: Any, codec: str | None = None) -> Job:
    from ..config.presets import Settings

    settings: Settings = ref.effect.settings()
    # the picture only: the timeline's own audio tracks carry the sound
    output = {"audio": "none", **({"codec": codec} if codec else {})}
    settings = settings.overridden(None, {"output": output})
    output = settings.params.get("output", {})
    from ..pipeline.schemas import OUTPUT

    out = dict(OUTPUT.resolve(output))
    jid = job_id(ref.where)
    ident = {"reenact_fx": __version__, "target": _identity(ref.target),
             "driver": _identity(ref.effect.driver),
             "span": ref.span.to_data() if ref.span else None,
             "settings": settings.to_data(), "codec": out["codec"], "alpha": out["alpha"]}
    key = hashlib.blake2b(json.dumps(ident, sort_keys=True, default=str).encode(),
                          digest_size=16).hexdigest()
    path = os.path.join(os.path.abspath(out_dir), MEDIA_DIR, jid + _extension(out["codec"]))
    w = ref.where
    return Job(id=jid, key=key, target=ref.target, driver=ref.effect.driver, settings=settings,
               span=ref.span, output=path, codec=out["codec"], alpha=bool(out["alpha"]),
               cache=cache, where={"track": w.track, "track_index": w.track_index,
                                   "clip": w.clip, "clip_index": w.clip_index},
               problem=ref.problem, notes=list(ref.notes))


class Journal:
    """The append-only record of a batch folder."""

    NAME = "journal.jsonl"

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, self.NAME)
        self.done: dict[str, dict] = {}          # job id -> its last "done" event
        self.chunks: dict[str, set] = {}         # job key -> chunks finished ((a, b))
        self.runs = 0
        torn = False
        if os.path.exists(self.path):
            self._load()
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
        self._f = open(self.path, "a", encoding="utf-8")
        if torn:    # a kill mid-line: the next event starts on a line of its own
            self._f.write("\n")

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue   # a line torn by a kill mid-write
                kind = e.get("event")
                if kind == "run":
                    self.runs += 1
                elif kind == "done":
                    self.done[e["job"]] = e
                elif kind in ("failed", "start"):
                    self.done.pop(e["job"], None)
                elif kind == "chunk":
                    self.chunks.setdefault(e["key"], set()).add(tuple(e["chunk"]))

    def write(self, event: str, **data) -> None:
        data = {"event": event, "time": round(time.time(), 3), **data}
        self._f.write(json.dumps(data, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def finished(self, job: Job) -> dict | None:
        """The journal's "done" event of this job, if its key matches and its output is whole."""
        e = self.done.get(job.id)
        if not e or e.get("key") != job.key or not os.path.exists(job.output):
            return None
        return e

    def close(self) -> None:
        self._f.close()
