"""Mixer ``feather``: pastes the generated face crop back through a feathered mask.

Only the region the crop covers is touched; every pixel outside the mask stays exactly as it was in the
target frame.  Colour matching shifts the generated face's mean colour, measured near the mask's edge,
onto the target's there, so a generator with another white balance does not leave a seam.
"""

from __future__ import annotations

import cv2
import numpy as np

from reenact_fx.components import GenerateOutput, Mixer
from reenact_fx.hookspecs import hookimpl
from reenact_fx.params import Param


class FeatherMixer(Mixer):
    name = "feather"
    version = "1.0"
    summary = "feathered-mask paste-back with colour matching; background untouched"
    params = (
        Param("feather", "float", 0.04, "edge softness as a fraction of the crop size", 0.0, 0.25),
        Param("erode", "float", 0.01, "pull the mask edge inwards (fraction of the crop size) "
              "before feathering", 0.0, 0.2),
        Param("color_match", "float", 1.0, "how much of the colour difference at the mask edge is "
              "corrected (0 = none)", 0.0, 1.0),
    )

    def mix(self, frame: np.ndarray, out: GenerateOutput, crop_to_frame: np.ndarray,
            roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = roi
        size = out.image.shape[0]
        mask = out.mask.astype(np.float32)
        erode = int(round(self.p["erode"] * size))
        if erode > 0:
            mask = cv2.erode(mask, np.ones((2 * erode + 1,) * 2, np.uint8))
        sigma = self.p["feather"] * size
        if sigma > 0:
            mask = cv2.GaussianBlur(mask, (0, 0), sigma)
        m = crop_to_frame.copy()
        m[:, 2] -= (x0, y0)
        w, h = x1 - x0, y1 - y0
        face = cv2.warpAffine(out.image, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha[alpha < 1.0 / 512] = 0.0   # Gaussian tails below a code value: leave those pixels alone
        region = frame[y0:y1, x0:x1].astype(np.float32)
        k = self.p["color_match"]
        if k > 0:
            edge = (alpha > 0.05) & (alpha < 0.6)
            if edge.sum() > 16:
                face += k * (region[edge].mean(0) - face[edge].mean(0))
        a = alpha[..., None]
        result = frame.copy()
        result[y0:y1, x0:x1] = np.clip(face * a + region * (1 - a) + 0.5, 0, 255).astype(np.uint8)
        # exact passthrough where the mask is zero (no rounding drift)
        untouched = alpha <= 0
        result[y0:y1, x0:x1][untouched] = frame[y0:y1, x0:x1][untouched]
        matte = np.zeros(frame.shape[:2], np.float32)
        matte[y0:y1, x0:x1] = alpha
        return result, matte


@hookimpl
def reenact_fx_components():
    return [FeatherMixer]
