"""``reenact-fx batch annotate``: add a reenact-fx effect to a clip of an existing timeline.

The clip is chosen by name (unique among the video clips), ``TRACK/NAME``, or ``TRACK#INDEX``.
Paths in the effect are written relative to the output timeline's folder.  Editorial formats that
cannot hold an OTIO effect (CMX 3600 EDL, FCP 7 XML drop it) are refused as an output: write .otio,
which remembers the format it was read from, so ``batch`` writes the relinked timeline in that
format again (and as .otio).
"""

from __future__ import annotations

import os

from . import BatchError, require_otio
from .schema import EFFECT_NAME, find, make_effect, validate
from .timeline import FORMAT_KEY, read_timeline, source_format, video_clips


def select(timeline, path: str, spec: str):
    """(Where, clip) of the clip ``spec`` names."""
    items = list(video_clips(timeline, path))
    track, sep, rest = spec.rpartition("/")
    if "#" in spec and not sep:
        track, _, rest = spec.rpartition("#")
        hits = [(w, c) for w, c in items if w.track == track and str(w.clip_index) == rest]
    else:
        hits = [(w, c) for w, c in items if w.clip == rest and (not sep or w.track == track)]
    if len(hits) == 1:
        return hits[0]
    names = ", ".join(f"{w.track}/{w.clip}" for w, _ in items) or "none"
    if not hits:
        raise BatchError(f"no video clip '{spec}'; video clips: {names}", path=path, key="clip")
    raise BatchError(f"{len(hits)} video clips match '{spec}' ({', '.join(f'{w.track}#{w.clip_index}' for w, _ in hits)}); "
                     f"name one as TRACK/NAME or TRACK#INDEX", path=path, key="clip")


def _portable(p: str | None, out_dir: str) -> str | None:
    if not p:
        return None
    p = os.path.abspath(p)
    try:
        rel = os.path.relpath(p, out_dir)
    except ValueError:   # another drive (Windows)
        return p
    return p if rel.startswith(os.pardir + os.sep + os.pardir) else rel


def annotate(timeline_path: str, output: str, clip_spec: str, *, driver: str | None,
             driver_in: float = 0.0, preset: str | None = None, sets: dict | None = None,
             controls: str | None = None, replace: bool = False, rate=None) -> str:
    otio = require_otio()
    timeline = read_timeline(timeline_path, rate)
    where, clip = select(timeline, timeline_path, clip_spec)
    out_dir = os.path.dirname(os.path.abspath(output))
    data = {"version": 1, "driver_in": float(driver_in)}
    if driver:
        data["driver"] = _portable(driver, out_dir)
    if preset:
        data["preset"] = _portable(preset, out_dir) if os.path.isfile(preset) else preset
    if sets:
        data["set"] = dict(sets)
    if controls:
        data["controls"] = _portable(controls, out_dir)
    out_where = type(where)(os.path.abspath(output), where.track, where.track_index, where.clip,
                            where.clip_index)
    validate(data, out_where)
    if driver and not os.path.isfile(driver):
        raise out_where.error(f"file not found: {os.path.abspath(driver)}", "driver")
    old = find(clip)
    if old and not replace:
        raise where.error("already has a reenact_fx effect (use --replace to change it)")
    for e in old:
        clip.effects.remove(e)
    clip.effects.append(make_effect(data))

    fmt_in = source_format(timeline, timeline_path)
    fmt_out = os.path.splitext(output)[1].lower().lstrip(".")
    if fmt_out != "otio":
        adapter = otio.adapters.from_filepath(output).name
        try:       # does the effect survive a write and a read in that format?
            back = otio.adapters.read_from_string(
                otio.adapters.write_to_string(timeline, adapter), adapter,
                **({"rate": float(rate)} if rate and adapter == "cmx_3600" else {}))
            kept = any(find(c) for _, c in video_clips(back, output))
        except Exception:
            kept = False
        if not kept:
            raise BatchError(f"the {fmt_out} format cannot hold the reenact_fx effect; write the "
                             f".otio (the batch writes its relinked timeline as {fmt_in} again)",
                             path=output)
    elif fmt_in != "otio":
        md = timeline.metadata.get(EFFECT_NAME)
        md = dict(md) if md is not None else {}
        md[FORMAT_KEY] = fmt_in
        timeline.metadata[EFFECT_NAME] = md
    suffix_in = os.path.splitext(timeline_path)[1].lower().lstrip(".")
    if os.path.exists(output) and os.path.samefile(output, timeline_path) and fmt_out != suffix_in:
        raise BatchError("refusing to write another format over the input", path=output)
    from .relink import write

    return write(timeline, output)
