"""The whole-head warp field of ``meshwarp``: around the face mesh, a head region that moves rigidly
with the head's pose, fading out over the neck into fixed points on the body and the crop border.

Vertices beyond the 478 landmarks, in crop pixels:

- ring 1, the face oval pushed out 1.3x: hair line, ears, jaw underside; it moves with the head's
  2-D similarity (fitted on the rigid face points) plus part of the oval's own deformation, so an
  opening jaw carries the skin under the chin;
- ring 2, the oval pushed out ``head_scale``x: hair, ears, the top of the neck; above the chin it
  moves rigidly with the head, below it the motion fades out over ``neck_fade`` face heights;
- fixed points: the crop border and the body points (shoulders) the effect found.

Bringing Portraits to Life (Averbuch-Elor et al. 2017) anchors its whole-image warp on the frame
border and moves the torso by the same 2-D transform as the head; here the torso stays where it is
(a driver's head turn does not turn the body) and only the neck bends, and the background the head
uncovers comes from a plate (see ``reenact_fx.face.head``) instead of being stretched.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay

from reenact_fx.api import geometry as g

N = 478
OVAL = np.array(g.FACE_OVAL)
K = len(OVAL)
RING1 = 1.3
BORDER_STEPS = 6           # fixed points per crop side


def rigid_motion(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity taking the source face's rigid points onto the destination's."""
    rig = list(g.RIGID)
    return g.similarity_2d(src[rig, :2], dst[rig, :2])


def apply(a: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ a[:, :2].T + a[:, 2]


def neck_weight(pts: np.ndarray, src: np.ndarray, fade: float) -> np.ndarray:
    """1 above the chin, falling smoothly to 0 ``fade`` face heights below it (along the face's own
    down axis, so a tilted portrait fades along its neck)."""
    chin, top = src[152, :2].astype(np.float64), src[10, :2].astype(np.float64)
    down = chin - top
    height = float(np.linalg.norm(down)) + 1e-6
    d = (pts - chin) @ (down / height) / (height * max(fade, 1e-3))
    return 0.5 * (1.0 + np.cos(np.pi * np.clip(d, 0.0, 1.0)))


def border(size: int) -> np.ndarray:
    t = np.linspace(0, size - 1, BORDER_STEPS + 1)
    lo, hi = np.zeros_like(t), np.full_like(t, size - 1)
    pts = np.vstack([np.c_[t, lo], np.c_[hi, t], np.c_[t[::-1], hi], np.c_[lo, t[::-1]]])
    return np.unique(np.round(pts, 3), axis=0)


def signed_areas(tris: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = pts[tris]
    return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                  - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))


def head_field(src: np.ndarray, dst: np.ndarray, size: int, *, head_scale: float = 2.0,
               neck_fade: float = 0.8, body: np.ndarray | None = None):
    """(src vertices, dst vertices, outer triangles, motion) of the head field around the face mesh.

    The first 478 vertices are the landmarks; triangles here are only those outside the face oval
    (the mesh's own come from ``geometry.mesh_triangles``).  ``motion`` is the largest displacement of
    a ring-2 vertex (px): 0 means the head does not move and nothing but the face changes."""
    s2, d2 = src[:, :2].astype(np.float64), dst[:, :2].astype(np.float64)
    a = rigid_motion(s2, d2)
    oval_s, oval_d = s2[OVAL], d2[OVAL]
    c = oval_s.mean(0)
    inset = 0.03 * size
    r1_s = np.clip(c + RING1 * (oval_s - c), inset, size - 1 - inset)
    r1_d = apply(a, r1_s) + 0.6 * (oval_d - apply(a, oval_s))
    r2_s = np.clip(c + head_scale * (oval_s - c), inset, size - 1 - inset)
    w = neck_weight(r2_s, s2, neck_fade)[:, None]
    r2_d = r2_s + w * (apply(a, r2_s) - r2_s)
    fixed = border(size)
    if body is not None and len(body):
        # a body point inside the head ring (or at the crop's edge) would pin the head itself
        inside = _inside(body, r2_s) | (body < inset).any(1) | (body > size - 1 - inset).any(1)
        fixed = np.vstack([fixed, body[~inside]])
    n1, n2 = N, N + K
    strips = []
    for i in range(K):
        j = (i + 1) % K
        strips += [(OVAL[i], OVAL[j], n1 + i), (OVAL[j], n1 + j, n1 + i),
                   (n1 + i, n1 + j, n2 + i), (n1 + j, n2 + j, n2 + i)]
    outer_pts = np.vstack([r2_s, fixed])
    tri = Delaunay(outer_pts).simplices
    tri = tri[~(tri < K).all(1)]                    # inside ring 2: covered by the strips
    tri = tri + n2                                  # ring 2, then the fixed points
    src_v = np.vstack([s2, r1_s, r2_s, fixed])
    dst_v = np.vstack([d2, r1_d, r2_d, fixed])
    tris = np.vstack([np.array(strips, np.int64), tri]).astype(np.int32)
    # never fold: where the head's motion would flip a triangle of the field, ring 2 takes more of
    # the head's motion (its strip to ring 1 flipped) or less of it (its triangles to the fixed
    # points flipped); the face mesh itself still goes exactly where the landmarks say
    sa = signed_areas(tris, src_v)
    n_strip = len(strips)
    rigid = apply(a, r2_s)
    for _ in range(6):
        bad = (np.sign(signed_areas(tris, dst_v)) != np.sign(sa)) & (np.abs(sa) > 1.0)
        if not bad.any():
            break
        r2 = dst_v[n2:n2 + K]
        if bad[:n_strip].any():
            r2 += 0.5 * (rigid - r2)
        else:
            r2 -= 0.5 * (r2 - src_v[n2:n2 + K])
        np.clip(r2, inset, size - 1 - inset, out=r2)
    motion = float(np.linalg.norm(dst_v[n1:n2 + K] - src_v[n1:n2 + K], axis=1).max())
    return src_v, dst_v, tris, motion


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    import cv2
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0
                     for x, y in pts], bool)
