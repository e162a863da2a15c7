"""Face crops and landmark pictures for the learned image components (numpy + OpenCV, no torch).

A learned generator works in its own crop: the square that the canonical frame
(:mod:`reenact_fx.face.canonical`) puts a face in, at ``size`` pixels (64, 128 or 256; 128 on the
CPU).  :func:`alignment` fits the 2D similarity taking the face's rigid points (eye corners, nose
ridge, forehead, temples) onto the canonical template drawn into that square, so every face of every
pose, frame size and position arrives with its eyes at the same pixels.  The window spans
``2 * HALF`` eye distances around ``CENTRE`` (forehead to chin with some hair and background).

The landmark pictures the seeds' generators are conditioned on:

- :func:`landmark_image`: FReeNet's plotted landmark image (the mesh's contours drawn as 1-pixel
  lines on a 64x64 grey image);
- :func:`heatmap`: FACEGAN's grey image of a 2D Gaussian at every keypoint.

Images go to the networks as float32 NCHW in [-1, 1] (:func:`to_net`, :func:`from_net`).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..face import geometry as g
from ..face.canonical import TEMPLATE

SIZES = (64, 128, 256)
DEFAULT_SIZE = 128
LANDMARK_SIZE = 64            # FReeNet's plotted landmark image is 64x64 for every crop size
CENTRE = (0.0, 0.3)           # crop centre in canonical units (eye distance 1; y down, eyes ~0.05)
HALF = 1.4                    # half the crop's side in canonical units
_RIGID = np.array(g.RIGID)

# The contours FReeNet's landmark image draws (open or closed polylines of the 478-point mesh).
NOSE_RIDGE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2)
NOSE_BASE = (98, 97, 2, 326, 327)
CONTOURS = ((g.FACE_OVAL, True), (g.LIPS_OUTER, True), (g.LIPS_INNER, True),
            (g.RIGHT_EYE, True), (g.LEFT_EYE, True), (g.RIGHT_BROW, True), (g.LEFT_BROW, True),
            (g.RIGHT_IRIS[1:], True), (g.LEFT_IRIS[1:], True), (NOSE_RIDGE, False),
            (NOSE_BASE, False))


def check_size(size: int) -> int:
    size = int(size)
    if size not in SIZES:
        raise ValueError(f"crop size must be one of {', '.join(map(str, SIZES))}, found {size}")
    return size


@lru_cache(maxsize=8)
def _template_px(size: int) -> np.ndarray:
    """The template's rigid points (x, y) in pixels of a ``size`` crop."""
    xy = (TEMPLATE[:, :2] - np.array(CENTRE)) / (2 * HALF)
    return (xy + 0.5) * size - 0.5


def alignment(points: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity taking pixel coordinates of ``points``' image into the canonical crop of
    ``size`` pixels (fitted on the rigid points, in 2D)."""
    return g.similarity_2d(np.asarray(points, np.float64)[_RIGID, :2], _template_px(int(size)))


def invert(a: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine."""
    return np.linalg.inv(np.vstack([np.asarray(a, np.float64), [0, 0, 1]]))[:2]


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 affines: ``a`` after ``b``."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def cut(image: np.ndarray, affine: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """``image`` resampled through ``affine`` (image -> crop) into a ``size`` square; the border is
    replicated where the square leaves the image."""
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, np.asarray(affine, np.float64), (size, size), flags=flags,
                          borderMode=cv2.BORDER_REPLICATE)


def coverage(affine: np.ndarray, src_shape: tuple[int, int], size: int) -> np.ndarray:
    """(size, size) float32: 1 where the crop shows pixels of the (h, w) source, 0 where
    :func:`cut` replicated its border."""
    ones = np.ones(src_shape[:2], np.float32)
    return cv2.warpAffine(ones, np.asarray(affine, np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def uncut(crop: np.ndarray, affine: np.ndarray, width: int, height: int) -> np.ndarray:
    """A crop made with ``affine`` brought back onto a (width, height) image (zeros outside)."""
    return cv2.warpAffine(crop, np.asarray(affine, np.float64), (int(width), int(height)),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def landmark_image(points: np.ndarray, crop_size: int, out: int = LANDMARK_SIZE) -> np.ndarray:
    """FReeNet's plotted landmark image: the mesh's contours of ``points`` (pixels of a
    ``crop_size`` crop) as anti-aliased 1-pixel lines on an ``out`` square, float32 in [0, 1]."""
    img = np.zeros((out, out), np.uint8)
    p = np.asarray(points, np.float64)[:, :2] * (out / crop_size)
    p = np.round((p + 0.5 * (out / crop_size) - 0.5) * 16).astype(np.int32)   # pixel centres
    for ring, closed in CONTOURS:
        cv2.polylines(img, [p[list(ring)]], closed, 255, 1, cv2.LINE_AA, 4)
    return img.astype(np.float32) / 255.0


def heatmap(points: np.ndarray, size: int, sigma: float | None = None) -> np.ndarray:
    """FACEGAN's landmark heatmap: a 2D Gaussian of peak 1 at every keypoint (pixels of a ``size``
    crop), overlapping ones summed and clipped at 1; float32 (size, size).  ``sigma`` defaults to
    1 px at 128 (scaled with the size)."""
    sigma = size / 128.0 if sigma is None else float(sigma)
    acc = np.zeros((size, size), np.float32)
    p = np.asarray(points, np.float64)[:, :2]
    inside = (p >= 0).all(1) & (p <= size - 1).all(1)
    # bilinear splat of each point, then one blur: every point becomes a Gaussian of that sigma
    x0, y0 = np.floor(p[inside]).astype(int).T
    fx, fy = (p[inside] - np.floor(p[inside])).T
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(acc, (np.minimum(y0 + dy, size - 1), np.minimum(x0 + dx, size - 1)), w)
    blurred = cv2.GaussianBlur(acc, (0, 0), sigma)
    peak = 1.0 / (2 * np.pi * sigma * sigma)     # a lone point's peak after the blur
    return np.minimum(blurred / peak, 1.0).astype(np.float32)


def face_mask(points: np.ndarray, size: int, blur: float = 0.0) -> np.ndarray:
    """The face oval of ``points`` filled on a ``size`` square, float32 in [0, 1]."""
    m = np.zeros((size, size), np.float32)
    hull = cv2.convexHull(np.round(np.asarray(points)[list(g.FACE_OVAL), :2] * 16).astype(np.int32))
    cv2.fillConvexPoly(m, hull, 1.0, cv2.LINE_AA, 4)
    return cv2.GaussianBlur(m, (0, 0), blur) if blur > 0 else m


def to_net(images: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1]."""
    a = np.asarray(images)
    a = a[None] if a.ndim == 3 else a
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2), np.float32) / 127.5 - 1.0


def from_net(x: np.ndarray) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    a = np.clip((np.asarray(x).transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255)
    return a.astype(np.uint8)
