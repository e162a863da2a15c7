"""FACEGAN's 17 action-unit intensities, as AU-like proxies computed from the expression controls.

FACEGAN drives its landmark transformer with 17 OpenFace AU intensities.  No AU detector is available
offline, so each slot is a fixed function of reenact-fx's nine interpretable expression controls
(``reenact_fx.face.controls``), measured on the driver relative to its reference frame.  Positive and
negative directions of a control go to the antagonist AUs, so the nine controls can be read back
from the slots and a user edits the network's input through the controls:

    slot  AU    name                    from the controls
     0    AU1   inner brow raiser       max(brow_raise, 0)
     1    AU2   outer brow raiser       max(brow_raise, 0)
     2    AU4   brow lowerer            max(-brow_raise, 0)
     3    AU5   upper lid raiser        max(-(blink_left + blink_right) / 2, 0)
     4    AU6   cheek raiser            max(smile, 0)        (our smile deformation lifts the cheeks)
     5    AU12  lip corner puller       max(smile, 0)
     6    AU15  lip corner depressor    max(-smile, 0)
     7    AU18  lip pucker              pucker               (signed: < 0 is the lips drawn back)
     8    AU20  lip stretcher           max(stretch, 0)
     9    AU23  lip tightener           max(-stretch, 0)     (a narrowing that is not a pucker)
    10    AU25  lips part               min(max(jaw_open, 0) / 0.25, 1)  (saturates once open)
    11    AU26  jaw drop                jaw_open             (signed: < 0 closes an open reference)
    12    AU27  mouth stretch           max(jaw_open - 0.5, 0)
    13    AU45  blink, subject's left   blink_left           (FACEGAN has one AU45; a wink needs two)
    14    AU45  blink, subject's right  blink_right
    15    gaze  gaze x                  gaze_x               (OpenFace's gaze output, used as an AU)
    16    gaze  gaze y                  gaze_y

The three head-pose angles (yaw, pitch, roll relative to the reference) are the transformer's
separate pose input.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import controls

SLOTS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU12", "AU15", "AU18", "AU20", "AU23", "AU25", "AU26",
         "AU27", "AU45L", "AU45R", "gaze_x", "gaze_y")
N_AUS = len(SLOTS)
POSE_SCALE = 30.0       # degrees -> network units


def from_controls(values: np.ndarray, names=controls.NAMES) -> tuple[np.ndarray, np.ndarray]:
    """Controls (T, C) in ``names`` order -> (AU intensities (T, 17), pose (T, 3) scaled)."""
    v = np.asarray(values, np.float32)
    c = {n: v[:, i] for i, n in enumerate(names)}
    relu = lambda a: np.maximum(a, 0)   # noqa: E731
    jaw = c["jaw_open"]
    aus = np.stack([
        relu(c["brow_raise"]), relu(c["brow_raise"]), relu(-c["brow_raise"]),
        relu(-(c["blink_left"] + c["blink_right"]) / 2),
        relu(c["smile"]), relu(c["smile"]), relu(-c["smile"]),
        c["pucker"], relu(c["stretch"]), relu(-c["stretch"]),
        np.minimum(relu(jaw) / 0.25, 1.0), jaw, relu(jaw - 0.5),
        c["blink_left"], c["blink_right"], c["gaze_x"], c["gaze_y"],
    ], 1).astype(np.float32)
    pose = np.stack([c["yaw"], c["pitch"], c["roll"]], 1).astype(np.float32) / POSE_SCALE
    return aus, pose
