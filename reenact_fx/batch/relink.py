"""The relinked timeline: each rendered clip points at its rendered media, the rest is untouched.

A relinked clip's media reference is the rendered file (or, for ``codec: png``, an
ImageSequenceReference); its source range is the clip's frames inside it (after the handles); the
reenact-fx effect and the time warps are dropped, since they are baked into the rendered frames.
What it was is kept in ``clip.metadata["reenact_fx"]["rendered_from"]`` (the original media URL,
source range, time-warp speed and effect settings), so the render can be traced or redone.
"""

from __future__ import annotations

import os

from . import BatchError, require_otio
from .jobs import Job
from .schema import EFFECT_NAME, _plain, find


def file_url(path: str) -> str:
    otio = require_otio()
    return otio.url_utils.url_from_filepath(os.path.abspath(path))


def relink(clip, job: Job) -> None:
    otio = require_otio()
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    s = job.span
    fps = float(s.fps)
    old = clip.media_reference
    src = clip.source_range
    original = {
        "target_url": getattr(old, "target_url", None),
        "source_range": None if src is None else {
            "start": src.start_time.value, "duration": src.duration.value,
            "rate": src.duration.rate},
        "speed": s.speed,
        "effect": _plain(find(clip)[0].metadata.get(EFFECT_NAME)),
        "job": job.id, "key": job.key,
    }
    available = tr(rt(0, fps), rt(s.total, fps))
    if job.codec == "png":
        ref = otio.schema.ImageSequenceReference(
            target_url_base=file_url(job.output) + "/", name_prefix="frame_", name_suffix=".png",
            start_frame=0, frame_step=1, rate=fps, frame_zero_padding=6,
            available_range=available)
    else:
        ref = otio.schema.ExternalReference(target_url=file_url(job.output),
                                            available_range=available)
    ref.name = os.path.basename(job.output)
    clip.media_reference = ref
    clip.source_range = tr(rt(s.head, fps), rt(s.frames, fps))
    keep = [e for e in clip.effects if getattr(e, "effect_name", "") != EFFECT_NAME
            and not isinstance(e, otio.schema.LinearTimeWarp)]
    del clip.effects[:]
    clip.effects.extend(keep)
    clip.metadata[EFFECT_NAME] = {"rendered_from": original}


def outputs(timeline_path: str, out_dir: str, fmt: str, extra: list[str] = ()) -> list[str]:
    """The relinked timeline files: the input's format and .otio (and any ``extra`` formats)."""
    stem = os.path.splitext(os.path.basename(timeline_path))[0]
    suffixes = []
    for s in [fmt, "otio", *extra]:
        s = s.lower().lstrip(".")
        if s and s not in suffixes:
            suffixes.append(s)
    paths = [os.path.join(out_dir, f"{stem}.relinked.{s}") for s in suffixes]
    for p in paths:
        if os.path.exists(timeline_path) and os.path.samefile(os.path.dirname(p) or ".",
                                                              os.path.dirname(timeline_path) or ".") \
                and os.path.basename(p) == os.path.basename(timeline_path):
            raise BatchError("the relinked timeline would replace the input", path=p)
    return paths


def write(timeline, path: str) -> str:
    """Write with the adapter of ``path``'s suffix, atomically (a hidden sibling, then renamed)."""
    otio = require_otio()
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(folder, f".{stem}.partial-{os.getpid()}{ext}")
    try:
        otio.adapters.write_to_file(timeline, tmp)
        os.replace(tmp, path)
    except Exception as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise BatchError(f"cannot write the relinked timeline in this format "
                         f"({type(exc).__name__}: {exc})", path=path) from None
    return path
