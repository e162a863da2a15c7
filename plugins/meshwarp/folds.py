"""Folds around the mouth: which face-mesh triangles the warp draws first, behind the others.

Tracked meshes fold on a wide-open mouth: mediapipe puts the lower lip's outer contour below the
skin under it (the lip rolls out in 3-D), and a converter copying the driver's motion copies the
fold.  In the destination the triangles between the lip and that skin are then flipped (seen from
behind), and drawn in depth order they interleave the mirrored skin with the lip along the
rasterised edges of small triangles: a saw-tooth line between the lower lip and the chin.  Drawn
first, behind every front-facing triangle, they only fill what the front-facing sheets on both
sides of the fold leave uncovered, and the lip sheet occludes the skin along its own smooth
contour.  (Not drawing them at all leaves such pixels to the identity map: the target's own chin
showing through.)  Elsewhere a flipped triangle is the far side of a turning face hiding behind the
near side, already hidden by the far-to-near drawing order; those are left as they are.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import geometry as g

ZONE = 0.45           # eye-corner distances around the lips where folds go behind
MIN_AREA = 1.0        # px^2 (twice the area): slivers of the source say nothing about orientation


def flipped(tris: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Which triangles have opposite orientations in ``src`` and ``dst`` (x, y)."""
    def area2(p):
        q = p[tris]
        return (q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) \
            - (q[:, 2, 0] - q[:, 0, 0]) * (q[:, 1, 1] - q[:, 0, 1])
    a = area2(src)
    return (np.abs(a) > MIN_AREA) & (np.sign(a) != np.sign(area2(dst)))


def mouth_folds(tris: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(F,) bool: the flipped triangles of ``tris`` whose corners all lie within ``ZONE`` eye-corner
    distances of the lips (in ``src``)."""
    lips = src[list(g.LIPS_OUTER), :2]
    d = np.linalg.norm(src[:, None, :2] - lips[None], axis=-1).min(1)
    near = (d < ZONE * g.face_size(src))[tris].all(1)
    return near & flipped(tris, src[:, :2], dst[:, :2])
