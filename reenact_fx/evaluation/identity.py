"""Identity embedding for csim: dlib's ResNet face descriptor (99.38% on LFW), offline.

dlib-bin and face-recognition-models (dlib's models as a wheel) are what the evaluation needs; the
render path never imports this module.  dlib's recogniser expects a face chip aligned by its 5-point
shape predictor, and that predictor expects the box of dlib's HOG frontal-face detector.  Rather than
run that detector (slow, and it misses turned faces), the box is placed from the mediapipe landmarks we
already have: on 13 portraits and clip frames of ../shared/data/faces the HOG box is, in units of the
3-D outer-eye-corner distance (IOD) around the eye centre, 1.70 wide and high, its centre 0.01 to the
side and 0.39 below the eye centre (along the face's down direction).
"""

from __future__ import annotations

import threading

import numpy as np

CHIP = 150          # dlib's recogniser input size
CHIP_PADDING = 0.25
BOX_SIDE = 1.70     # HOG box side / IOD
BOX_DOWN = 0.39     # HOG box centre below the eye centre / IOD

_models = None
_load_lock = threading.Lock()
_run_lock = threading.Lock()   # dlib's objects are not documented as re-entrant


def _get_models():
    """(shape predictor, recogniser), loaded once per process."""
    global _models
    if _models is None:
        with _load_lock:
            if _models is None:
                import dlib
                import face_recognition_models as frm
                _models = (dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                           dlib.face_recognition_model_v1(frm.face_recognition_model_location()))
    return _models


def face_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the box dlib's HOG detector would give, from (478, 3) landmarks."""
    p = np.asarray(landmarks, np.float64)
    iod = float(np.linalg.norm(p[33] - p[263]))          # 3-D: barely shrinks when the head turns
    eyes = p[[33, 133, 362, 263], :2].mean(0)
    across = p[263, :2] - p[33, :2]
    across /= np.linalg.norm(across) + 1e-9
    down = np.array([-across[1], across[0]])
    if down @ (p[152, :2] - eyes) < 0:                    # towards the chin
        down = -down
    c = eyes + BOX_DOWN * iod * down
    h = BOX_SIDE * iod / 2
    return int(round(c[0] - h)), int(round(c[1] - h)), int(round(c[0] + h)), int(round(c[1] + h))


def embed(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The unit-length 128-D identity embedding of the face at ``landmarks`` in an RGB uint8 image."""
    import dlib

    predictor, recogniser = _get_models()
    img = np.ascontiguousarray(np.asarray(rgb)[:, :, :3], np.uint8)
    rect = dlib.rectangle(*face_box(landmarks))
    with _run_lock:
        shape = predictor(img, rect)
        chip = dlib.get_face_chip(img, shape, CHIP, CHIP_PADDING)
        v = np.asarray(recogniser.compute_face_descriptor(chip), np.float64)
    return v / (np.linalg.norm(v) + 1e-12)
