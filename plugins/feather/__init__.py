"""Mixer ``feather``: pastes the generated face crop back through a feathered mask.

Only the region the mask covers is touched; every other pixel stays exactly as it was in the target
frame.  Colour matching shifts the generated face's mean colour, measured near the mask's edge, onto the
target's there, so a generator with another white balance leaves no seam.  The mask is eroded and
feathered at a quarter of the crop's resolution: a soft edge has no detail to lose, and the cost then
does not grow with the crop size.
"""

from __future__ import annotations

import cv2
import numpy as np

from reenact_fx.components import GenerateOutput, MixOutput, Mixer
from reenact_fx.hookspecs import hookimpl
from reenact_fx.params import Param

Q = 4  # mask work happens at 1/Q of the crop's resolution


def _scaled(crop_to_frame: np.ndarray, q: int, offset: tuple[int, int]) -> np.ndarray:
    """The affine from pixels of a crop shrunk q times to frame pixels relative to ``offset``."""
    m = crop_to_frame.astype(np.float64).copy()
    a = m[:, :2]
    m[:, 2] = a @ np.array([0.5 * q - 0.5] * 2) + m[:, 2] - offset
    m[:, :2] = a * q
    return m


class FeatherMixer(Mixer):
    name = "feather"
    version = "1.1"
    summary = "feathered-mask paste-back with colour matching; background untouched"
    params = (
        Param("feather", "float", 0.04, "edge softness as a fraction of the crop size", 0.0, 0.25),
        Param("erode", "float", 0.01, "pull the mask edge inwards (fraction of the crop size) "
              "before feathering", 0.0, 0.2),
        Param("color_match", "float", 1.0, "how much of the colour difference at the mask edge is "
              "corrected (0 = none)", 0.0, 1.0),
    )

    def _soft_mask(self, mask: np.ndarray) -> np.ndarray:
        size = mask.shape[0]
        small = cv2.resize(mask.astype(np.float32), (size // Q, size // Q),
                           interpolation=cv2.INTER_AREA)
        erode = int(round(self.p["erode"] * size / Q))
        if erode > 0:
            small = cv2.erode(small, np.ones((2 * erode + 1,) * 2, np.uint8))
        sigma = self.p["feather"] * size / Q
        if sigma > 0:
            small = cv2.GaussianBlur(small, (0, 0), sigma)
        return small

    def mix(self, frame: np.ndarray, out: GenerateOutput, crop_to_frame: np.ndarray,
            roi: tuple[int, int, int, int]) -> MixOutput:
        x0, y0, x1, y1 = roi
        alpha = cv2.warpAffine(self._soft_mask(out.mask), _scaled(crop_to_frame, Q, (x0, y0)),
                               (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha[alpha < 1.0 / 512] = 0.0   # Gaussian tails below a code value: leave those alone
        np.minimum(alpha, 1.0, out=alpha)   # interpolation may overshoot 1 by a rounding error
        rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        result = frame.copy()
        if not len(rows):
            return MixOutput(result, np.zeros((0, 0), np.float32), (x0, y0, x0, y0))
        # shrink the work to the box the matte really covers
        bx0, by0, bx1, by1 = x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1
        alpha = np.ascontiguousarray(alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
        m = crop_to_frame.astype(np.float64).copy()
        m[:, 2] -= (bx0, by0)
        face = cv2.warpAffine(out.image, m, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        region = frame[by0:by1, bx0:bx1]
        k = self.p["color_match"]
        if k > 0:
            edge = ((alpha > 0.05) & (alpha < 0.6)).astype(np.uint8)
            if edge.sum() > 16:
                shift = k * (np.array(cv2.mean(region, edge)[:3]) - cv2.mean(face, edge)[:3])
                lut = np.clip(np.arange(256)[:, None] + shift[None, :] + 0.5, 0, 255)
                face = cv2.LUT(face, lut.astype(np.uint8).reshape(256, 1, 3))
        result[by0:by1, bx0:bx1] = cv2.blendLinear(face, region, alpha, 1.0 - alpha)
        return MixOutput(result, alpha, (bx0, by0, bx1, by1))


@hookimpl
def reenact_fx_components():
    return [FeatherMixer]
