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


def _lid_pairs(ring: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """(upper, lower) lid points facing each other across an eye ring (corner, upper lid, corner,
    lower lid back)."""
    return list(ring[1:8]), list(ring[15:8:-1])


LID_PAIRS = [_lid_pairs(g.RIGHT_EYE), _lid_pairs(g.LEFT_EYE)]
MAX_LID_RATIO = 2.0   # a wide-eyed driver opens the target's eyes at most twice as far


def relative_lids(shapes, target, driver, driver_ref, strength) -> np.ndarray:
    """Eyelids moved by the driver's *relative* opening: each lid gap of the target is scaled by
    the driver's gap over its reference gap (about the additive result's lid midpoints).  Adding
    the driver's lid shift would push a narrow-eyed target's upper lid through the lower one when
    the driver blinks (the opening then reads as open again) and barely open it when the driver
    widens its eyes; a ratio closes any eye exactly and opens it in proportion."""
    out = shapes.copy()
    for upper, lower in LID_PAIRS:
        gap_d = driver[:, upper, 1] - driver[:, lower, 1]            # (T, 7) vertical lid gaps
        gap_r = driver_ref[upper, 1] - driver_ref[lower, 1]
        safe = np.where(np.abs(gap_r) > 1e-4, gap_r, np.copysign(1e-4, gap_r))
        rho = np.clip(gap_d / safe, 0.0, MAX_LID_RATIO)               # a crossed lid is closed
        rho = 1.0 + strength[upper] * (rho - 1.0)                     # expression strength
        gap = rho * (target[upper, 1] - target[lower, 1])             # the target's own gap, scaled
        mid = 0.5 * (shapes[:, upper, 1] + shapes[:, lower, 1])       # where the additive lids are
        out[:, upper, 1] = mid + 0.5 * gap
        out[:, lower, 1] = mid - 0.5 * gap
    return out


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
        shapes = relative_lids(shapes, target_shape, driver_shapes, driver_ref_shape, k_expr[:, 0])
        return posing.place(shapes, x, pose=self.p["pose"], pose_source=self.p["pose_source"],
                            template=tpl)


@hookimpl
def reenact_fx_components():
    return [DeltaConverter]
