"""Expression controls (reenact_fx.face.controls): measure/apply round trips on real face meshes, pose and
size invariance, conventions, keyframes and the trace plot.

Tolerances: once the STABLE points (the face frame) are pinned, every expression measure is linear in
the deformation fields and apply() inverts their measured 9x9 response, so read-back is exact up to
float error; we assert 1 % of each control's slider range (cross-talk: 1 % as well), which would still
catch a wrong gain, a sign error or a field leaking into another control's landmarks.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from reenact_fx.face import keyframes as K
from reenact_fx.evaluation.plots import plot_traces
from reenact_fx.face import controls as C
from reenact_fx.errors import ParamError
from reenact_fx.face.tracking import FaceTracker


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker({"verify_human": False}) as tr:
        yield tr


@pytest.fixture(scope="module")
def ref(tracker) -> np.ndarray:
    """The astronaut's real landmarks (478, 3): she smiles with teeth, eyes open, face near frontal."""
    from skimage import data

    faces = tracker.detect_faces(data.astronaut())
    assert len(faces) == 1
    return faces[0].astype(np.float64)


@pytest.fixture(scope="module")
def neutral(tracker, faces) -> np.ndarray:
    """A second real face: source/s0.jpg, a neutral portrait with the mouth closed."""
    img = cv2.cvtColor(cv2.imread(str(faces / "source" / "s0.jpg")), cv2.COLOR_BGR2RGB)
    found = tracker.detect_faces(img)
    assert found
    return found[0].astype(np.float64)


def span(name: str) -> float:
    c = C.BY_NAME[name]
    return c.hi - c.lo


def sweep(name: str, points: np.ndarray) -> list[float]:
    c = C.BY_NAME[name]
    values = np.linspace(c.lo, c.hi, 5)
    if name == "jaw_open":      # a mouth cannot close past closed: stay above the face's own gap
        floor = -C.measure(points)["jaw_open"]
        values = values[values >= floor + 0.01]
    return [float(v) for v in values]


def check_round_trip(points: np.ndarray, name: str, value: float):
    out = C.apply(points, {name: value})
    assert out.shape == (478, 3) and np.isfinite(out).all()
    m = C.measure(out, reference=points)
    assert abs(m[name] - value) <= 0.01 * span(name), (name, value, m[name])
    for other in C.NAMES:
        if other != name:
            assert abs(m[other]) <= 0.01 * span(other), (name, value, other, m[other])


# ====================================================================== calibration
@pytest.mark.parametrize("name", C.NAMES)
def test_every_control_reads_back_on_the_astronaut(ref, name):
    for v in sweep(name, ref):
        check_round_trip(ref, name, v)


@pytest.mark.parametrize("name", C.NAMES)
def test_every_control_reads_back_on_a_second_face(neutral, name):
    c = C.BY_NAME[name]
    for v in sweep(name, neutral)[::2] + [0.5 * c.hi]:
        check_round_trip(neutral, name, v)


def test_combined_values_read_back_together(ref):
    values = {"blink_left": 0.7, "smile": 0.6, "jaw_open": 0.4, "brow_raise": -0.3, "gaze_x": 0.5,
              "yaw": 15.0, "pitch": -8.0, "roll": 6.0}
    m = C.measure(C.apply(ref, values), reference=ref)
    for k in C.NAMES:
        assert abs(m[k] - values.get(k, 0.0)) <= 0.01 * span(k), (k, m[k])


def test_values_relative_to_a_reference_are_targets(ref):
    """apply(p, v, reference=r) sets measure(., r) to v: closing an already half-closed eye to 1."""
    half = C.apply(ref, {"blink_right": 0.5, "smile": 0.3, "yaw": 10.0})
    out = C.apply(half, {"blink_right": 1.0, "yaw": -5.0}, reference=ref)
    m = C.measure(out, reference=ref)
    assert m["blink_right"] == pytest.approx(1.0, abs=0.01)
    assert m["yaw"] == pytest.approx(-5.0, abs=0.2)
    assert m["smile"] == pytest.approx(0.3, abs=0.01)      # not given: kept as it was in `half`


def test_physical_limits(ref):
    """Blink is capped at closed; jaw_open at a closed mouth (the lips never cross)."""
    m = C.measure(C.apply(ref, {"blink_left": 3.0, "jaw_open": -5.0}), reference=ref)
    assert m["blink_left"] == pytest.approx(1.0, abs=1e-6)
    assert m["jaw_open"] == pytest.approx(-C.measure(ref)["jaw_open"], abs=1e-6)


def test_unknown_control_suggests(ref):
    with pytest.raises(ParamError, match="did you mean 'smile'"):
        C.apply(ref, {"smiel": 1.0})


def test_deformations_are_local(ref):
    """Each control moves only its region: blink_left moves no landmark of the other eye or mouth,
    smile none of the eyes or brows, gaze only the irises, and no control moves the STABLE points."""
    from reenact_fx.face.geometry import LEFT_EYE, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE

    iod = np.linalg.norm(ref[33] - ref[263])
    moved = lambda v: np.linalg.norm(C.apply(ref, v) - ref, axis=1) / iod   # noqa: E731
    d = moved({"blink_left": 1.0})
    assert d[list(LEFT_EYE)].max() > 0.05 and d[list(RIGHT_EYE) + list(LIPS_OUTER)].max() < 1e-3
    d = moved({"smile": 1.0})
    assert d[list(LIPS_OUTER)].max() > 0.05 and d[list(LEFT_EYE + RIGHT_EYE + RIGHT_BROW)].max() < 0.01
    d = moved({"gaze_x": 1.0})
    assert set(np.flatnonzero(d > 1e-9)) == set(C.IRIS)
    for k in C.EXPRESSION:
        assert moved({k: C.BY_NAME[k].hi})[list(C.STABLE)].max() < 1e-9, k


# ====================================================================== invariance
def similarity(points: np.ndarray, scale: float, roll_deg: float, shift, c=(256.0, 256.0)) -> np.ndarray:
    """A fixed 2-D similarity about ``c`` (z scaled like x, as mediapipe's z is)."""
    a = math.radians(roll_deg)
    r = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])   # CCW on screen (y down)
    c = np.asarray(c)
    out = points.copy()
    out[:, :2] = (points[:, :2] - c) @ r.T * scale + c + np.asarray(shift)
    out[:, 2] = points[:, 2] * scale
    return out


@pytest.mark.parametrize("scale,roll,shift", [(1.0, 0.0, (140.0, -60.0)), (0.5, 0.0, (0, 0)),
                                              (2.0, 0.0, (30.0, 10.0)), (1.0, 15.0, (0, 0)),
                                              (0.5, 15.0, (-20.0, 40.0))])
def test_deformation_follows_the_face(ref, scale, roll, shift):
    values = {"smile": 0.8, "jaw_open": 0.5, "blink_left": 1.0, "brow_raise": 0.5, "pucker": 0.3,
              "gaze_y": -0.5, "yaw": 12.0, "pitch": 5.0}
    moved = similarity(ref, scale, roll, shift)
    expected = similarity(C.apply(ref, values), scale, roll, shift)
    got = C.apply(moved, values)
    iod = np.linalg.norm(moved[33] - moved[263])
    assert np.abs(got - expected).max() < 1e-6 * iod
    m = C.measure(got, reference=moved)
    for k, v in values.items():
        assert m[k] == pytest.approx(v, abs=0.01 * span(k))


# ====================================================================== measures on real faces
def test_measures_on_real_faces(ref, neutral):
    own = C.measure(ref, reference=ref)
    assert all(abs(v) < 1e-6 for v in own.values())         # a face against itself reads 0
    for face in (ref, neutral):
        m = C.measure(face)
        assert abs(m["blink_left"]) < 0.3 and abs(m["blink_right"]) < 0.3   # eyes open
        assert abs(m["yaw"]) < 10 and abs(m["pitch"]) < 10 and abs(m["roll"]) < 10   # near frontal
    a, n = C.measure(ref), C.measure(neutral)
    assert a["jaw_open"] > n["jaw_open"] + 0.15                # she smiles with teeth, s0's mouth is shut
    assert a["smile"] > n["smile"] + 0.5
    # relative: the astronaut against the neutral face reads an open, smiling mouth
    rel = C.measure(ref, reference=neutral)
    assert rel["jaw_open"] > 0.15 and rel["smile"] > 0.5


def test_pose_measures_and_conventions(ref):
    turned = C.apply(ref, {"yaw": 20.0})
    assert C.measure(turned, reference=ref)["yaw"] == pytest.approx(20.0, abs=0.05)
    assert C.measure(turned)["yaw"] - C.measure(ref)["yaw"] == pytest.approx(20.0, abs=1.5)
    # yaw > 0: the nose tip moves towards image right relative to the eye corners
    nose = lambda p: p[1, 0] - p[list(C.EYE_CORNERS), 0].mean()   # noqa: E731
    assert nose(turned) > nose(ref)
    up = C.apply(ref, {"pitch": 15.0})                          # pitch > 0: nose up
    assert up[1, 1] - up[list(C.EYE_CORNERS), 1].mean() < ref[1, 1] - ref[list(C.EYE_CORNERS), 1].mean()
    # roll > 0 is counter-clockwise on screen: an in-plane CCW rotation of the landmarks reads +15
    assert C.measure(similarity(ref, 1.0, 15.0, (0, 0)), reference=ref)["roll"] == pytest.approx(15, abs=0.05)
    # blink_left is the subject's left eye (image right, geometry.LEFT_EYE)
    closed = C.apply(ref, {"blink_left": 1.0})
    assert np.linalg.norm(closed[386] - closed[374]) < 0.05 * np.linalg.norm(ref[386] - ref[374])
    iod = np.linalg.norm(ref[33] - ref[263])
    assert np.abs(closed[[159, 145]] - ref[[159, 145]]).max() < 1e-3 * iod     # the other eye stays
    assert ref[386, 0] > ref[159, 0]


def test_traces_on_a_sequence(ref):
    seq = np.stack([C.apply(ref, {"jaw_open": v, "yaw": 10 * v}) for v in np.linspace(0, 1, 6)])
    tr = C.traces(seq, reference=ref)
    assert set(tr) == set(C.NAMES) and all(v.shape == (6,) for v in tr.values())
    assert np.allclose(tr["jaw_open"], np.linspace(0, 1, 6), atol=0.01)
    assert np.allclose(tr["yaw"], np.linspace(0, 10, 6), atol=0.05)
    one = C.measure(seq[3], reference=ref)
    assert all(tr[k][3] == pytest.approx(one[k]) for k in C.NAMES)


def test_apply_is_fast(ref):
    rig = C.Rig(ref)
    values = {"smile": 0.3, "jaw_open": 0.5, "blink_left": 1.0, "yaw": 10.0}
    C.apply(ref, values)                                        # builds and caches the face's rig
    t0 = time.perf_counter()
    for _ in range(200):
        C.apply(ref, values)
    assert (time.perf_counter() - t0) / 200 < 1e-3
    assert np.allclose(rig.apply(values), C.apply(ref, values))


# ====================================================================== keyframes
def test_keyframes_interpolation_and_hold():
    lin = K.Keyframes.parse({"interpolation": "linear", "keys": {"smile": [[0, 0], [1, 1], [3, 0]]}})
    v = lin.at(np.array([-1.0, 0.0, 0.25, 1.0, 2.0, 3.0, 9.0]))["smile"]
    assert np.allclose(v, [0, 0, 0.25, 1, 0.5, 0, 0])
    sm = K.Keyframes.parse({"keys": {"smile": [[0, 0], [1, 1]]}})           # smooth by default
    v = sm.at(np.array([0.0, 0.25, 0.5, 1.0, 2.0]))["smile"]
    assert np.allclose(v, [0, 0.15625, 0.5, 1, 1])                          # ease in-out
    mono = K.Keyframes.parse({"keys": {"jaw_open": [[0, 0], [1, 0.5], [2, 1], [3, 1]]}})
    t = np.linspace(0, 3, 301)
    v = mono.at(t)["jaw_open"]
    assert np.all(np.diff(v) >= -1e-12) and v.min() >= 0 and v.max() <= 1  # no overshoot
    assert np.allclose(mono.at(np.array([1.0, 2.0]))["jaw_open"], [0.5, 1.0])
    mixed = K.Keyframes.parse({"keys": {"yaw": [{"t": 0, "v": 0, "ease": "linear"}, {"t": 2, "v": 20}]}})
    assert mixed.at(np.array([0.5]))["yaw"][0] == pytest.approx(5.0)
    assert mixed.duration() == 2.0 and lin.duration() == 3.0
    assert K.Keyframes.parse({"keys": {"roll": [[1.5, 4]]}}).at(np.array([0.0, 5.0]))["roll"].tolist() == [4, 4]


def test_keyframes_round_trip():
    k = K.Keyframes.parse({"interpolation": "linear", "keys": {
        "smile": [[0, 0], [1.2, 0.8, "smooth"], [2.5, 0]],
        "blink_left": [{"t": 0.5, "v": 0}, {"t": 0.6, "v": 1}, {"t": 0.7, "v": 0}]}})
    again = K.Keyframes.parse(k.to_dict())
    assert again == k
    t = np.linspace(-0.5, 3, 50)
    a, b = k.at(t), again.at(t)
    assert all(np.array_equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("data,key,words", [
    ({"keys": {"smiel": [[0, 0]]}}, "keys.smiel", ["unknown control", "did you mean 'smile'"]),
    ({"keys": {"smile": [[0, 0], [1, 0.5], [1, 1]]}}, "keys.smile[2].t",
     ["strictly increasing", "previous key's (1 s)", "found 1"]),
    ({"keys": {"smile": [[0, 0], {"t": 1, "v": 2}]}}, "keys.smile[1].v", ["[-1, 1]", "found 2"]),
    ({"keys": {"smile": [[-1, 0]]}}, "keys.smile[0].t", [">= 0", "found -1"]),
    ({"keys": {"smile": [[0, 0]]}, "interp": "linear"}, "interp",
     ["unknown key", "did you mean 'interpolation'"]),
    ({"keys": {"smile": [{"t": 0, "value": 1}]}}, "keys.smile[0].value", ["unknown field", "'v'"]),
    ({"keys": {"smile": [[0, "high"]]}}, "keys.smile[0].v", ["expected a smile value", "'high'"]),
    ({"interpolation": "cubic", "keys": {}}, "interpolation", ["smooth, linear", "'cubic'"]),
    ({"keys": {"yaw": [[0, 0, "easy"]]}}, "keys.yaw[0].ease", ["smooth, linear", "'easy'"]),
    ({"keys": {"smile": []}}, "keys.smile", ["non-empty list"]),
])
def test_keyframes_errors_name_source_path_and_fix(data, key, words):
    with pytest.raises(ParamError) as e:
        K.Keyframes.parse(data, source="perf.yaml")
    msg = str(e.value)
    assert msg.startswith(f"perf.yaml, key '{key}': ")
    for w in words:
        assert w in msg, (w, msg)


# ====================================================================== plot
def test_plot_traces_writes_a_png(ref, tmp_path):
    times = np.arange(25) / 25
    k = K.Keyframes.parse({"keys": {"smile": [[0, 0], [0.5, 1]], "yaw": [[0, -10], [1, 10]]}})
    seq = K.animate(ref, k, times)
    assert seq.shape == (25, 478, 3)
    path = plot_traces(C.traces(seq, reference=ref), times, str(tmp_path / "tr.png"), title="test")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 200 and img.std() > 5
