"""Head-pose placement shared by every landmark converter (``delta`` and the learned ones).

A converter produces face shapes in the canonical frame (:mod:`.canonical`) where the target's
reference shape is ``normalize(target_ref)``; :func:`place` puts them back into the output frames:
with the target's own head pose of each frame (a video target keeps its motion) or with the target's
reference pose moved by the driver's rigid motion relative to its reference frame, scaled by a
``pose`` strength (a still target follows the driver's head).
"""

from __future__ import annotations

import numpy as np

from . import geometry as g
from ..components import ConvertInput
from ..params import Param
from . import canonical

# The parameters every landmark converter shares (one declaration: delta and the learned ones).
EXPRESSION = Param("expression", "float", 1.0, "strength of the driver's expressions", 0.0, 3.0)
POSE = Param("pose", "float", 1.0, "strength of the driver's head rotation/translation "
             "(when the pose comes from the driver)", 0.0, 2.0)
POSE_SOURCE = Param("pose_source", "choice", "auto", "head pose from: the driver's relative motion "
                    "applied to the target's reference pose, the target's own frames, or auto "
                    "(target for a video target, driver for a still)",
                    choices=("auto", "driver", "target"))
PARAMS = (EXPRESSION, POSE, POSE_SOURCE)


def resolve_source(pose_source: str, x: ConvertInput) -> str:
    """``auto`` -> ``driver`` for a still target, ``target`` for a video one."""
    if pose_source == "auto":
        return "driver" if x.target_is_still else "target"
    return pose_source


def _split(sim: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) of a 3x4 similarity ``[sR | t]``."""
    s = float(np.cbrt(np.linalg.det(sim[:, :3])))
    return s, sim[:, :3] / s, sim[:, 3]


def place(shapes: np.ndarray, x: ConvertInput, *, pose: float = 1.0, pose_source: str = "auto",
          template: np.ndarray | None = None) -> np.ndarray:
    """Canonical shapes (T, 478, 3) -> pixel landmarks (T, 478, 3) float32 in the output frames.

    ``template``: the rigid points the shapes' frame was fitted on, when not the canonical template
    (see ``canonical.fit``)."""
    shapes = np.asarray(shapes, np.float64)
    if resolve_source(pose_source, x) == "target":
        return canonical.denormalize(shapes, canonical.fit(x.target, template))
    s_tr, r_tr, t_tr = _split(canonical.fit(x.target_ref[None], template)[0])
    s_dr, r_dr, t_dr = _split(canonical.fit(x.driver_ref[None], template)[0])
    sims = canonical.fit(x.driver, template)
    out = np.empty(shapes.shape, np.float32)
    for t in range(len(shapes)):
        s, r, tr = _split(sims[t])
        # the driver's rigid motion from its reference frame, seen in the canonical frame:
        # Q = P_ref o P_t^-1, i.e. X -> (s_dr/s) r_dr r^T X + t_dr - (s_dr/s) r_dr r^T tr
        rel_r = r_dr @ r.T
        q = t_dr - (s_dr / s) * rel_r @ tr
        rel_r = g.rotvec_to_matrix(g.matrix_to_rotvec(rel_r) * pose)
        moved = (s_dr / s) ** pose * shapes[t] @ rel_r.T + pose * q
        out[t] = g.apply(1 / s_tr, r_tr.T, -(r_tr.T @ t_tr) / s_tr, moved)
    return out
