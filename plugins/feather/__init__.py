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

from reenact_fx.api import GenerateOutput, Mixer, MixOutput, Param, SquareCrop, hookimpl

Q = 4  # mask work happens at 1/Q of the crop's resolution


class FeatherMixer(Mixer):
    name = "feather"
    default = True
    version = "1.2"
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

    def mix(self, frame: np.ndarray, out: GenerateOutput, crop: SquareCrop) -> MixOutput:
        h, w = frame.shape[:2]
        alpha, (x0, y0, x1, y1) = crop.uncut(self._soft_mask(out.mask), w, h)
        alpha[alpha < 1.0 / 512] = 0.0   # Gaussian tails below a code value: leave those alone
        np.minimum(alpha, 1.0, out=alpha)   # interpolation may overshoot 1 by a rounding error
        rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        if not len(rows):
            return MixOutput(frame, np.zeros((0, 0), np.float32), (x0, y0, x0, y0))
        face, _ = crop.uncut(out.image, w, h)
        # shrink the work to the box the matte really covers
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        alpha = np.ascontiguousarray(alpha[r0:r1, c0:c1])
        face = np.ascontiguousarray(face[r0:r1, c0:c1])
        box = (x0 + c0, y0 + r0, x0 + c1, y0 + r1)
        region = frame[box[1]:box[3], box[0]:box[2]]
        k = self.p["color_match"]
        if k > 0:   # (region is a view of frame: read before the paste below)
            # the edge band, sampled every 4th pixel: a mean needs no more
            edge = ((alpha[::4, ::4] > 0.05) & (alpha[::4, ::4] < 0.6)).astype(np.uint8)
            if edge.sum() > 16:
                shift = k * (np.array(cv2.mean(region[::4, ::4], edge)[:3])
                             - cv2.mean(face[::4, ::4], edge)[:3])
                if np.abs(shift).max() >= 0.5:   # below half a code value nothing would change
                    lut = np.clip(np.arange(256)[:, None] + shift[None, :] + 0.5, 0, 255)
                    face = cv2.LUT(face, lut.astype(np.uint8).reshape(256, 1, 3))
        region[:] = cv2.blendLinear(face, region, alpha, 1.0 - alpha)
        return MixOutput(frame, alpha, box)


@hookimpl
def reenact_fx_components():
    return [FeatherMixer]
