"""Generator ``meshwarp``: piecewise-affine warp of the target face over the face-mesh triangulation.

The target crop is warped so that its landmarks move from ``src`` to ``dst``.  A ring of anchor points
around the face (fixed in both) closes the mesh, so the warp fades into the untouched background.
Holes of the mesh (eyes, mouth) are closed with strips, so blinks pull the lids together.  When the
driver opens a mouth that is closed in the target, the interior is filled from the driver's own mouth
(colour-matched to the target's lips) or, without driver pixels, with a synthetic cavity and teeth.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from reenact_fx import geometry as g
from reenact_fx.components import GenerateInput, GenerateOutput, Generator
from reenact_fx.hookspecs import hookimpl
from reenact_fx.params import Param

N = 478
OVAL = np.array(g.FACE_OVAL)
N_ANCHOR = len(OVAL)


@lru_cache(maxsize=1)
def _topology():
    """(holes, surface) triangles over vertices [478 landmarks, anchors]: holes are drawn first."""
    k = N_ANCHOR
    strip = []
    for i in range(k):
        j = (i + 1) % k
        strip += [(OVAL[i], OVAL[j], N + i), (OVAL[j], N + j, N + i)]
    holes = np.vstack([np.array(strip, np.int32), g.fan(g.LIPS_INNER), g.fan(g.RIGHT_EYE),
                       g.fan(g.LEFT_EYE)])
    return holes, g.mesh_triangles()


def anchors(src: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Anchor ring: the face oval pushed out from its centre by ``scale``, kept inside the crop."""
    oval = src[OVAL, :2].astype(np.float64)
    c = oval.mean(0)
    a = c + scale * (oval - c)
    return np.clip(a, 0, size - 1)


def affine_dst_to_src(tris: np.ndarray, dst: np.ndarray, src: np.ndarray):
    """Per-triangle 2x3 affines mapping dst pixels to src pixels, and which triangles are usable."""
    d = np.concatenate([dst[tris], np.ones(tris.shape + (1,))], axis=2)   # (F, 3, 3) rows [x y 1]
    s = src[tris]                                                            # (F, 3, 2)
    det = np.linalg.det(d)
    ok = np.abs(det) > 1e-3
    a = np.zeros((len(tris), 2, 3))
    a[ok] = np.swapaxes(np.linalg.solve(d[ok], s[ok]), 1, 2)
    return a, ok


def warp_maps(size: int, step: int, tris_in_order: np.ndarray, dst: np.ndarray, src: np.ndarray):
    """remap() maps of the piecewise-affine warp, computed on a grid ``step`` times coarser."""
    n = (size + step - 1) // step
    index = np.full((n, n), -1, np.int32)
    aff, ok = affine_dst_to_src(tris_in_order, dst, src)
    grid = (dst + 0.5) / step - 0.5
    pts = np.round(grid[tris_in_order] * 16).astype(np.int32)   # 4 bits of sub-pixel precision
    for i in np.flatnonzero(ok):
        cv2.fillConvexPoly(index, pts[i], int(i), cv2.LINE_8, 4)
    xs = (np.arange(n) + 0.5) * step - 0.5
    gx, gy = np.meshgrid(xs, xs)
    sel = index >= 0
    a = aff[index[sel]]
    mx, my = gx.copy(), gy.copy()
    mx[sel] = a[:, 0, 0] * gx[sel] + a[:, 0, 1] * gy[sel] + a[:, 0, 2]
    my[sel] = a[:, 1, 0] * gx[sel] + a[:, 1, 1] * gy[sel] + a[:, 1, 2]
    mx, my = mx.astype(np.float32), my.astype(np.float32)
    if step > 1:
        mx = cv2.resize(mx, (size, size), interpolation=cv2.INTER_LINEAR)
        my = cv2.resize(my, (size, size), interpolation=cv2.INTER_LINEAR)
    return mx, my


def polygon_mask(size: int, pts: np.ndarray, blur: float) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cv2.fillPoly(m, [np.round(pts[:, :2] * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    if blur > 0:
        k = int(blur * 3) | 1
        m = cv2.GaussianBlur(m, (k, k), blur)
    return m


def band_mean(image: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Mean colour between two polygons (the lips between outer and inner contours)."""
    size = image.shape[0]
    m = polygon_mask(size, outer, 0) - polygon_mask(size, inner, 0) > 0.5
    if m.sum() < 4:
        return image.reshape(-1, 3).mean(0)
    return image[m].astype(np.float64).mean(0)


class MeshWarp(Generator):
    name = "meshwarp"
    version = "1.0"
    summary = "training-free piecewise-affine mesh warp with mouth-interior fill"
    needs_driver_pixels = True
    params = (
        Param("mouth_fill", "choice", "driver", "how to fill a mouth the target opens: the driver's "
              "mouth interior (colour-matched), a synthetic cavity with teeth, or nothing",
              choices=("driver", "synthetic", "none")),
        Param("teeth", "float", 0.6, "brightness of synthetic teeth (0 = dark cavity only)", 0.0, 1.0),
        Param("anchor_scale", "float", 1.7, "size of the fixed anchor ring around the face oval, "
              "relative to the oval (larger = smoother falloff into the background)", 1.2, 3.0),
        Param("map_step", "int", 2, "warp maps are computed every N pixels and interpolated "
              "(1 = exact, 2 = 4x faster, visually identical)", 1, 4),
    )

    def generate(self, x: GenerateInput) -> GenerateOutput:
        size = x.image.shape[0]
        anc = anchors(x.src, self.p["anchor_scale"], size)
        src = np.vstack([x.src[:, :2], anc])
        dst = np.vstack([x.dst[:, :2], anc])
        holes, surface = _topology()
        # painter's order: holes and ring behind, then surface triangles far-to-near (mediapipe z
        # grows away from the camera), so a turning head hides its far side
        depth = x.dst[surface, 2].mean(1)
        order = np.vstack([holes, surface[np.argsort(-depth, kind="stable")]])
        mx, my = warp_maps(size, self.p["map_step"], order, dst, src)
        out = cv2.remap(x.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._fill_mouth(out, x)
        mask = polygon_mask(size, anc, blur=max(1.0, size / 128))
        return GenerateOutput(out, mask)

    def _fill_mouth(self, out: np.ndarray, x: GenerateInput) -> None:
        mode = self.p["mouth_fill"]
        if mode == "none":
            return
        inner = list(g.LIPS_INNER)
        scale2 = g.face_size(x.dst) ** 2
        a_dst = g.ring_area(x.dst, g.LIPS_INNER) / scale2
        a_src = g.ring_area(x.src, g.LIPS_INNER) / scale2
        # fill in proportion to how much more the mouth opens than the target's own opening shows
        w = float(np.clip((a_dst - 1.3 * a_src - 0.002) / 0.01, 0.0, 1.0))
        if w <= 0:
            return
        size = out.shape[0]
        poly = x.dst[inner, :2]
        lips = band_mean(out, x.dst[list(g.LIPS_OUTER), :2], poly)
        if mode == "driver" and x.driver_image is not None and x.driver_pts is not None:
            fill = self._driver_mouth(x, size)
            d_lips = band_mean(x.driver_image, x.driver_pts[list(g.LIPS_OUTER), :2],
                               x.driver_pts[inner, :2])
            gain = np.clip((lips + 8) / (d_lips + 8), 0.5, 2.0)   # the target's light and lip tone
            fill = np.clip(fill.astype(np.float32) * gain, 0, 255)
        else:
            fill = self._synthetic_mouth(x, poly, lips, a_src)
        m = polygon_mask(size, poly, blur=max(0.8, size / 400)) * w
        out[:] = np.clip(out * (1 - m[..., None]) + fill * m[..., None], 0, 255).astype(np.uint8)

    @staticmethod
    def _driver_mouth(x: GenerateInput, size: int) -> np.ndarray:
        """The driver's mouth interior warped onto the destination inner-lip polygon."""
        ring = list(g.LIPS_INNER)
        centre_d = x.dst[ring, :2].mean(0, keepdims=True)
        centre_s = x.driver_pts[ring, :2].mean(0, keepdims=True)
        dst = np.vstack([x.dst[ring, :2], centre_d])
        src = np.vstack([x.driver_pts[ring, :2], centre_s])
        k = len(ring)
        tris = np.array([(i, (i + 1) % k, k) for i in range(k)], np.int32)
        mx, my = warp_maps(size, 1, tris, dst, src)
        return cv2.remap(x.driver_image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def _synthetic_mouth(self, x: GenerateInput, poly: np.ndarray, lips: np.ndarray,
                         a_src: float) -> np.ndarray:
        """A dark cavity, with upper teeth that move with the upper lip: the target's own teeth
        when its mouth shows them, else a synthetic band."""
        size = x.image.shape[0]
        y0, y1 = poly[:, 1].min(), poly[:, 1].max()
        ys = (np.arange(size, dtype=np.float32) - y0) / max(y1 - y0, 1.0)
        shade = (1.0 - 0.6 * np.clip(ys, 0, 1))[:, None]
        img = np.broadcast_to((lips * 0.25)[None, None, :] * shade[..., None],
                              (size, size, 3)).astype(np.float32)
        upper = list(UPPER_INNER)
        if a_src > 0.004:   # the target shows its own mouth interior: carry it with the upper lip
            a = g.similarity_2d(x.src[upper], x.dst[upper])
            own = cv2.warpAffine(x.image, a, (size, size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT).astype(np.float32)
            m = polygon_mask(size, g.transform_points(a, x.src[list(g.LIPS_INNER), :2]), 1.0)
            return own * m[..., None] + img * (1 - m[..., None])
        if self.p["teeth"] <= 0:
            return img
        arc = x.dst[upper, :2]
        height = 0.09 * g.face_size(x.dst)
        band = np.vstack([arc, (arc + [0, height])[::-1]])
        m = polygon_mask(size, band, max(1.0, height / 6))
        skin = np.clip(lips.mean() / 150.0, 0.5, 1.3)
        teeth = np.array([228.0, 222.0, 210.0]) * skin * self.p["teeth"] \
            + lips * 0.25 * (1 - self.p["teeth"])
        return teeth * m[..., None] + img * (1 - m[..., None])


UPPER_INNER = g.LIPS_INNER[:11]   # corner to corner along the upper lip


@hookimpl
def reenact_fx_components():
    return [MeshWarp]
