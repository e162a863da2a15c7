"""Converter ``delta``: the driver's motion relative to its reference frame, on the target's own shape.

FReeNet's ``l_T,r + shift`` without a network: both faces are put in one Procrustes-normalised frame
(similarity fitted on rigid points), the driver's expression shift from its reference frame is scaled to
the target's face proportions and added to the target's reference shape; head pose comes from the
target's own frames (video) or from the target's reference pose moved by the driver's relative pose.
"""

from __future__ import annotations

import numpy as np

from reenact_fx import geometry as g
from reenact_fx.components import ConvertInput, Converter
from reenact_fx.hookspecs import hookimpl
from reenact_fx.params import Param

RIGID = list(g.RIGID)


def _pose(points: np.ndarray, canon: np.ndarray):
    """Similarity taking a face's rigid points onto the canonical shape."""
    return g.umeyama(points[RIGID].astype(float), canon[RIGID])


def _proportions(shape: np.ndarray) -> np.ndarray:
    """Per-axis extent of a normalised face (x: width, y: height, z: depth)."""
    return np.ptp(shape[:468], axis=0) + 1e-9


def region_weights(shape: np.ndarray, region: str) -> np.ndarray:
    """Per-landmark weight of the expression shift: 1 in the region, 0 outside, a smooth ramp
    between, split halfway from the nose's base to the upper lip (the nose keeps still)."""
    if region == "all":
        return np.ones(len(shape))
    y = shape[:, 1] - 0.5 * (shape[2, 1] + shape[0, 1])  # below the split: y > 0
    ramp = 1.0 / (1.0 + np.exp(-y / 0.025))            # eye distance is 1 in the canonical frame
    return ramp if region == "mouth" else 1.0 - ramp


class DeltaConverter(Converter):
    name = "delta"
    version = "1.1"
    summary = "training-free identity-preserving transfer: target reference shape + driver's shift"
    params = (
        Param("expression", "float", 1.0, "strength of the driver's expressions", 0.0, 3.0),
        Param("pose", "float", 1.0, "strength of the driver's head rotation/translation "
              "(when the pose comes from the driver)", 0.0, 2.0),
        Param("pose_source", "choice", "auto", "head pose from: the driver's relative motion applied "
              "to the target's reference pose, the target's own frames, or auto (target for a video "
              "target, driver for a still)", choices=("auto", "driver", "target")),
        Param("adapt_proportions", "bool", True, "scale the driver's shifts per axis by the ratio of "
              "the target's face proportions to the driver's"),
        Param("region", "choice", "all", "where the driver's expressions apply: the whole face, the "
              "mouth and jaw only (dubbing), or the eyes and brows only",
              choices=("all", "mouth", "eyes")),
    )

    def convert(self, x: ConvertInput) -> np.ndarray:
        canon = x.target_ref.astype(float)
        canon = (canon - canon[RIGID].mean(0)) / g.face_size(canon)
        s_tr, r_tr, t_tr = _pose(x.target_ref, canon)
        target_shape = g.apply(s_tr, r_tr, t_tr, x.target_ref.astype(float))
        s_dr, r_dr, t_dr = _pose(x.driver_ref, canon)
        driver_ref_shape = g.apply(s_dr, r_dr, t_dr, x.driver_ref.astype(float))
        ratio = _proportions(target_shape) / _proportions(driver_ref_shape) \
            if self.p["adapt_proportions"] else np.ones(3)

        pose_source = self.p["pose_source"]
        if pose_source == "auto":
            pose_source = "driver" if x.target_is_still else "target"
        k_expr, k_pose = self.p["expression"], self.p["pose"]
        k_expr = k_expr * region_weights(target_shape, self.p["region"])[:, None]
        out = np.empty_like(x.target, dtype=np.float32)
        for t in range(len(x.driver)):
            d = x.driver[t].astype(float)
            s, r, tr = _pose(d, canon)
            shift = (g.apply(s, r, tr, d) - driver_ref_shape) * ratio
            shape = target_shape + k_expr * shift  # canonical frame
            if pose_source == "target":
                s2, r2, t2 = _pose(x.target[t], canon)
                out[t] = g.apply(1 / s2, r2.T, -(r2.T @ t2) / s2, shape)
                continue
            # the driver's rigid motion from its reference frame, seen in the canonical frame:
            # Q = P_ref^-1 o P_t, i.e. X -> (s_dr/s) r_dr r^T X + t_dr - (s_dr/s) r_dr r^T tr
            rel_r = r_dr @ r.T
            q = t_dr - (s_dr / s) * rel_r @ tr
            rel_r = g.rotvec_to_matrix(g.matrix_to_rotvec(rel_r) * k_pose)
            moved = (s_dr / s) ** k_pose * shape @ rel_r.T + k_pose * q
            out[t] = g.apply(1 / s_tr, r_tr.T, -(r_tr.T @ t_tr) / s_tr, moved)
        return out


@hookimpl
def reenact_fx_components():
    return [DeltaConverter]
