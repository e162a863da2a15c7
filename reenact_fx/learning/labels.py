"""Offline face / hair / background pseudo-labels for a face crop.

FACEGAN trains its segmentation head on labels from a pretrained face-parsing network; none can be
had offline, so the labels are made from what mediapipe 0.10.21 carries in its wheel:

- **face**: the face mesh's oval (forehead to chin, ear to ear), filled;
- **hair**: the selfie-segmentation person mask (``mp.solutions.selfie_segmentation``: it includes
  the hair) outside the face, above the mouth or, below it, within the face's width;
- **background**: everything else (the neck and shoulders count as background, as in
  FACEGAN's background image I_b, which the mixer keeps).

Good enough to tell a network where the face and the hair are; not a hairline-exact parse.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from . import facecrops

BACKGROUND, FACE, HAIR = 0, 1, 2
CLASSES = ("background", "face", "hair")


class PersonSegmenter:
    """mediapipe's selfie segmentation (general model, 256x256), opened on first use; one call at
    a time (the graph is not re-entrant)."""

    def __init__(self):
        self._seg = None
        self._lock = threading.Lock()

    def person(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1]: how much each pixel belongs to a person (hair included)."""
        with self._lock:
            if self._seg is None:
                import mediapipe as mp

                self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            res = self._seg.process(np.ascontiguousarray(rgb, np.uint8))
        m = res.segmentation_mask
        if m is None:
            return np.zeros(rgb.shape[:2], np.float32)
        return np.asarray(m, np.float32)

    def close(self) -> None:
        with self._lock:
            if self._seg is not None:
                self._seg.close()
                self._seg = None


def pseudo_labels(rgb: np.ndarray, points: np.ndarray, segmenter: PersonSegmenter) -> np.ndarray:
    """(H, W) uint8 labels (BACKGROUND, FACE, HAIR) of a face crop ``rgb`` with its landmarks
    ``points`` in crop pixels."""
    h, w = rgb.shape[:2]
    person = segmenter.person(rgb) > 0.5
    face = facecrops.face_mask(points, h) > 0.5
    p = np.asarray(points)
    # below the mouth corners only what lies within the face's width (long hair), not shoulders
    mouth_y = float(p[[61, 291], 1].mean())
    lo, hi = p[list(facecrops.g.FACE_OVAL), 0].min(), p[list(facecrops.g.FACE_OVAL), 0].max()
    ys, xs = np.mgrid[:h, :w]
    body = (ys > mouth_y) & ((xs < lo) | (xs > hi)) | (ys > p[152, 1])
    hair = person & ~face & ~body
    # tidy the person mask's speckles at the hair's edge
    hair = cv2.morphologyEx(hair.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    out = np.zeros((h, w), np.uint8)
    out[hair] = HAIR
    out[face] = FACE
    return out
