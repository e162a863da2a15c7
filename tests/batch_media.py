"""Media and timelines for the batch tests and benchmark, built from the shared faces.

A *stamped* clip is a real talking-head clip with its frame number drawn as a binary code in a strip
along the top edge (far from the face, so the effect leaves it untouched): reading the code back from
a rendered frame tells which target frame the timeline mapping chose.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

BITS, CELL = 8, 24      # 8-bit frame code, 24-px cells in a 24-px strip


def stamp(rgb: np.ndarray, index: int) -> np.ndarray:
    out = rgb.copy()
    out[:CELL] = 0
    for b in range(BITS):
        if index >> b & 1:
            out[:CELL, b * CELL:(b + 1) * CELL] = 255
    return out


def read_code(rgb: np.ndarray) -> int:
    cells = [rgb[4:CELL - 4, b * CELL + 4:(b + 1) * CELL - 4].mean() for b in range(BITS)]
    return sum(1 << b for b, v in enumerate(cells) if v > 128)


def stamped_clip(src: Path, out: Path, frames: int, fps: int, size: int = 256) -> Path:
    """The first ``frames`` frames of ``src`` at ``size`` px and ``fps``, each stamped with its index
    (H.264 with src's audio, like a camera file)."""
    import cv2

    from reenact_fx.media import MediaReader, MediaWriter

    with MediaReader(str(src)) as r, MediaWriter(str(out), size, size, Fraction(fps),
                                                 audio_from=str(src)) as w:
        for i, rgb in r.frames():
            if i >= frames:
                break
            img = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
            w.write(stamp(img, i))
    return out


def timeline(folder: Path, target_a: Path, target_b: Path, driver: Path, *, rate: int = 30,
             warp: float | None = 0.5, long: int = 0):
    """Two video tracks and an audio track, three reenact-fx clips:

    V1: clip 'a-trim' (target_a from frame 4, 10 frames at 25 fps: 12 at 30), a gap, an untouched
        clip 'plain', clip 'b-warp' (target_a from frame 2, 8 frames, LinearTimeWarp ``warp``);
    V2: clip 'c' (target_b from frame 3, 6 frames at its 30 fps; ``long`` makes it longer);
    A1: the driver's audio (untouched).
    """
    import opentimelineio as otio

    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange

    def ref(path, n, r):
        return otio.schema.ExternalReference(
            target_url=otio.url_utils.url_from_filepath(str(path)),
            available_range=tr(rt(0, r), rt(n, r)))

    def fx(driver_in=0.0, **extra):
        return otio.schema.Effect(name="reenact-fx", effect_name="reenact_fx", metadata={
            "reenact_fx": {"version": 1, "driver": str(driver), "driver_in": driver_in, **extra}})

    tl = otio.schema.Timeline("batch test", global_start_time=rt(0, rate))
    v1 = otio.schema.Track("V1", kind=otio.schema.TrackKind.Video)
    a = otio.schema.Clip("a-trim", media_reference=ref(target_a, 40, 25),
                         source_range=tr(rt(4, 25), rt(10, 25)))
    a.effects.append(fx(0.2))
    plain = otio.schema.Clip("plain", media_reference=ref(target_a, 40, 25),
                             source_range=tr(rt(0, 25), rt(5, 25)))
    b = otio.schema.Clip("b-warp", media_reference=ref(target_a, 40, 25),
                         source_range=tr(rt(2, 25), rt(8, 25)))
    b.effects.append(fx(set={"delta.expression": 1.2}))
    if warp is not None:
        b.effects.append(otio.schema.LinearTimeWarp(time_scalar=warp))
    v1.extend([a, otio.schema.Gap(source_range=tr(rt(0, rate), rt(5, rate))), plain, b])
    v2 = otio.schema.Track("V2", kind=otio.schema.TrackKind.Video)
    c = otio.schema.Clip("c", media_reference=ref(target_b, 40, 30),
                         source_range=tr(rt(3, 30), rt(6 + long, 30)))
    c.effects.append(fx(preset="subtle"))
    v2.extend([otio.schema.Gap(source_range=tr(rt(0, rate), rt(8, rate))), c])
    a1 = otio.schema.Track("A1", kind=otio.schema.TrackKind.Audio)
    a1.append(otio.schema.Clip("voice", media_reference=ref(driver, 40, 30),
                               source_range=tr(rt(0, 30), rt(30, 30))))
    tl.tracks.extend([v1, v2, a1])
    return tl
