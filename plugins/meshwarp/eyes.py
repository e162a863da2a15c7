"""Eyelids of ``meshwarp``: a lid that comes down over an eye the target has open.

The mesh warp alone squeezes the eyeball under a lowering lid and stretches the lid's thin band of
skin (lashes and their shadow with it) over the rest: viewers see a grey, half-transparent film
over an eye that still shows through, and a tracker reads it as half open.  A real lid is an opaque
sheet whose margin slides down over the eyeball.  So the part of the eye between where the upper
lid would be open and where its margin now is gets lid skin (the eye's region inpainted from the
skin around it, shaded a little darker towards the margin, the way a lid curves away from the
light), and the lash line is drawn along the margin in the target's own lash colour.  What stays
open below the margin is the warped eye, iris included, as before.
"""

from __future__ import annotations

import cv2
import numpy as np

from reenact_fx.api import geometry as g

from .warp import polygon_mask, window

UPPER = slice(0, 9)                 # outer corner, upper lid, inner corner (ring order)
LID_PAIRS = (list(range(1, 8)), list(range(15, 8, -1)))   # facing upper/lower lid points


def _gap(eye: np.ndarray) -> float:
    """Mean distance between facing lid points, across the eye's corner-to-corner axis."""
    axis = eye[8] - eye[0]
    n = np.array([-axis[1], axis[0]]) / (np.linalg.norm(axis) + 1e-9)
    up, lo = LID_PAIRS
    return float(np.mean((eye[lo] - eye[up]) @ n))


def _lash_colour(image: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """The darkest tenth of the target's own upper-lid margin, its lashes (or a painting's line),
    half desaturated."""
    x0, y0, x1, y1 = window(eye, 2, image)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros(3)
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    width = float(np.linalg.norm(eye[8] - eye[0]))
    cv2.polylines(m, [np.round(eye[UPPER] - (x0, y0)).astype(np.int32)], False, 1,
                  max(1, round(0.08 * width)))
    px = image[y0:y1, x0:x1][m > 0].astype(np.float32)
    if len(px) < 3:
        return np.zeros(3)
    lum = px.mean(1)
    dark = px[lum <= np.percentile(lum, 10)].mean(0)
    # half desaturated: an iris touching the lid (large in cartoons) must not tint the lashes
    return 0.5 * dark + 0.5 * dark.mean()


def close_lids(out: np.ndarray, image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Lower the upper lids of ``out`` (the warped crop, in place) where ``dst`` has them lower
    than the target's open eyes in ``image`` / ``src`` (crop pixels)."""
    for ring in (g.RIGHT_EYE, g.LEFT_EYE):
        _lid(out, image, src[list(ring), :2].astype(np.float64),
             dst[list(ring), :2].astype(np.float64))


def _lid(out, image, src, dst) -> None:
    width = float(np.linalg.norm(dst[8] - dst[0]))
    g_src = _gap(src)
    if width < 4 or g_src < 0.08 * float(np.linalg.norm(src[8] - src[0])):
        return                                   # a tiny eye, or one already shut in the target
    # the eye as it would be open: the target's, carried by the destination's corners
    a = g.similarity_2d(src[[0, 8]], dst[[0, 8]])
    open_eye = src @ a[:, :2].T + a[:, 2]
    closure = 1.0 - _gap(dst) / max(_gap(open_eye), 1e-6)
    k = float(np.clip((closure - 0.12) / 0.2, 0.0, 1.0))   # a lid barely lowered stays the warp's
    if k <= 0:
        return
    x0, y0, x1, y1 = window(np.vstack([open_eye, dst]), 0.35 * width, out)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    o, shape = (x0, y0), (x1 - x0, y1 - y0)
    sub = out[y0:y1, x0:x1]
    # skin over the whole eye, from the skin around it (lids above, cheek below)
    hole = np.maximum(polygon_mask(shape, open_eye, 0.0, o), polygon_mask(shape, dst, 0.0, o))
    r = max(1, round(0.08 * width))
    hole = cv2.dilate((hole > 0.01).astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    skin = cv2.inpaint(np.ascontiguousarray(sub), hole, max(2.0, 0.15 * width),
                       cv2.INPAINT_TELEA).astype(np.float32)
    # the lid: from the open upper lid down to the margin, drawn a little above the open lid so no
    # lash of the open eye is left above it; darker towards the margin
    top = open_eye[UPPER] + (open_eye[UPPER] - open_eye[UPPER].mean(0)) * [0.06, 0.0] \
        - [0.0, 0.05 * width]
    margin = dst[UPPER]
    lid = polygon_mask(shape, np.vstack([top, margin[::-1]]), max(0.6, 0.03 * width), o)
    ys = (np.arange(shape[1], dtype=np.float32) + y0)[:, None]
    depth = np.clip((ys - top[:, 1].min()) / max(margin[:, 1].max() - top[:, 1].min(), 1.0), 0, 1)
    skin *= (1.0 - 0.12 * depth)[..., None]
    # the lash line along the margin, thickest at the middle of the lid
    lash = np.zeros(shape[::-1], np.float32)
    thick = max(1.0, 0.05 * width)
    pts = np.round((margin - o) * 16).astype(np.int32)
    for i in range(len(pts) - 1):
        t = 1.0 - abs((i + 0.5) / (len(pts) - 1) - 0.5) * 1.2
        cv2.line(lash, tuple(pts[i]), tuple(pts[i + 1]), 1.0, max(1, round(thick * t)),
                 cv2.LINE_AA, 4)
    lash = cv2.GaussianBlur(lash, (0, 0), max(0.5, 0.015 * width))
    colour = _lash_colour(image, src)
    m_lid = (lid * k)[..., None]
    m_lash = (np.clip(lash, 0, 1) * k)[..., None]
    res = sub * (1 - m_lid) + skin * m_lid
    res = res * (1 - m_lash) + colour * m_lash
    sub[:] = np.clip(res + 0.5, 0, 255).astype(np.uint8)


def irises_inside(dst: np.ndarray) -> np.ndarray:
    """``dst`` with each iris centre that lies outside its eye opening moved to the opening's
    centre (a copy; ``dst`` itself when none is outside).  The warp spans each eye from its iris
    centre; a lid closed below a gaze that stays up would otherwise spread the eyeball over the lid
    skin above it."""
    out = dst
    for ring, iris in ((g.RIGHT_EYE, g.RIGHT_IRIS[0]), (g.LEFT_EYE, g.LEFT_IRIS[0])):
        eye = dst[list(ring), :2].astype(np.float32)
        centre = (float(dst[iris, 0]), float(dst[iris, 1]))
        if cv2.pointPolygonTest(eye.reshape(-1, 1, 2), centre, False) < 0:
            if out is dst:
                out = dst.copy()
            out[iris, :2] = eye.mean(0)
    return out
