"""Converter ``delta``: the driver's motion relative to its reference frame, on the target's own shape.

FReeNet's ``l_T,r + shift`` without a network: both faces are put in one Procrustes-normalised
frame (``reenact_fx.face.canonical.fit`` onto the target's own rigid points), the driver's expression shift from
its reference frame is scaled to the target's face proportions and added to the target's reference
shape; ``learning.posing`` places the result with the head pose of the target's own frames (video) or
the target's reference pose moved by the driver's relative pose, as for every learned converter.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import Converter, ConvertInput, Param, canonical, hookimpl, posing
from reenact_fx.api import geometry as g


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
    default = True
    version = "1.1"
    summary = "training-free identity-preserving transfer: target reference shape + driver's shift"
    params = (
        *posing.PARAMS,
        Param("adapt_proportions", "bool", True, "scale the driver's shifts per axis by the ratio of "
              "the target's face proportions to the driver's"),
        Param("region", "choice", "all", "where the driver's expressions apply: the whole face, the "
              "mouth and jaw only (dubbing), or the eyes and brows only",
              choices=("all", "mouth", "eyes")),
    )

    def convert(self, x: ConvertInput) -> np.ndarray:
        # the frame is the target's own reference face (its rigid points fit it exactly), not the
        # learned converters' frontal template: no network needs one frame for every face here
        tpl = x.target_ref[list(g.RIGID)].astype(float)
        tpl = (tpl - tpl.mean(0)) / g.face_size(x.target_ref)
        target_shape = canonical.apply(canonical.fit(x.target_ref[None], tpl)[0], x.target_ref)
        driver_ref_shape = canonical.apply(canonical.fit(x.driver_ref[None], tpl)[0], x.driver_ref)
        driver_shapes = canonical.apply(canonical.fit(x.driver, tpl), x.driver)
        ratio = _proportions(target_shape) / _proportions(driver_ref_shape) \
            if self.p["adapt_proportions"] else np.ones(3)
        k_expr = self.p["expression"] * region_weights(target_shape, self.p["region"])[:, None]
        shapes = target_shape + k_expr * (driver_shapes - driver_ref_shape) * ratio
        return posing.place(shapes, x, pose=self.p["pose"], pose_source=self.p["pose_source"],
                            template=tpl)


@hookimpl
def reenact_fx_components():
    return [DeltaConverter]
