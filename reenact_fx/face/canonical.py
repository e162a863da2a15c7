"""One canonical landmark frame for every learned method.

Each face is mapped by the similarity (scale, rotation, translation) that best fits its rigid points
(``geometry.RIGID``: eye corners, nose ridge, forehead, temples) onto a fixed frontal template.  In
that frame x points to image right, y down, z away from the camera, the unit is the eye-corner
distance and the rigid points' centroid is the origin, so shapes of different faces, poses and image
sizes are comparable and a network sees only expression and face shape.
"""

from __future__ import annotations

import numpy as np

from .geometry import RIGID, similarity

_RIGID = np.array(RIGID)

# The template: mean rigid points of the 15 frontal human portraits of ../shared/data/faces
# (source/s0 s2-s11, driving/d8 d9 d19 d30), each in its controls.to_local head frame, then
# Procrustes-aligned and averaged; rescaled so the outer eye corners (33, 263) are 1 apart.
TEMPLATE = np.array([
    [-0.5031, 0.0514, 0.0904], [-0.2005, 0.0828, 0.0355], [0.1841, 0.0819, 0.0299],
    [0.4969, 0.0493, 0.0928], [-0.0003, 0.5369, -0.3324], [-0.0002, 0.4672, -0.3601],
    [0.0009, 0.3702, -0.3405], [-0.0009, 0.1241, -0.1879], [-0.0014, 0.0270, -0.1487],
    [-0.0003, 0.2087, -0.2361], [0.0004, 0.2869, -0.2872], [-0.1774, 0.5638, -0.0768],
    [0.1811, 0.5659, -0.0695], [-0.0060, -0.5157, -0.1446], [-0.0054, -0.3374, -0.1712],
    [-0.0031, -0.1579, -0.1833], [-0.0027, -0.0632, -0.1603], [-0.2147, -0.5100, -0.1286],
    [-0.3918, -0.4843, -0.0567], [-0.5523, -0.4283, 0.0675], [0.2086, -0.5139, -0.1237],
    [0.3905, -0.4910, -0.0518], [0.5572, -0.4371, 0.0751], [-0.7428, 0.2056, 0.6968],
    [0.7642, 0.2088, 0.7002], [-0.7539, 0.0548, 0.6333], [0.7727, 0.0534, 0.6378],
])
TEMPLATE = TEMPLATE - TEMPLATE.mean(0)
TEMPLATE /= np.linalg.norm(TEMPLATE[RIGID.index(33)] - TEMPLATE[RIGID.index(263)])


def fit(points: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """Similarities (T, 3, 4) ``[sR | t]`` taking each face's rigid points onto the template
    (batched Umeyama).  ``template``: other rigid points (27, 3) to fit onto (``delta`` uses the
    target's own reference face)."""
    tpl = TEMPLATE if template is None else np.asarray(template, np.float64)
    s, r, t = similarity(np.asarray(points, np.float64)[:, _RIGID], tpl)
    return np.concatenate([s[:, None, None] * r, t[:, :, None]], 2)


def _batch(points) -> tuple[np.ndarray, bool]:
    p = np.asarray(points)
    if p.ndim == 2:
        p = p[None]
        single = True
    else:
        single = False
    if p.ndim != 3 or p.shape[-1] != 3 or p.shape[1] <= int(_RIGID.max()):
        raise ValueError(f"expected (478, 3) or (T, 478, 3) landmarks, found shape {np.shape(points)}")
    return p, single


def normalize(points, template: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel landmarks (T, 478, 3) or (478, 3) -> (canonical shapes float32, similarities (T, 3, 4)
    or (3, 4) float64).  ``denormalize(*normalize(p))`` gives ``p`` back."""
    p, single = _batch(points)
    sims = fit(p, template)
    shapes = (np.einsum("tij,tnj->tni", sims[:, :, :3], p) + sims[:, None, :, 3]).astype(np.float32)
    return (shapes[0], sims[0]) if single else (shapes, sims)


def invert(sims: np.ndarray) -> np.ndarray:
    """The inverse similarities (canonical -> pixels), same layout."""
    sims = np.asarray(sims, np.float64)
    m = np.linalg.inv(sims[..., :3])
    t = -np.einsum("...ij,...j->...i", m, sims[..., 3])
    return np.concatenate([m, t[..., None]], -1)


def apply(sims: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Similarities (T, 3, 4) or (3, 4) applied to points (T, N, 3) or (N, 3) (float64)."""
    sims = np.asarray(sims, np.float64)
    p = np.asarray(points, np.float64)
    return np.einsum("...ij,...nj->...ni", sims[..., :3], p) + sims[..., None, :, 3]


def denormalize(shapes, sims) -> np.ndarray:
    """Canonical shapes back to pixels through the similarities ``normalize`` returned (float32)."""
    return apply(invert(sims), shapes).astype(np.float32)


def eye_distance(shapes) -> np.ndarray:
    """Outer eye-corner distance of shapes (..., 478, 3): 1 in the canonical frame of a neutral face."""
    s = np.asarray(shapes)
    return np.linalg.norm(s[..., 33, :] - s[..., 263, :], axis=-1)
