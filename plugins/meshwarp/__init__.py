"""Generator ``meshwarp``: piecewise-affine warp of the whole head over the face-mesh triangulation.

The target crop is warped so that its landmarks move from ``src`` to ``dst``.  Around the mesh, the
head field (``field.py``) moves hair, ears, forehead and the top of the neck rigidly with the head's
pose and fades the motion out over the neck into fixed points on the shoulders and the crop border;
the background the moving head uncovers comes from the target's plate (``warp.uncover``), so it is
never stretched.  ``anchoring=ring`` keeps the 1.x warp (a fixed ring around the face oval).
Holes of the mesh are closed: the mouth with a strip, each eye with a fan from its iris centre, so
the iris follows the gaze; a lid lowered over an eye the target has open is drawn as lid skin down
to its margin, with a lash line (``eyes.py``).  When the driver opens a mouth that is closed in the
target, the interior is filled from the driver's own mouth (colour-matched to the target's lips) or,
without driver pixels, with a warm dark cavity, tongue and lower teeth (``mouth.py``) under upper
teeth that move with the upper lip, shaded by the lips at its edge; the folds a wide-open mouth
leaves in a tracked mesh are drawn behind the face (``folds.py``).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from reenact_fx.api import GenerateInput, GenerateOutput, Generator, Param, hookimpl
from reenact_fx.api import geometry as g

from .field import head_field
from .eyes import close_lids, irises_inside
from .folds import mouth_folds
from .mouth import TEETH, cavity, grow, light_of, lip_shadow
from .warp import (band_mean, border_ramp, fixed_point, polygon_mask, remap, tone_gain, uncover,
                   warp_maps, warp_maps_near, window)

N = 478
OVAL = np.array(g.FACE_OVAL)
N_ANCHOR = len(OVAL)


@lru_cache(maxsize=1)
def _topology():
    """(holes, surface) triangles over the 478 landmarks (+ the fixed ring of ``anchoring=ring``):
    holes are drawn first."""
    k = N_ANCHOR
    strip = []
    for i in range(k):
        j = (i + 1) % k
        strip += [(OVAL[i], OVAL[j], N + i), (OVAL[j], N + j, N + i)]
    holes = np.vstack([g.fan(g.LIPS_INNER), hub(g.RIGHT_EYE, g.RIGHT_IRIS[0]),
                       hub(g.LEFT_EYE, g.LEFT_IRIS[0])])
    return np.array(strip, np.int32), holes, g.mesh_triangles()


def hub(ring: tuple[int, ...], centre: int) -> np.ndarray:
    """Triangles from ``centre`` to each edge of ``ring``: an eye opening spanned from its iris
    centre, so the iris moves with the gaze and the lids still close over it."""
    k = len(ring)
    return np.array([(centre, ring[i], ring[(i + 1) % k]) for i in range(k)], np.int32)


def anchors(src: np.ndarray, scale: float, size: int) -> np.ndarray:
    """The fixed ring of ``anchoring=ring``: the face oval pushed out from its centre by ``scale``,
    kept inside the crop."""
    oval = src[OVAL, :2].astype(np.float64)
    c = oval.mean(0)
    a = c + scale * (oval - c)
    return np.clip(a, 0, size - 1)


class MeshWarp(Generator):
    name = "meshwarp"
    default = True
    version = "2.1"
    summary = "training-free whole-head warp (face mesh + rigid head, fading over the neck) with " \
              "background plate and mouth-interior fill"
    needs_driver_pixels = True
    params = (
        Param("mouth_fill", "choice", "driver", "how to fill a mouth the target opens: the driver's "
              "mouth interior (colour-matched), a synthetic cavity with teeth, or nothing",
              choices=("driver", "synthetic", "none")),
        Param("teeth", "float", 0.6, "brightness of synthetic teeth (0 = dark cavity only)", 0.0, 1.0),
        Param("anchoring", "choice", "head", "what holds the warp outside the face: the whole head "
              "moves with the pose and fades out over the neck (head), or a fixed ring around the "
              "face that stretches hair and ears (ring: the 1.x generator)", choices=("head", "ring")),
        Param("head_scale", "float", 2.0, "extent of the rigidly moving head region (hair, ears), "
              "relative to the face oval", 1.5, 2.6),
        Param("neck_fade", "float", 0.8, "length of the neck over which the head's motion fades "
              "out, in face heights below the chin", 0.3, 2.0),
        Param("anchor_scale", "float", 1.7, "anchoring=ring: size of the fixed ring around the "
              "face oval, relative to the oval", 1.2, 3.0),
        Param("map_step", "int", 2, "warp maps are computed every N pixels and interpolated "
              "(1 = exact, 2 = 4x faster, visually identical)", 1, 4),
    )

    @property
    def crop_margin(self) -> float:
        """The whole head needs room for the hair above and the neck below; the ring does not."""
        return 3.0 if self.p["anchoring"] == "head" else 0.0

    @property
    def needs_head_region(self) -> bool:
        return self.p["anchoring"] == "head"

    def generate(self, x: GenerateInput) -> GenerateOutput:
        size = x.image.shape[0]
        ring, holes, surface = _topology()
        motion = 0.0
        mesh = irises_inside(x.dst)         # the landmarks as the warp takes them
        if self.p["anchoring"] == "ring":
            anc = anchors(x.src, self.p["anchor_scale"], size)
            src = np.vstack([x.src[:, :2], anc])
            dst = np.vstack([mesh[:, :2], anc])
            outer, mask = ring, polygon_mask((size, size), anc)
        else:
            src, dst, outer, motion = head_field(
                x.src, mesh, size, head_scale=self.p["head_scale"],
                neck_fade=self.p["neck_fade"], body=x.body)
            # the field is the identity on the crop border: everything inside may differ
            mask = border_ramp(size, 0.03 * size, 0.02 * size)
        # painter's order: the field outside the face and the holes behind, then surface
        # triangles far-to-near (mediapipe z grows away from the camera), so a turning head hides
        # its far side; the folds of a wide-open mouth go behind everything (see folds.py)
        folds = mouth_folds(surface, x.src, x.dst)
        front = surface[~folds]
        depth = x.dst[front, 2].mean(1)
        order = np.vstack([outer, holes, surface[folds], front[np.argsort(-depth, kind="stable")]])
        if self.p["anchoring"] == "ring":
            mx, my = warp_maps((size, size), self.p["map_step"], order, dst, src)
        else:
            pts = np.vstack([x.src[:468, :2], x.dst[:468, :2]])
            near = window(pts, 0.15 * float(np.ptp(pts[:, 1])), x.image)
            mx, my = warp_maps_near(size, self.p["map_step"], outer, order, dst, src, near)
        m1, m2 = fixed_point(mx, my)
        out = remap(x.image, m1, m2)
        if motion > 0.5 and x.background is not None and x.person is not None:
            out = uncover(out, x, m1, m2)
        self._fill_mouth(out, x)
        close_lids(out, x.image, x.src, x.dst)
        return GenerateOutput(out, mask)

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
            # shaded by the lips: a driver's interior lit flat (teeth, tongue) is otherwise read
            # as more lip, by viewers and trackers alike; the synthetic one has its own shading
            fill *= tone_gain(lips, d_lips) * lip_shadow(shape, poly, o)[..., None]
        else:
            fill = self._synthetic_mouth(x, shape, o, lips, a_src)
        # the mask reaches half a pixel past the inner lip line, so its soft edge lies on the lip
        # and no rim of stretched lip is left inside the mouth
        m = polygon_mask(shape, grow(poly, 0.5 + 0.5 * size / 400), max(0.8, size / 400),
                         o)[..., None] * w
        sub[:] = np.clip(sub * (1 - m) + fill * m + 0.5, 0, 255).astype(np.uint8)

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
        img = cavity(x, shape, origin, lips, self.p["teeth"])
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
        ivory = TEETH * light_of(lips) * 0.8 + lips * 0.2
        teeth = ivory * self.p["teeth"] + img[int(h * 0.4), w // 2] * (1 - self.p["teeth"])
        return teeth * m + img * (1 - m)


UPPER_INNER = g.LIPS_INNER[:11]   # corner to corner along the upper lip


@hookimpl
def reenact_fx_components():
    return [MeshWarp]
