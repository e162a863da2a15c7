"""The embedded demo: scikit-image's astronaut portrait performs a built-in keyframed performance.

Needs no user media and no network.  The performance is a synthetic driver: the portrait's own landmarks
deformed over time (blinks, a smile, speech-like jaw motion, a head turn), rendered through the same
effect as any driver clip.
"""

from __future__ import annotations

import numpy as np

from . import geometry as g
from .types import LandmarkTrack

FPS = 25
SECONDS = 6.0


def _smooth_pulse(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """0 outside [start, end], 1 inside, with cosine ramps of ``ramp`` seconds."""
    up = np.clip((t - start) / ramp, 0, 1)
    down = np.clip((end - t) / ramp, 0, 1)
    w = np.minimum(up, down)
    return 0.5 - 0.5 * np.cos(np.pi * w)


def performance_curves(times: np.ndarray) -> dict[str, np.ndarray]:
    """Control curves in [0, 1] (yaw in radians) of the built-in performance."""
    blink = sum(_smooth_pulse(times, s, s + 0.12, 0.06) for s in (0.6, 2.4, 4.3, 5.5))
    smile = _smooth_pulse(times, 1.0, 2.6, 0.4)
    speech = _smooth_pulse(times, 2.8, 4.6, 0.2) * (0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * times)) \
        * (0.6 + 0.4 * np.sin(2 * np.pi * 0.9 * times + 1.0))
    yaw = 0.32 * np.sin(2 * np.pi * (times - 4.0) / 2.0) * _smooth_pulse(times, 4.0, 6.0, 0.3)
    return {"blink": np.clip(blink, 0, 1), "smile": smile, "jaw": speech, "yaw": yaw}


def deform(ref: np.ndarray, blink: float, smile: float, jaw: float, yaw: float) -> np.ndarray:
    """The reference landmarks with the given expression and head yaw applied."""
    p = ref.astype(np.float64).copy()
    size = g.face_size(ref)
    # jaw: everything below the mouth's centre line drops, more towards the chin
    mouth_y = ref[[g.MOUTH_TOP, g.MOUTH_BOTTOM], 1].mean()
    chin_y = ref[152, 1]
    below = np.clip((ref[:, 1] - mouth_y) / max(chin_y - mouth_y, 1), 0, 1) ** 0.6
    lower_lip = np.zeros(len(ref), bool)
    lower_lip[list(g.LIPS_INNER[11:]) + list(g.LIPS_OUTER[11:])] = True
    below[lower_lip] = 1.0
    p[:, 1] += jaw * 0.25 * size * below
    # smile: mouth corners out and up, the cheeks follow a little
    for corner, side in ((61, -1.0), (291, 1.0)):
        d = np.linalg.norm(ref[:, :2] - ref[corner, :2], axis=1) / size
        w = np.exp(-(d / 0.28) ** 2)
        p[:, 0] += smile * side * 0.12 * size * w
        p[:, 1] -= smile * 0.07 * size * w
    # blink: upper lids close onto the lower lid line
    for ring, top, bottom in ((g.RIGHT_EYE, 159, 145), (g.LEFT_EYE, 386, 374)):
        gap = ref[bottom, 1] - ref[top, 1]
        centre = ref[list(ring), :2].mean(0)
        d = np.abs(ref[:, 0] - centre[0]) / size
        upper = (ref[:, 1] < centre[1] + 0.2 * gap) & (ref[:, 1] > centre[1] - 0.25 * size) \
            & (d < 0.28)
        fall = np.clip(1 - (centre[1] - ref[:, 1]) / (0.25 * size), 0, 1)
        p[upper, 1] += blink * 0.85 * gap * fall[upper]
    # head yaw about a vertical axis through the face centre (z shares x's unit)
    c = ref[list(g.RIGID)].mean(0)
    q = p - c
    cy, sy = np.cos(yaw), np.sin(yaw)
    x, z = q[:, 0] * cy + q[:, 2] * sy, -q[:, 0] * sy + q[:, 2] * cy
    p[:, 0], p[:, 2] = x + c[0], z + c[2]
    return p.astype(np.float32)


def performance(ref: np.ndarray, size: tuple[int, int], fps: int = FPS,
                seconds: float = SECONDS) -> LandmarkTrack:
    """A driver track: ``ref`` (a face's landmarks) performing the built-in keyframes."""
    times = np.arange(int(round(seconds * fps))) / fps
    curves = performance_curves(times)
    points = np.stack([deform(ref, curves["blink"][i], curves["smile"][i], curves["jaw"][i],
                              curves["yaw"][i]) for i in range(len(times))])
    return LandmarkTrack(path="<built-in performance>", size=size, points=points,
                         valid=np.ones(len(times), bool), times=times)


def astronaut_path(folder: str) -> str:
    """Write scikit-image's astronaut portrait as a PNG in ``folder`` and return its path."""
    import os

    import cv2
    from skimage import data

    path = os.path.join(folder, "astronaut.png")
    cv2.imwrite(path, cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path
