"""Image metrics of a moved head: ``head_tear`` (does the hair move with the face?) and ``bg`` (is the
far background left alone?).  Pure functions on RGB frames and 478-point landmarks (pixels).

``head_tear``  for each output frame whose face moved at least ``MIN_MOTION`` px from the reference
               (the still target, or a video target's own frame t), by the 2-D similarity fitted on
               the rigid face points: the reference's *hair ring* (the band between the face oval and
               1.35x the oval, above the eyes) is warped by that motion and its mean grey-level error
               against the output frame is divided by the error of the ring left in place.  The score
               is the ratio of the two errors' means over those frames: a head moved as one piece
               scores near 0, a face sliding over hair that stays put 1 or more.  None when no frame
               moved enough.
``bg``         mean absolute grey-level difference between output and reference over the *far
               background*: pixels farther than one face height from both faces' boxes (0 = untouched).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face import geometry as g

MIN_MOTION = 4.0       # px: frames whose face moved less say nothing about the hair
RING_SCALE = 1.35      # outer edge of the hair ring, relative to the face oval
BLUR = 0.03            # of the eye-corner distance: tolerance for landmark noise


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def hair_ring(shape: tuple[int, int], pts: np.ndarray, scale: float = RING_SCALE) -> np.ndarray:
    """(H, W) bool: between the face oval and ``scale`` x the oval (about its centroid), on the
    forehead side of the line through the outer eye corners."""
    h, w = shape
    oval = np.asarray(pts, np.float64)[list(g.FACE_OVAL), :2]
    c = oval.mean(0)
    outer = np.zeros((h, w), np.uint8)
    inner = np.zeros((h, w), np.uint8)
    cv2.fillPoly(outer, [np.round(c + scale * (oval - c)).astype(np.int32)], 1)
    cv2.fillPoly(inner, [np.round(oval).astype(np.int32)], 1)
    a, b = np.asarray(pts, np.float64)[33, :2], np.asarray(pts, np.float64)[263, :2]
    axis = b - a
    up = np.array([axis[1], -axis[0]])                    # perpendicular, towards the forehead
    forehead = np.asarray(pts, np.float64)[10, :2]
    if up @ (forehead - a) < 0:
        up = -up
    yy, xx = np.mgrid[0:h, 0:w]
    above = (xx - a[0]) * up[0] + (yy - a[1]) * up[1] > 0
    return (outer > 0) & (inner == 0) & above


def face_motion(ref_pts: np.ndarray, out_pts: np.ndarray) -> tuple[np.ndarray, float]:
    """The 2x3 similarity taking the reference's rigid points onto the output's, and the largest
    displacement (px) it gives those points."""
    rig = list(g.RIGID)
    a = g.similarity_2d(ref_pts[rig, :2], out_pts[rig, :2])
    p = np.asarray(ref_pts, np.float64)[rig, :2]
    moved = p @ a[:, :2].T + a[:, 2]
    return a, float(np.linalg.norm(moved - p, axis=1).max())


def head_tear_errors(ref_rgb: np.ndarray, ref_pts: np.ndarray, out_rgb: np.ndarray,
                     out_pts: np.ndarray) -> tuple[float, float] | None:
    """(error of the hair ring moved with the face, error of the ring left in place) for one output
    frame, or None when the face moved less than MIN_MOTION px or the ring is empty."""
    a, motion = face_motion(ref_pts, out_pts)
    if motion < MIN_MOTION or ref_rgb.shape != out_rgb.shape:
        return None
    h, w = ref_rgb.shape[:2]
    ring = hair_ring((h, w), ref_pts)
    if ring.sum() < 16:
        return None
    sigma = max(0.7, BLUR * g.face_size(ref_pts))
    ref_g = cv2.GaussianBlur(grey(ref_rgb), (0, 0), sigma)
    out_g = cv2.GaussianBlur(grey(out_rgb), (0, 0), sigma)
    moved = cv2.warpAffine(ref_g, a, (w, h), flags=cv2.INTER_LINEAR, borderValue=-1)
    moved_ring = cv2.warpAffine(ring.astype(np.uint8), a, (w, h), flags=cv2.INTER_NEAREST) > 0
    moved_ring &= moved >= 0                             # the ring must stay inside the frame
    keep = ring & moved_ring                             # compare both over pixels in both
    if keep.sum() < 16:
        keep_m, keep_s = moved_ring, ring
    else:
        keep_m = keep_s = keep
    if keep_m.sum() < 16:
        return None
    e_moved = float(np.abs(moved - out_g)[keep_m].mean())
    e_static = float(np.abs(ref_g - out_g)[keep_s].mean())
    return e_moved, e_static


def head_tear(errors) -> float | None:
    """The score from per-frame (moved, static) errors (None entries skipped)."""
    pairs = [e for e in errors if e is not None]
    if not pairs:
        return None
    moved, static = np.mean(pairs, axis=0)
    return float(moved / max(static, 1e-6))


def far_background(shape: tuple[int, int], *point_sets: np.ndarray) -> np.ndarray:
    """(H, W) bool: farther than one face height from the 2-D box of every point set."""
    h, w = shape
    keep = np.ones((h, w), bool)
    for pts in point_sets:
        xy = np.asarray(pts, np.float64)[:468, :2]
        lo, hi = xy.min(0), xy.max(0)
        pad = hi[1] - lo[1]
        x0, y0 = np.floor(lo - pad).astype(int)
        x1, y1 = np.ceil(hi + pad).astype(int)
        keep[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = False
    return keep


def background_error(ref_rgb: np.ndarray, ref_pts: np.ndarray, out_rgb: np.ndarray,
                     out_pts: np.ndarray) -> float | None:
    """Mean |grey difference| over the far background of one frame (None when there is none)."""
    if ref_rgb.shape != out_rgb.shape:
        return None
    keep = far_background(ref_rgb.shape[:2], ref_pts, out_pts)
    if keep.sum() < 16:
        return None
    return float(np.abs(grey(ref_rgb) - grey(out_rgb))[keep].mean())


def follow(out_values: np.ndarray, drv_values: np.ndarray) -> tuple[float | None, float | None]:
    """(Pearson correlation, range ratio) of an output trace against the driver's: how well the
    output follows a signal such as the mouth opening, and how far (the 2nd-98th percentile spans'
    ratio, robust to a single mistracked frame)."""
    o, d = np.asarray(out_values, np.float64), np.asarray(drv_values, np.float64)
    if len(o) < 3 or np.std(o) < 1e-9 or np.std(d) < 1e-9:
        return None, None
    r = float(np.corrcoef(o, d)[0, 1])
    span = lambda v: float(np.percentile(v, 98) - np.percentile(v, 2))  # noqa: E731
    return r, span(o) / max(span(d), 1e-9)
