"""Keyframed expression controls through the whole effect, measured on the re-tracked output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import read_video
from reenact_fx.face import controls
from reenact_fx import demo
from reenact_fx.face import geometry as g
from reenact_fx.cli import main
from reenact_fx.pipeline.effect import Effect
from reenact_fx.errors import ReenactError
from reenact_fx.face.tracking import FaceTracker


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker({"verify_human": False}) as t:
        yield t


def held(name, value):
    """A control ramped up over 0.4 s and held: the hold is long enough for the smoother."""
    return {"mode": "replace", "interpolation": "linear",
            "keys": {name: [[0.0, 0.0], [0.4, value], [1.2, value]]}}


@pytest.mark.parametrize("name,value,tol", [
    ("smile", 0.8, 0.3), ("jaw_open", 0.35, 0.3), ("blink_left", 1.0, 0.35),
    ("brow_raise", 0.8, 0.5), ("yaw", 15.0, 0.3), ("roll", 10.0, 0.2)])
def test_applied_control_measures_back_on_the_rendered_face(astronaut_png, tracker, name, value,
                                                            tol):
    with Effect(controls=held(name, value)) as fx:
        a = fx.analyze(astronaut_png)
        rest = tracker.detect_faces(fx.render_frame(0))[0]
        peak = tracker.detect_faces(fx.render_frame(a.frame_count - 1))[0]
    got = float(controls.measure(peak, rest)[name])
    assert abs(got - value) <= tol * abs(value), (name, value, got)
    others = controls.measure(peak, rest)
    if name in ("smile", "jaw_open"):
        assert abs(others["yaw"]) < 3 and abs(others["roll"]) < 3   # the head stays put


def test_smile_widens_the_mouth_and_blink_narrows_the_eyes(astronaut_png, tracker):
    kf = {"mode": "replace", "keys": {"smile": [[0, 0], [0.5, 1.0], [1.0, 1.0], [1.3, 0]],
                                      "blink_left": [[1.3, 0], [1.6, 1.0], [2.0, 1.0]],
                                      "blink_right": [[1.3, 0], [1.6, 1.0], [2.0, 1.0]]}}
    with Effect(controls=kf) as fx:
        fx.analyze(astronaut_png)
        rest, smile, blink = (tracker.detect_faces(fx.render_frame(t))[0] for t in (0, 22, 50))
    corners = lambda p: np.linalg.norm(p[61, :2] - p[291, :2]) / g.face_size(p)  # noqa: E731
    assert corners(smile) > corners(rest) + 0.05
    assert g.eye_opening(blink) < 0.6 * g.eye_opening(rest)


def test_controls_add_on_top_of_a_driver(faces, tracker):
    target, driver = faces / "source/s9.jpg", faces / "driving/d0.mp4"
    with Effect() as fx:
        a = fx.analyze(target, driver)
        plain = fx.render_frame(10)
    with Effect(controls={"mode": "add", "keys": {"smile": [[0, 0.8]]}}) as fx:
        b = fx.analyze(target, driver)
        more = fx.render_frame(10)
    assert a.frame_count == b.frame_count
    p, q = tracker.detect_faces(plain)[0], tracker.detect_faces(more)[0]
    assert controls.measure(q, p)["smile"] > 0.25   # (a painting's smile re-tracks at ~half)
    # the driver still drives: the mouth opening follows it in both
    np.testing.assert_allclose(g.mouth_opening(b.dst), g.mouth_opening(a.dst), atol=0.08)


def test_driver_and_controls_modes_are_checked(astronaut_png, faces):
    with pytest.raises(ReenactError, match="a driver is needed"):
        Effect().analyze(astronaut_png)
    with pytest.raises(ReenactError, match="mode: replace take the driver's place"):
        Effect(controls=held("smile", 0.5)).analyze(astronaut_png, faces / "driving/d0.mp4")


def test_cli_render_with_a_keyframe_file_and_no_driver(astronaut_png, tmp_path, capsys):
    kf = tmp_path / "smile.yaml"
    kf.write_text("mode: replace\nkeys:\n  smile: [[0, 0], [0.8, 0.9]]\n  jaw_open: [[0, 0], [0.8, 0.3]]\n")
    out = tmp_path / "smile.mp4"
    assert main(["render", "-t", str(astronaut_png), "-o", str(out), "--controls", str(kf),
                 "-q"]) == 0
    frames = read_video(out)
    assert len(frames) == 21 and frames[0].shape == (512, 512, 3)
    bad = tmp_path / "typo.yaml"
    bad.write_text("mode: replace\nkeys:\n  smiel: [[0, 0], [1, 1]]\n")
    assert main(["render", "-t", str(astronaut_png), "-o", str(out), "--controls", str(bad),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml" in err and "keys.smiel" in err and "did you mean 'smile'" in err, err


def test_cli_analyze_prints_traces_and_writes_a_plot(faces, tmp_path, capsys):
    plot, csv = tmp_path / "d0.png", tmp_path / "d0.csv"
    assert main(["analyze", str(faces / "driving/d0.mp4"), "--plot", str(plot), "--csv",
                 str(csv)]) == 0
    out = capsys.readouterr().out
    for name in controls.NAMES:
        assert name in out
    assert plot.stat().st_size > 10_000
    rows = csv.read_text().splitlines()
    assert len(rows) == 79 and rows[0].startswith("time,face,")
    jaw = np.array([float(r.split(",")[2 + controls.NAMES.index("jaw_open")]) for r in rows[1:]])
    assert np.ptp(jaw) > 0.3, "d0 opens its mouth"


def test_demo_runs_and_its_face_moves(tmp_path, tracker, capsys):
    out = tmp_path / "demo.mp4"
    assert main(["demo", "-o", str(out), "-q"]) == 0
    sheet = tmp_path / "demo.png"
    assert sheet.stat().st_size > 50_000
    frames = read_video(out)
    assert len(frames) >= 125
    faces = [tracker.detect_faces(f)[0] for f in frames[::5]]
    mouth = g.mouth_opening(np.stack(faces))
    m = controls.traces(np.stack(faces), faces[0])
    # she speaks: the rendered mouth follows the performance's converted landmarks, and opens
    # most of their way (the synthetic interior is not read as lip)
    with Effect(controls=demo.PERFORMANCE) as fx:
        planned = g.mouth_opening(fx.analyze(demo.astronaut_path(tmp_path)).dst[::5])
    assert np.ptp(planned) > 0.12
    assert np.corrcoef(mouth, planned[:len(mouth)])[0, 1] > 0.9, "she speaks"
    assert np.ptp(mouth) > 0.55 * np.ptp(planned), "her mouth opens"
    keys = demo.PERFORMANCE["keys"]["blink_left"]
    blinks = [round((a[0] + b[0]) / 2 * 25) for a, b in zip(keys, keys[1:])   # middle of a hold
              if a[1] == b[1] == 1.0]
    assert len(blinks) == 4
    closed = [tracker.detect_faces(frames[t])[0] for t in blinks]
    assert np.mean([controls.measure(p, faces[0])["blink_left"] for p in closed]) > 0.5, \
        "she blinks"
    assert np.ptp(m["yaw"]) > 15, "she turns her head"
    # and stays herself: the face outline keeps its shape
    outline = list(g.FACE_OVAL)
    def shape(p):  # noqa: E306
        mm = g.similarity_2d(p[outline, :2], faces[0][outline, :2])
        return np.linalg.norm(g.transform_points(mm, p[outline, :2]) - faces[0][outline, :2],
                              axis=1).mean() / g.face_size(faces[0])
    assert max(shape(p) for p in faces) < 0.12
