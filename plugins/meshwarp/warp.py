"""Warp primitives of ``meshwarp``: piecewise-affine remap maps over triangles, masks and colour
helpers (pure functions over numpy images, in crop pixels)."""

from __future__ import annotations

import cv2
import numpy as np

from reenact_fx.api import geometry as g


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


def warp_maps_near(size: int, step: int, outer: np.ndarray, tris_in_order: np.ndarray,
                   dst: np.ndarray, src: np.ndarray, near: tuple[int, int, int, int],
                   coarse: int = 8):
    """warp_maps over a (size, size) crop: every ``step`` pixels inside the window ``near`` (the
    face, where the mesh is fine: every triangle in order), every ``coarse`` pixels elsewhere from
    the ``outer`` triangles alone (the head field's are large and its maps nearly affine there), so
    the cost follows the face, not the crop.  The window must hold every face triangle."""
    mx, my = warp_maps((size, size), max(coarse, step), outer, dst, src)
    x0, y0, x1, y1 = near
    if x1 - x0 > 1 and y1 - y0 > 1:
        p = dst[tris_in_order, :2]
        hit = (p[..., 0].max(1) >= x0) & (p[..., 0].min(1) < x1) & \
            (p[..., 1].max(1) >= y0) & (p[..., 1].min(1) < y1)
        fx, fy = warp_maps((x1 - x0, y1 - y0), step, tris_in_order[hit], dst, src, (x0, y0))
        mx[y0:y1, x0:x1], my[y0:y1, x0:x1] = fx, fy
    return mx, my


def border_ramp(size: int, inset: float, ramp: float) -> np.ndarray:
    """(size, size) float32: 0 within ``inset`` px of the edge, rising to 1 over ``ramp`` px."""
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    r = np.clip((d - inset) / max(ramp, 1e-6), 0.0, 1.0)
    return np.minimum.outer(r, r)


def fixed_point(mx: np.ndarray, my: np.ndarray):
    """The maps in OpenCV's fixed-point form: several remaps over one warp run 2-3x faster."""
    return cv2.convertMaps(mx, my, cv2.CV_16SC2)


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


def remap(image: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """cv2.remap (bilinear, reflected border) of a uint8 image; a 3-channel one goes through 4
    channels, which OpenCV's vectorised path runs about 1.6x faster."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        four = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
        out = cv2.remap(four, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)
    return cv2.remap(image, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def uncover(warped: np.ndarray, x, m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """The warped crop with the background put back where it belongs.

    The crop is person F over background B through the matte m: I = m F + (1 - m) B; warping all
    of it moves B with the head.  With the plate P (B without the person) the result is
    I_w + (1 - m_w) (P - P_w): the moved person over the unmoved background.  Where the warp is the
    identity (far background, the body) P_w = P and nothing changes at all.  The plate and the
    matte are warped together (one 4-channel remap) and the sum is taken in 16-bit integers, the
    matte in 1/255 steps (float32 arithmetic over the crop cost 2-3x as much)."""
    alpha = x.person if x.person.dtype == np.uint8 else \
        np.clip(x.person * 255.0 + 0.5, 0, 255).astype(np.uint8)
    moved = cv2.remap(cv2.merge([x.background, alpha]), m1, m2, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    plate_w, m_w = moved[..., :3], np.ascontiguousarray(moved[..., 3])
    cv2.fillPoly(m_w, [np.round(x.dst[list(g.FACE_OVAL), :2]).astype(np.int32)], 255)
    keep = cv2.merge([cv2.bitwise_not(m_w)] * 3).astype(np.int16)
    diff = cv2.subtract(x.background.astype(np.int16), plate_w.astype(np.int16))
    out = cv2.add(warped.astype(np.int16), cv2.multiply(diff, keep, scale=1.0 / 255))
    return np.clip(out, 0, 255).astype(np.uint8)
