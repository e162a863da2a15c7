"""The inside of a mouth the target opens without driver pixels to copy it from: a warm, dark
cavity (darkest under the upper teeth, where the palate's shadow is), the tongue rising from the
floor of the mouth, and the lower teeth along the lower lip once the jaw drops far enough to show
them.  Colours follow the face's own light (the lips' brightness), hues a mouth's, never the lips'
own: the tracker and the viewer must not read the interior as more lip."""

from __future__ import annotations

import numpy as np

from reenact_fx.api import geometry as g

from .warp import polygon_mask

LOWER_INNER = g.LIPS_INNER[10:] + g.LIPS_INNER[:1]   # corner to corner along the lower lip
CAVITY = np.array([72.0, 26.0, 28.0])     # the dark red-brown of a mouth's interior
TONGUE = np.array([146.0, 68.0, 72.0])   # in the shadow of the upper jaw
TEETH = np.array([236.0, 226.0, 206.0])


def light_of(lips: np.ndarray) -> float:
    return float(np.clip(lips.mean() / 130.0, 0.45, 1.3))


def cavity(x, shape: tuple[int, int], origin: tuple[int, int], lips: np.ndarray,
           teeth: float) -> np.ndarray:
    """(h, w, 3) float32 interior of the destination mouth over a (w, h) window at ``origin``."""
    w, h = shape
    poly = x.dst[list(g.LIPS_INNER), :2]
    face = g.face_size(x.dst)
    top, bottom = poly[:, 1].min(), poly[:, 1].max()
    gap = max(bottom - top, 1.0)
    light = light_of(lips)
    ys = (np.arange(h, dtype=np.float32) + origin[1] - top) / gap
    shade = (0.55 + 0.6 * np.clip(ys, 0, 1))[:, None, None]      # dark under the palate
    img = np.broadcast_to(CAVITY * light * shade, (h, w, 3)).astype(np.float32)
    opening = gap / face                                         # in eye-corner distances
    if opening > 0.08:   # the tongue: an ellipse rising from the lower lip, a third of the gap
        lower = x.dst[list(LOWER_INNER), :2]
        left, right = lower[0], lower[-1]
        mid = lower[len(lower) // 2]
        width = float(np.linalg.norm(right - left))
        t = np.linspace(0, 2 * np.pi, 40)
        cx, cy = mid[0], mid[1] + 0.05 * gap
        tongue = np.c_[cx + 0.34 * width * np.cos(t), cy + 0.42 * gap * np.sin(t)]
        k = float(np.clip((opening - 0.08) / 0.08, 0, 1))
        m = polygon_mask(shape, tongue, max(1.0, 0.08 * gap), origin)[..., None] * k
        tone = TONGUE * light * (0.8 + 0.2 * np.clip(ys, 0, 1))[:, None, None]
        img = img * (1 - m) + tone * m
    if opening > 0.14 and teeth > 0:   # lower teeth, in the shadow of the upper jaw
        arc = x.dst[list(LOWER_INNER), :2]
        n = len(arc)
        arc = arc[n // 5: n - n // 5]                             # the front teeth only
        height = 0.05 * face
        band = np.vstack([arc, (arc - [0, height])[::-1]])
        k = float(np.clip((opening - 0.14) / 0.08, 0, 1)) * teeth
        m = polygon_mask(shape, band, max(0.8, height / 5), origin)[..., None] * k
        img = img * (1 - m) + TEETH * light * 0.7 * m
    return img


def grow(poly: np.ndarray, px: float) -> np.ndarray:
    """A polygon pushed out by about ``px`` pixels from its centroid."""
    c = poly.mean(0)
    d = poly - c
    r = np.linalg.norm(d, axis=1, keepdims=True) + 1e-6
    return c + d * (1.0 + px / r)


def lip_shadow(shape: tuple[int, int], poly: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 shading of a mouth's interior: the lips shade its edge (down to 0.3 on the
    inner lip line, full light about half the opening's height inside).  A viewer reads
    that darker rim as depth, and a tracker finds the inner lip line at it rather than inside the
    interior (which it otherwise takes for more lip when the interior is bright: teeth, tongue)."""
    reach = max(1.0, 0.3 * float(np.ptp(poly[:, 1])))
    inside = polygon_mask(shape, poly, reach, origin)            # 0.5 on the lip line, 1 deep in
    return (0.3 + 0.7 * np.clip((inside - 0.5) / 0.5, 0.0, 1.0)).astype(np.float32)
