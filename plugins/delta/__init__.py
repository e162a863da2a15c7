"""Converter ``delta``: the driver's motion relative to its reference frame, on the target's own shape.

FReeNet's ``l_T,r + shift`` without a network: both faces are put in one Procrustes-normalised
frame (``reenact_fx.face.canonical.fit`` onto the target's own rigid points), the driver's expression shift from
its reference frame is scaled to the target's face proportions and added to the target's reference
shape (the lids by the driver's relative opening, the mouth at least as open as the driver's own and
never with the lips through each other); ``learning.posing`` places the result with the head pose of the target's own frames (video) or
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


MOUTH_PAIRS = (list(g.LIPS_INNER_UPPER[1:-1]), list(g.LIPS_INNER_LOWER[1:-1]))   # facing points
LIP_POINTS = list(g.LIPS_INNER + g.LIPS_OUTER)
UPPER_REACH, LOWER_REACH = 0.1, 0.4   # how far above / below the lips a correction is carried


def mouth_sides(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x of each facing pair of inner-lip points, weight above the mouth, weight below) over a
    normalised face: 1 on the upper (lower) lips, fading with the distance from them, over a
    short reach above (the nose keeps still) and a longer one below (the chin follows the jaw)."""
    up, lo = MOUTH_PAIRS
    xs = 0.5 * (shape[up, 0] + shape[lo, 0])
    corners = shape[list(g.INNER_CORNERS), 0]
    px = np.concatenate([corners, xs])
    order = np.argsort(px)
    line = np.interp(shape[:, 0], px[order],
                     np.concatenate([shape[list(g.INNER_CORNERS), 1],
                                     0.5 * (shape[up, 1] + shape[lo, 1])])[order])
    d = np.linalg.norm(shape[:, None, :2] - shape[None, LIP_POINTS, :2], axis=-1).min(1)
    below = shape[:, 1] > line
    w_up = np.where(below, 0.0, np.exp(-(d / UPPER_REACH) ** 2))
    w_lo = np.where(below, np.exp(-(d / LOWER_REACH) ** 2), 0.0)
    w_up[up], w_lo[up], w_up[lo], w_lo[lo] = 1.0, 0.0, 0.0, 1.0
    w_up[list(g.INNER_CORNERS)] = w_lo[list(g.INNER_CORNERS)] = 0.0
    return xs, w_up, w_lo


def open_mouth(shapes, target, driver, strength, ratio_y) -> np.ndarray:
    """The mouth opened at least as far as the driver's (its gap scaled to the target's face),
    and never with the lips through each other.  The additive shift alone measures the opening
    from the driver's reference frame: a driver whose lips are parted there leaves a closed
    target mouth shut while it speaks, and pushes its upper lip through the lower one when it
    closes its own.  Each facing pair of inner-lip points gets the larger of the two gaps; the
    difference moves the upper lip up and the lower lip and jaw down, with the lips' thickness."""
    up, lo = MOUTH_PAIRS
    gap = shapes[:, lo, 1] - shapes[:, up, 1]                              # (T, pairs)
    own = strength * ratio_y * (driver[:, lo, 1] - driver[:, up, 1])
    more = np.maximum(np.maximum(gap, own), 0.0) - gap
    if not (more > 1e-6).any():
        return shapes
    xs, w_up, w_lo = mouth_sides(target)
    order = np.argsort(xs)
    corners = np.sort(target[list(g.INNER_CORNERS), 0])
    grid = np.concatenate([[corners[0]], xs[order], [corners[1]]])
    out = shapes.copy()
    for t in np.flatnonzero((more > 1e-6).any(1)):
        at = np.interp(target[:, 0], grid, np.concatenate([[0.0], more[t, order], [0.0]]))
        out[t, :, 1] += 0.5 * at * (w_lo - w_up)
    return out


class DeltaConverter(Converter):
    name = "delta"
    default = True
    version = "1.2"
    lookahead = 0   # frame by frame
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
        shapes = open_mouth(shapes, target_shape, driver_shapes, k_expr[g.MOUTH_TOP, 0], ratio[1])
        return posing.place(shapes, x, pose=self.p["pose"], pose_source=self.p["pose_source"],
                            template=tpl)


@hookimpl
def reenact_fx_components():
    return [DeltaConverter]
