"""The aligned face crop: an integer square of the frame, resampled to a square of ``size`` pixels.

Both directions are plain ``cv2.resize`` calls over pixel-aligned boxes: the two mappings are each
other's inverse, pixel centres included, and several times faster than a general affine warp.  (The
outermost ring of the crop clamps to the square instead of reading the frame beyond it: no face is
ever that close to the crop's edge.)  ``affine`` gives the same mapping as a 2x3 matrix for points and for generators or
mixers that need one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SquareCrop:
    x0: int      # top-left of the square in frame pixels (may lie outside the frame)
    y0: int
    side: int    # the square's side in frame pixels
    size: int    # the crop's side in pixels

    @classmethod
    def around(cls, centre: np.ndarray, side: float, max_size: int):
        """The crop centred on ``centre`` spanning ``side`` frame pixels, at the frame's own
        resolution (no resampling at all: cut and paste are copies) unless that is larger than
        ``max_size``, which it is then shrunk to."""
        side_i = max(int(np.ceil(side)), 16)
        x0, y0 = (np.floor(np.asarray(centre, float) - side_i / 2)).astype(int)
        return cls(int(x0), int(y0), side_i, int(min(side_i, max_size)))

    @property
    def scale(self) -> float:
        return self.size / self.side

    @property
    def affine(self) -> np.ndarray:
        """2x3 frame -> crop mapping of pixel centres (as cv2.resize maps them)."""
        s = self.scale
        return np.array([[s, 0.0, s * (0.5 - self.x0) - 0.5], [0.0, s, s * (0.5 - self.y0) - 0.5]])

    @property
    def inverse(self) -> np.ndarray:
        """2x3 crop -> frame mapping."""
        s = 1.0 / self.scale
        return np.array([[s, 0.0, 0.5 * s - 0.5 + self.x0], [0.0, s, 0.5 * s - 0.5 + self.y0]])

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The part of the square inside a width x height frame, (x0, y0, x1, y1)."""
        return (max(self.x0, 0), max(self.y0, 0), min(self.x0 + self.side, width),
                min(self.y0 + self.side, height))

    def cut(self, frame: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """The crop of ``frame`` (its border replicated where the square leaves the frame)."""
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = self.box(w, h)
        region = frame[y0:y1, x0:x1]
        pads = (y0 - self.y0, self.y0 + self.side - y1, x0 - self.x0, self.x0 + self.side - x1)
        if any(pads):
            region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_REPLICATE)
        if self.size == self.side:
            return np.ascontiguousarray(region)
        return cv2.resize(region, (self.size, self.size), interpolation=interpolation)

    def uncut(self, crop: np.ndarray, width: int, height: int,
              interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """``crop`` (any resolution covering the square) back at frame resolution, cut to the
        frame: (pixels, box)."""
        full = crop if crop.shape[0] == self.side else \
            cv2.resize(crop, (self.side, self.side), interpolation=interpolation)
        x0, y0, x1, y1 = self.box(width, height)
        return full[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0], (x0, y0, x1, y1)
