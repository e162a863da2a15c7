"""The embedded demo: scikit-image's astronaut portrait performs a built-in keyframed performance.

Needs no user media and no network.  The performance is a set of keyframed expression controls
(blinks, a smile, speech-like jaw motion, a head turn) that replace the driver, rendered through the
same effect as any driver clip.
"""

from __future__ import annotations

import os

import numpy as np


def _blinks(starts, close=0.08, hold=0.08):
    """Blinks as people blink: the lids close fast, stay shut a moment, open."""
    keys = []
    for s in starts:
        keys += [[s, 0.0], [s + close, 1.0], [s + close + hold, 1.0], [s + 2 * close + hold, 0.0]]
    return [[0.0, 0.0]] + keys


def _speech(start, end, step=0.14):
    """Syllable-like jaw motion: alternating open and nearly closed, varying in height."""
    rng = np.random.default_rng(7)   # a fixed performance: the demo is deterministic
    keys, t, up = [[start - 0.2, 0.0]], start, True
    while t < end:
        keys.append([round(t, 3), round(float(rng.uniform(0.25, 0.5)) if up else 0.04, 3)])
        t, up = t + step * float(rng.uniform(0.8, 1.3)), not up
    return keys + [[round(t + 0.15, 3), 0.0]]


PERFORMANCE = {
    "mode": "replace",
    "interpolation": "smooth",
    "keys": {
        "blink_left": _blinks((0.6, 2.4, 4.3, 5.5)),
        "blink_right": _blinks((0.6, 2.4, 4.3, 5.5)),
        "smile": [[0.0, 0.0], [1.0, 0.0], [1.5, 0.9], [2.3, 0.9], [2.7, 0.0]],
        "brow_raise": [[0.0, 0.0], [1.2, 0.0], [1.6, 0.6], [2.2, 0.6], [2.6, 0.0]],
        "jaw_open": _speech(2.8, 4.4),
        "yaw": [[0.0, 0.0], [4.2, 0.0], [4.8, 18.0], [5.4, -14.0], [6.0, 0.0]],
        "pitch": [[0.0, 0.0], [4.6, 0.0], [5.1, 6.0], [6.0, 0.0]],
    },
}


def astronaut_path(folder: str) -> str:
    """Write scikit-image's astronaut portrait as a PNG in ``folder`` and return its path."""
    import cv2
    from skimage import data

    path = os.path.join(folder, "astronaut.png")
    cv2.imwrite(path, cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path
