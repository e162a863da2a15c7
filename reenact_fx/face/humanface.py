"""Is this face a human one?

Mediapipe's face mesh fits a mesh on monkeys, dogs and llamas as readily as on people, so a mesh is no
proof of a human face.  dlib's CNN (MMOD) face detector was trained on human faces only: on a crop
normalised so the face is 100 px wide it scores >= 0.97 on every human face of the test material
(photos, paintings, a statue, a cartoon) and 0.16 on a capuchin monkey, nothing on dogs.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

CROP = 200          # side of the square crop fed to the detector
FACE_SIDE = 100     # the landmark bbox's longer side is scaled to this (the MMOD model's sweet spot)

_detector = None
_lock = threading.Lock()


def _get_detector():
    """The dlib CNN detector, loaded once per process (loading takes ~0.1 s and ~1 MB)."""
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                import dlib
                import face_recognition_models
                _detector = dlib.cnn_face_detection_model_v1(
                    face_recognition_models.cnn_face_detector_model_location())
    return _detector


def face_crop(rgb: np.ndarray, landmarks_xy: np.ndarray) -> np.ndarray:
    """A CROP x CROP rgb crop centred on the landmarks' bbox, the face scaled to FACE_SIDE px."""
    xy = np.asarray(landmarks_xy, np.float64)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    centre = (lo + hi) / 2
    scale = FACE_SIDE / max(float((hi - lo).max()), 1.0)
    m = np.array([[scale, 0, CROP / 2 - scale * centre[0]],
                  [0, scale, CROP / 2 - scale * centre[1]]], np.float64)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, (CROP, CROP), flags=interp,
                          borderMode=cv2.BORDER_REPLICATE)


def human_face_score(rgb: np.ndarray, landmarks_xy: np.ndarray) -> float:
    """The dlib human-face confidence of the face at ``landmarks_xy`` in ``rgb``; 0.0 when none.

    Only detections whose box covers the crop's centre count, so a second face nearby cannot vouch
    for this one.  ~0.3 s on a CPU; call it once per track, not per frame.
    """
    crop = face_crop(rgb, landmarks_xy)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
    crop = np.ascontiguousarray(crop[:, :, :3], np.uint8)
    detector = _get_detector()
    with _lock:  # dlib's net object is not documented as re-entrant
        found = detector(crop, 0)
    c = CROP / 2
    best = 0.0
    for d in found:
        r = d.rect
        if r.left() <= c <= r.right() and r.top() <= c <= r.bottom():
            best = max(best, float(d.confidence))
    return best
