"""Reading a timeline and mapping each reenact-fx clip to the frames it must render.

Time is mapped by time, never by frame numbers: output frame ``k`` (``k`` from ``-head`` to
``frames + tail - 1``) is at ``r = k / fps`` seconds of record time from the clip's first frame; it
shows target media time ``start + r * speed`` (``start`` = the clip's source in relative to its media's
available range; ``speed`` = the product of its ``LinearTimeWarp`` scalars, 0 for a ``FreezeFrame``)
and is driven by driver time ``driver_in + r`` (the performance plays in real time on the timeline).
The output rate is ``--rate``, else the timeline's (its ``global_start_time`` rate), else the rate the
clip's source range is expressed in.  A clip's source range duration is its record duration (OTIO's
convention for time warps, as the EDL and FCP XML adapters use it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import unquote, urlparse

import numpy as np

from . import BatchError, require_otio
from .schema import ClipEffect, Where, read

FORMAT_KEY = "source_format"   # timeline.metadata["reenact_fx"][...]: the format annotate read


def as_fraction(rate: float) -> Fraction:
    """29.97 -> 30000/1001, 25.0 -> 25 (OTIO keeps rates as floats)."""
    for den in (1, 1001):
        num = round(rate * den / 1000) * 1000 if den == 1001 else round(rate)
        if num and abs(num / den - rate) < 1e-3:
            return Fraction(num, den)
    return Fraction(rate).limit_denominator(1001)


@dataclass(frozen=True)
class Span:
    """The output frames of one clip and the media times each of them shows."""

    fps: Fraction
    frames: int          # the clip's own frames (its record duration)
    head: int            # handle frames before the clip
    tail: int            # handle frames after it
    target_start: float  # seconds into the target media at the clip's first frame
    speed: float         # target seconds per record second (LinearTimeWarp; 0: freeze frame)
    driver_in: float     # seconds into the driver at the clip's first frame

    @property
    def total(self) -> int:
        return self.head + self.frames + self.tail

    def record_times(self) -> np.ndarray:
        return np.arange(-self.head, self.frames + self.tail) / float(self.fps)

    def target_times(self) -> np.ndarray:
        return self.target_start + self.record_times() * self.speed

    def driver_times(self) -> np.ndarray:
        return np.maximum(self.driver_in + self.record_times(), 0.0)

    def to_data(self) -> dict:
        return {"fps": str(self.fps), "frames": self.frames, "head": self.head, "tail": self.tail,
                "target_start": self.target_start, "speed": self.speed,
                "driver_in": self.driver_in}


@dataclass
class ClipRef:
    """A video clip of the timeline with a reenact-fx effect, and what it maps to."""

    clip: object            # the otio Clip (relinked in place later)
    where: Where
    effect: ClipEffect
    target: str | None      # the target media path (None: missing, see problem)
    span: Span | None
    problem: str | None = None   # why this clip cannot render (missing media...), a job failure
    notes: tuple = ()


def read_timeline(path: str, rate: Fraction | None = None):
    """The timeline in ``path``, read by the adapter of its suffix (an EDL, which has no rate of its
    own, is read at ``rate``, else at the adapter's default of 24)."""
    otio = require_otio()
    if not os.path.isfile(path):
        raise BatchError("timeline file not found", path=path)
    try:
        kwargs = {}
        if rate and otio.adapters.from_filepath(path).name == "cmx_3600":
            kwargs["rate"] = float(rate)
        return otio.adapters.read_from_file(path, **kwargs)
    except Exception as exc:   # adapters raise their own types (and plain ValueErrors)
        suffixes = ", ".join(sorted(otio.adapters.suffixes_with_defined_adapters(read=True)))
        raise BatchError(f"cannot read it as a timeline ({type(exc).__name__}: {exc}); formats of "
                         f"the installed adapters: {suffixes}", path=path) from None


def source_format(timeline, path: str) -> str:
    """The suffix of the format a timeline came in: its own, or the one annotate read it from."""
    md = timeline.metadata.get("reenact_fx") if hasattr(timeline, "metadata") else None
    fmt = md.get(FORMAT_KEY) if md is not None and hasattr(md, "get") else None
    return str(fmt) if fmt else os.path.splitext(path)[1].lower().lstrip(".")


def media_path(reference, base: str) -> str | None:
    """The file an ExternalReference points at (file:// URL or path, relative to ``base``)."""
    url = getattr(reference, "target_url", None)
    if not url:
        return None
    if url.startswith("file:"):
        url = unquote(urlparse(url).path)
    elif re.match(r"^[a-z][a-z0-9+.-]*://", url):
        return url    # a remote URL: reported missing below
    return os.path.normpath(url if os.path.isabs(url) else os.path.join(base, url))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def job_id(where: Where) -> str:
    return f"{where.track_index:02d}-{_slug(where.track)}-{where.clip_index:03d}-{_slug(where.clip)}"


def video_clips(timeline, path: str):
    """(Where, clip) of every clip on the timeline's video tracks, nested ones included."""
    otio = require_otio()
    for ti, track in enumerate(timeline.tracks):
        if track.kind != otio.schema.TrackKind.Video:
            continue
        for ci, clip in enumerate(track.find_clips()):
            yield Where(path, track.name or f"track {ti}", ti, clip.name or f"clip {ci}", ci), clip


def _speed(clip) -> float:
    otio = require_otio()
    speed = 1.0
    for fx in clip.effects:
        if isinstance(fx, otio.schema.LinearTimeWarp):
            speed *= float(fx.time_scalar)   # FreezeFrame is a LinearTimeWarp with scalar 0
    return speed


def timeline_rate(timeline) -> Fraction | None:
    start = getattr(timeline, "global_start_time", None)
    return as_fraction(start.rate) if start is not None else None


def map_clip(clip, where: Where, fx: ClipEffect, *, rate: Fraction | None, handles: int) -> ClipRef:
    """The frames a clip renders; media problems become the job's failure, not the batch's."""
    base = os.path.dirname(os.path.abspath(where.timeline))
    ref = clip.media_reference
    target = media_path(ref, base) if ref is not None else None
    problem = None
    if target is None:
        problem = f"no media: the clip's media reference is {type(ref).__name__ if ref else None}"
    elif not os.path.isfile(target):
        problem = f"media file not found: {target}"
    elif fx.driver is not None and not os.path.isfile(fx.driver):
        problem = f"driver file not found: {fx.driver}"
    src = clip.source_range
    available = getattr(ref, "available_range", None) if ref is not None else None
    if src is None:
        src = available
    if src is None:
        if problem is None:
            from ..media import MediaReader

            with MediaReader(target) as r:
                otio = require_otio()
                rt = otio.opentime.RationalTime
                src = otio.opentime.TimeRange(rt(0, float(r.info.fps)),
                                              rt(r.info.frame_count, float(r.info.fps)))
        else:
            return ClipRef(clip, where, fx, target, None, problem)
    fps = rate or as_fraction(src.duration.rate)
    frames = int(round(src.duration.to_seconds() * float(fps)))
    if frames < 1:
        raise where.error(f"the clip lasts {src.duration.to_seconds():.3f} s: less than one frame "
                          f"at {float(fps):g} fps")
    start = src.start_time - available.start_time if available is not None else src.start_time
    span = Span(fps=fps, frames=frames, head=handles, tail=handles,
                target_start=max(start.to_seconds(), 0.0), speed=_speed(clip),
                driver_in=fx.driver_in)
    notes = []
    if span.speed < 0:
        notes.append(f"{where.clip}: a reversed time warp ({span.speed:g}); media times before 0 "
                     "hold the first frame")
    return ClipRef(clip, where, fx, target, span, problem, tuple(notes))


def affected(timeline, path: str, *, rate: Fraction | None = None, handles: int = 0
             ) -> list[ClipRef]:
    """Every video clip with a reenact-fx effect, validated and mapped (an invalid effect is a
    BatchError for the whole batch: nothing renders from a timeline that says the wrong thing)."""
    rate = rate or timeline_rate(timeline)
    out = []
    for where, clip in video_clips(timeline, path):
        fx = read(clip, where)
        if fx is not None:
            out.append(map_clip(clip, where, fx, rate=rate, handles=handles))
    return out
