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

# What a 2-D warp of a portrait can carry: the driver's relative motion (after the ``pose``
# strength) passes through soft limits: unchanged up to a knee (0.6 of the limit), then
# compressed smoothly (tanh) towards the limit, never beyond it.
MAX_TURN_DEG = 30.0      # rotation (any axis): a 2-D warp cannot show a head's far side
MAX_SCALE = 0.15         # relative size change (log): leaning in, leaning back
MAX_SHIFT = 0.6          # translation, eye-corner distances
KNEE = 0.6
ROOM = 0.85              # share of the room between the head and the frame edge a head may use
# the head around the face mesh's box, as fractions of the box (hair above, ears aside)
HEAD_GROW = {"up": 0.55, "down": 0.15, "side": 0.3}


def soft(x, limit):
    """The compression curve: the identity up to KNEE * limit, then a tanh shoulder (slope 1 at the
    knee, so the curve is smooth) approaching +-limit."""
    x = np.asarray(x, np.float64)
    limit = np.asarray(limit, np.float64)
    k = KNEE * limit
    a = np.abs(x)
    over = k + (limit - k) * np.tanh((a - k) / np.maximum(limit - k, 1e-12))
    return np.sign(x) * np.where(a <= k, a, over)


def keep_in_frame(points: np.ndarray, ref: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``points`` (478, 3) shifted so the head never leaves a (width, height) frame: the shift from
    the reference face's place is compressed, per direction, into the room its head has there."""
    lo, hi = ref[:468, :2].min(0), ref[:468, :2].max(0)
    w, h = hi - lo
    head_lo = lo - [HEAD_GROW["side"] * w, HEAD_GROW["up"] * h]
    head_hi = hi + [HEAD_GROW["side"] * w, HEAD_GROW["down"] * h]
    room_lo = np.maximum(head_lo, 1.0) * ROOM              # room to the left / top
    room_hi = np.maximum(np.asarray(size, float) - head_hi, 1.0) * ROOM
    c_ref = ref[list(g.RIGID), :2].mean(0)
    shift = points[list(g.RIGID), :2].mean(0) - c_ref
    room = np.where(shift < 0, room_lo, room_hi)
    out = points.copy()
    out[:, :2] += soft(shift, room) - shift
    return out


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
        # the strength first, then the soft limits of what a warp can carry
        v = g.matrix_to_rotvec(rel_r) * pose
        angle = float(np.linalg.norm(v))
        if angle > 1e-9:
            v = v * float(soft(angle, np.radians(MAX_TURN_DEG))) / angle
        rel_r = g.rotvec_to_matrix(v)
        scale = float(np.exp(soft(pose * np.log(s_dr / s), MAX_SCALE)))
        # the translation, taken about the face's centre so that rotation and scale do not move it
        c = shapes[t][list(g.RIGID)].mean(0)
        shift = scale * rel_r @ c + pose * q - c
        shift = shift * float(soft(np.linalg.norm(shift), MAX_SHIFT)) / max(np.linalg.norm(shift), 1e-9)
        moved = scale * (shapes[t] - c) @ rel_r.T + c + shift
        out[t] = g.apply(1 / s_tr, r_tr.T, -(r_tr.T @ t_tr) / s_tr, moved)
        if x.target_size is not None:
            out[t] = keep_in_frame(out[t], x.target_ref, x.target_size)
    return out
