"""Generator ``meshwarp``: piecewise-affine warp of the target face over the face-mesh triangulation.

The target crop is warped so that its landmarks move from ``src`` to ``dst``.  A ring of anchor points
around the face (fixed in both) closes the mesh, so the warp fades into the untouched background.
Holes of the mesh are closed: the mouth with a strip, each eye with a fan from its iris centre, so
the iris follows the gaze and blinks pull the lids together (a lid closing over an open eye covers the
squeezed eyeball with its own skin and a lash line).  When the driver opens a mouth that is closed in
the target, the interior is filled from the driver's own mouth (colour-matched to the target's lips)
or, without driver pixels, with a dark cavity and teeth that move with the upper lip.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from reenact_fx.api import GenerateInput, GenerateOutput, Generator, Param, hookimpl
from reenact_fx.api import geometry as g

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
    holes = np.vstack([np.array(strip, np.int32), g.fan(g.LIPS_INNER),
                       hub(g.RIGHT_EYE, g.RIGHT_IRIS[0]), hub(g.LEFT_EYE, g.LEFT_IRIS[0])])
    return holes, g.mesh_triangles()


def hub(ring: tuple[int, ...], centre: int) -> np.ndarray:
    """Triangles from ``centre`` to each edge of ``ring``: an eye opening spanned from its iris
    centre, so the iris moves with the gaze and the lids still close over it."""
    k = len(ring)
    return np.array([(centre, ring[i], ring[(i + 1) % k]) for i in range(k)], np.int32)


def anchors(src: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Anchor ring: the face oval pushed out from its centre by ``scale``, kept inside the crop."""
    oval = src[OVAL, :2].astype(np.float64)
    c = oval.mean(0)
    a = c + scale * (oval - c)
    return np.clip(a, 0, size - 1)


def affine_dst_to_src(tris: np.ndarray, dst: np.ndarray, src: np.ndarray):
    """Per-triangle 2x3 affines mapping dst pixels to src pixels, and which triangles are usable.

    Solved in closed form (Cramer's rule on [x y 1] rows): ~20x faster than a batched solve."""
    p, q = dst[tris].astype(np.float64), src[tris].astype(np.float64)   # (F, 3, 2)
    x, y = p[..., 0], p[..., 1]
    det = (x[:, 0] * (y[:, 1] - y[:, 2]) + x[:, 1] * (y[:, 2] - y[:, 0])
           + x[:, 2] * (y[:, 0] - y[:, 1]))
    ok = np.abs(det) > 1e-3
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # rows of the inverse of [[x0 y0 1], [x1 y1 1], [x2 y2 1]], transposed: coefficients per vertex
    ca = np.stack([y[:, 1] - y[:, 2], y[:, 2] - y[:, 0], y[:, 0] - y[:, 1]], 1)
    cb = np.stack([x[:, 2] - x[:, 1], x[:, 0] - x[:, 2], x[:, 1] - x[:, 0]], 1)
    cc = np.stack([x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1], x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2],
                   x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0]], 1)
    a = np.empty((len(tris), 2, 3))
    for k, coef in enumerate((ca, cb, cc)):
        a[:, :, k] = np.einsum("fv,fvc->fc", coef, q) * inv_det[:, None]
    return a, ok


def warp_maps(shape: tuple[int, int], step: int, tris_in_order: np.ndarray, dst: np.ndarray,
              src: np.ndarray, origin: tuple[int, int] = (0, 0)):
    """remap() maps of the piecewise-affine warp over a (w, h) window whose top-left pixel is
    ``origin``, computed on a grid ``step`` times coarser and interpolated.  Pixels no triangle covers
    map onto themselves."""
    w, h = shape
    nw, nh = (w + step - 1) // step, (h + step - 1) // step
    index = np.full((nh, nw), -1, np.int32)
    aff, ok = affine_dst_to_src(tris_in_order, dst, src)
    grid = (dst - origin + 0.5) / step - 0.5
    pts = np.round(grid[tris_in_order] * 16).astype(np.int32)   # 4 bits of sub-pixel precision
    for i in np.flatnonzero(ok):
        cv2.fillConvexPoly(index, pts[i], int(i), cv2.LINE_8, 4)
    gx, gy = np.meshgrid((np.arange(nw) + 0.5) * step - 0.5 + origin[0],
                         (np.arange(nh) + 0.5) * step - 0.5 + origin[1])
    sel = index >= 0
    tri = index[sel]
    a = aff[tri]
    mx, my = gx.copy(), gy.copy()
    # a rasterised pixel centre can fall just outside a sliver triangle, where its ill-conditioned
    # affine shoots far away: keep every mapped point inside its source triangle's box
    box_lo = src[tris_in_order].min(1)[tri] - 0.5
    box_hi = src[tris_in_order].max(1)[tri] + 0.5
    mx[sel] = np.clip(a[:, 0, 0] * gx[sel] + a[:, 0, 1] * gy[sel] + a[:, 0, 2],
                      box_lo[:, 0], box_hi[:, 0])
    my[sel] = np.clip(a[:, 1, 0] * gx[sel] + a[:, 1, 1] * gy[sel] + a[:, 1, 2],
                      box_lo[:, 1], box_hi[:, 1])
    mx, my = mx.astype(np.float32), my.astype(np.float32)
    if step > 1:   # exactly step times larger (sample centres line up), then cut to size
        mx = cv2.resize(mx, (nw * step, nh * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
        my = cv2.resize(my, (nw * step, nh * step), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return np.ascontiguousarray(mx), np.ascontiguousarray(my)


def polygon_mask(shape: tuple[int, int], pts: np.ndarray, blur: float = 0.0,
                 origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Anti-aliased filled polygon as float32 in [0, 1] over a (w, h) window at ``origin``."""
    m = np.zeros((shape[1], shape[0]), np.float32)
    cv2.fillPoly(m, [np.round((pts[:, :2] - origin) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    if blur > 0:
        m = cv2.GaussianBlur(m, (0, 0), blur)
    return m


def band_mean(image: np.ndarray, outer: np.ndarray, inner: np.ndarray,
              origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Mean colour between two polygons (the lips, between their outer and inner contours)."""
    shape = (image.shape[1], image.shape[0])
    m = ((polygon_mask(shape, outer, origin=origin) - polygon_mask(shape, inner, origin=origin))
         > 0.5).astype(np.uint8)
    if m.sum() < 4:
        return np.array(cv2.mean(image)[:3])
    return np.array(cv2.mean(image, mask=m)[:3])


def tone_gain(target: np.ndarray, source: np.ndarray, tint: float = 0.3) -> np.ndarray:
    """Per-channel gain taking ``source``'s mean colour towards ``target``'s: brightness fully, hue
    only by ``tint`` (teeth from a driver should not take a painting's yellow lip tone whole)."""
    lt, ls = target.mean() + 8, source.mean() + 8
    hue = ((target + 8) / lt) / ((source + 8) / ls)
    return np.clip(lt / ls * hue ** tint, 0.4, 2.5)


def window(points: np.ndarray, pad: float, image: np.ndarray) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) around ``points`` padded by ``pad`` px, inside ``image``."""
    h, w = image.shape[:2]
    lo = np.floor(points[:, :2].min(0) - pad).astype(int)
    hi = np.ceil(points[:, :2].max(0) + pad).astype(int)
    return (int(np.clip(lo[0], 0, w)), int(np.clip(lo[1], 0, h)), int(np.clip(hi[0], 0, w)),
            int(np.clip(hi[1], 0, h)))


class MeshWarp(Generator):
    name = "meshwarp"
    default = True
    version = "1.1"
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
        mx, my = warp_maps((size, size), self.p["map_step"], order, dst, src)
        out = cv2.remap(x.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._fill_mouth(out, x)
        for ring in (g.RIGHT_EYE, g.LEFT_EYE):
            self._close_eye(out, x, ring)
        return GenerateOutput(out, polygon_mask((size, size), anc))

    def _fill_mouth(self, out: np.ndarray, x: GenerateInput) -> None:
        mode = self.p["mouth_fill"]
        if mode == "none":
            return
        inner, outer = list(g.LIPS_INNER), list(g.LIPS_OUTER)
        scale2 = g.face_size(x.dst) ** 2
        a_dst = g.ring_area(x.dst, g.LIPS_INNER) / scale2
        a_src = g.ring_area(x.src, g.LIPS_INNER) / scale2
        # fill in proportion to how much more the mouth opens than the target's own opening shows
        w = float(np.clip((a_dst - 1.3 * a_src - 0.002) / 0.01, 0.0, 1.0))
        if w <= 0:
            return
        size = out.shape[0]
        x0, y0, x1, y1 = window(x.dst[outer], 4, out)   # all the work happens around the mouth
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        o, shape = (x0, y0), (x1 - x0, y1 - y0)
        sub = out[y0:y1, x0:x1]
        poly = x.dst[inner, :2]
        lips = band_mean(sub, x.dst[outer, :2], poly, o)
        if mode == "driver" and x.driver_image is not None and x.driver_pts is not None:
            fill = self._driver_mouth(x, shape, o).astype(np.float32)
            dx0, dy0, dx1, dy1 = window(x.driver_pts[outer], 2, x.driver_image)
            d_lips = band_mean(x.driver_image[dy0:dy1, dx0:dx1], x.driver_pts[outer, :2],
                               x.driver_pts[inner, :2], (dx0, dy0))
            fill *= tone_gain(lips, d_lips)
        else:
            fill = self._synthetic_mouth(x, shape, o, lips, a_src)
        m = polygon_mask(shape, poly, max(0.8, size / 400), o)[..., None] * w
        sub[:] = np.clip(sub * (1 - m) + fill * m + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _close_eye(out: np.ndarray, x: GenerateInput, ring: tuple[int, ...]) -> None:
        """A lid that closes over an eye open in the target: the warp squeezes the eyeball into
        a sliver; cover it with the lid's own skin and a lash line, in proportion to closure."""
        a_src, a_dst = g.ring_area(x.src, ring), g.ring_area(x.dst, ring)
        if a_src <= 1.0:
            return
        w = float(np.clip((1.0 - a_dst / a_src - 0.35) / 0.45, 0.0, 1.0))
        if w <= 0:
            return
        eye = x.dst[list(ring), :2]
        width = float(np.linalg.norm(eye[0] - eye[8])) + 1e-6   # corner to corner
        x0, y0, x1, y1 = window(eye, 0.4 * width, out)
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        o, shape = (x0, y0), (x1 - x0, y1 - y0)
        sub = out[y0:y1, x0:x1]
        upper = eye[:9]                                          # outer corner, upper lid, inner
        # the lid's own colour: a band above the lashes, below the brow
        band = np.vstack([upper - [0, 0.1 * width], (upper - [0, 0.22 * width])[::-1]])
        skin = band_mean(sub, band, upper[:1], o)
        lower = np.vstack([eye[8:], eye[:1]])                    # where the lids meet
        # the closed slit and the eyeball squeezed around it (a tenth of the eye's width)
        r = max(1, int(round(0.1 * width)))
        m = cv2.dilate(polygon_mask(shape, eye, 0.0, o),
                       cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
        m = cv2.GaussianBlur(m, (0, 0), max(0.7, 0.04 * width))[..., None] * w
        lid = np.broadcast_to(skin * 0.93, sub.shape).astype(np.float32).copy()
        cv2.polylines(lid, [np.round((lower - o) * 16).astype(np.int32)], False,
                      (skin * 0.55).tolist(), max(1, int(round(0.025 * width))), cv2.LINE_AA, 4)
        lid = cv2.GaussianBlur(lid, (0, 0), max(0.6, 0.015 * width))
        sub[:] = np.clip(sub * (1 - m) + lid * m + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _driver_mouth(x: GenerateInput, shape, origin) -> np.ndarray:
        """The driver's mouth interior warped onto the destination inner-lip polygon, sampled
        straight from the driver's frame (one resampling)."""
        ring = list(g.LIPS_INNER)
        dst = np.vstack([x.dst[ring, :2], x.dst[ring, :2].mean(0, keepdims=True)])
        src = np.vstack([x.driver_pts[ring, :2], x.driver_pts[ring, :2].mean(0, keepdims=True)])
        k = len(ring)
        tris = np.array([(i, (i + 1) % k, k) for i in range(k)], np.int32)
        mx, my = warp_maps(shape, 1, tris, dst, src, origin)
        return cv2.remap(x.driver_image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def _synthetic_mouth(self, x: GenerateInput, shape, origin, lips: np.ndarray,
                         a_src: float) -> np.ndarray:
        """A dark cavity, with upper teeth that move with the upper lip: the target's own teeth
        when its mouth shows them, else a synthetic band."""
        w, h = shape
        poly = x.dst[list(g.LIPS_INNER), :2]
        y0, y1 = poly[:, 1].min(), poly[:, 1].max()
        ys = (np.arange(h, dtype=np.float32) + origin[1] - y0) / max(y1 - y0, 1.0)
        shade = (1.0 - 0.6 * np.clip(ys, 0, 1))[:, None, None]
        img = np.broadcast_to((lips * 0.25)[None, None, :] * shade, (h, w, 3)).astype(np.float32)
        upper = list(UPPER_INNER)
        if a_src > 0.004:   # the target shows its own mouth interior: carry it with the upper lip
            a = g.similarity_2d(x.src[upper], x.dst[upper])
            a[:, 2] -= origin
            own = cv2.warpAffine(x.image, a, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT).astype(np.float32)
            a[:, 2] += origin
            m = polygon_mask(shape, g.transform_points(a, x.src[list(g.LIPS_INNER), :2]), 1.0,
                             origin)[..., None]
            return own * m + img * (1 - m)
        if self.p["teeth"] <= 0:
            return img
        arc = x.dst[upper, :2]
        height = 0.09 * g.face_size(x.dst)
        band = np.vstack([arc, (arc + [0, height])[::-1]])
        m = polygon_mask(shape, band, max(1.0, height / 6), origin)[..., None]
        # ivory, as bright as the face's light allows, with a touch of the lips' hue
        light = np.clip(lips.mean() / 140.0, 0.45, 1.25)
        ivory = np.array([240.0, 228.0, 204.0]) * light * 0.8 + lips * 0.2
        teeth = ivory * self.p["teeth"] + lips * 0.25 * (1 - self.p["teeth"])
        return teeth * m + img * (1 - m)


UPPER_INNER = g.LIPS_INNER[:11]   # corner to corner along the upper lip


@hookimpl
def reenact_fx_components():
    return [MeshWarp]
