"""Face-mesh topology and the small geometric operations the pipeline composes.

Indices follow mediapipe's 478-point face mesh (468 mesh points + 2 x 5 iris points).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Closed contours, in order around the ring.
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
              324, 318, 402, 317, 14, 87, 178, 88, 95)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291,
              375, 321, 405, 314, 17, 84, 181, 91, 146)
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
RIGHT_IRIS = tuple(range(468, 473))
LEFT_IRIS = tuple(range(473, 478))
EYE_CORNERS = (33, 133, 362, 263)                # right outer, right inner, left inner, left outer
# Points that move with the skull, not with expressions: pose is estimated on these.
RIGID = (*EYE_CORNERS,
         1, 4, 5, 6, 168, 197, 195, 98, 327,      # nose
         10, 151, 9, 8, 109, 67, 103, 338, 297, 332,  # forehead
         234, 454, 127, 356)                      # temples

# The lips, by part ("right"/"left" are the subject's): the outer corners (61, 291) are the mouth's
# visible corners, the inner ones (78, 308) where the lips meet inside it.
MOUTH_TOP, MOUTH_BOTTOM = 13, 14                  # inner lip middles
MOUTH_CORNERS = (61, 291)                         # outer corners: right, left
INNER_CORNERS = (78, 308)                         # inner corners: right, left
LIPS_INNER_UPPER = LIPS_INNER[:11]                # right inner corner to left along the upper lip
LIPS_INNER_LOWER = (78, *LIPS_INNER[:10:-1], 308)  # right inner corner to left along the lower lip
LIPS_OUTER_UPPER = LIPS_OUTER[1:10]               # outer upper lip, corners excluded
LIPS_OUTER_LOWER = LIPS_OUTER[:10:-1]             # outer lower lip, corners excluded, right to left


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """(F, 3) triangles of the face surface, from mediapipe's tesselation edges (its 3-cliques)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    adj: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION for c in adj[a] & adj[b]}
    return np.array(sorted(tris), np.int32)


def fan(ring: tuple[int, ...]) -> np.ndarray:
    """Triangles closing a hole bounded by ``ring`` (a strip zig-zagging between its two sides)."""
    n = len(ring)
    out = []
    i, j = 0, n - 1
    # walk from the first corner along both sides, so thin slits (a closed mouth) stay thin
    while j - i > 1:
        if (i + (n - 1 - j)) % 2 == 0:
            out.append((ring[i], ring[i + 1], ring[j])); i += 1
        else:
            out.append((ring[i], ring[j - 1], ring[j])); j -= 1
    return np.array(out, np.int32)


def ring_area(points: np.ndarray, ring: tuple[int, ...]) -> float:
    """Area of the polygon through ``ring`` (pixels squared, x/y only)."""
    p = points[list(ring), :2]
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def face_size(points: np.ndarray) -> float:
    """A robust face scale: outer eye-corner distance (pixels)."""
    return float(np.linalg.norm(points[33, :2] - points[263, :2])) + 1e-6


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over face size; works on (478, 3) or (T, 478, 3)."""
    p = np.asarray(points)
    gap = np.linalg.norm(p[..., MOUTH_TOP, :2] - p[..., MOUTH_BOTTOM, :2], axis=-1)
    size = np.linalg.norm(p[..., 33, :2] - p[..., 263, :2], axis=-1) + 1e-6
    return gap / size


def eye_opening(points: np.ndarray) -> np.ndarray:
    """Mean lid gap of both eyes over each eye's width; works on (478, 3) or (T, 478, 3)."""
    p = np.asarray(points)

    def one(top, bottom, a, b):
        gap = np.linalg.norm(p[..., top, :2] - p[..., bottom, :2], axis=-1)
        return gap / (np.linalg.norm(p[..., a, :2] - p[..., b, :2], axis=-1) + 1e-6)

    return 0.5 * (one(159, 145, 33, 133) + one(386, 374, 362, 263))


def similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
               scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one similarity fit (Umeyama, no reflection), batched: ``src``, ``dst`` (..., N, D) with
    broadcastable batch dimensions; returns s (...), R (..., D, D), t (...) minimising
    sum_n w_n |s R src_n + t - dst_n|^2 for each batch element (``scale=False``: s = 1)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = src.shape[-2]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    mu_s = np.einsum("n,...nd->...d", w, src)
    mu_d = np.einsum("n,...nd->...d", w, dst)
    a, b = src - mu_s[..., None, :], dst - mu_d[..., None, :]
    u, sig, vt = np.linalg.svd(np.einsum("n,...ni,...nj->...ij", w, b, a))
    d = np.ones(sig.shape)
    d[..., -1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    r = (u * d[..., None, :]) @ vt
    var = np.einsum("n,...nd->...", w, a * a)
    s = (sig * d).sum(-1) / np.maximum(var, 1e-12) if scale else np.ones(sig.shape[:-1])
    t = mu_d - s[..., None] * np.einsum("...ij,...j->...i", r, mu_s)
    return s, r, t


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
            scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) of one point set onto another (:func:`similarity` unbatched)."""
    s, r, t = similarity(src, dst, weights, scale)
    return float(s), r, t


def apply(s: float, r: np.ndarray, t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return s * pts @ r.T + t


def rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        return np.eye(3)
    k = v / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    c = np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)
    theta = np.arccos(c)
    if theta < 1e-9:
        return np.zeros(3)
    v = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if np.pi - theta < 1e-6:  # near 180 degrees: axis from the symmetric part
        w, vecs = np.linalg.eigh((r + np.eye(3)) / 2)
        return vecs[:, -1] * theta
    return v / (2 * np.sin(theta)) * theta


def similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity matrix taking 2D points ``src`` onto ``dst`` (least squares)."""
    s, r, t = umeyama(np.asarray(src, float)[:, :2], np.asarray(dst, float)[:, :2])
    return np.hstack([s * r, t[:, None]])


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to the x, y of (N, 2|3) points; z is scaled by the affine's scale."""
    out = np.array(pts, np.float32, copy=True)
    out[:, :2] = pts[:, :2] @ m[:, :2].T + m[:, 2]
    if out.shape[1] > 2:
        out[:, 2] = pts[:, 2] * float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return out
