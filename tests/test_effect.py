"""End to end on real faces: s9 (a portrait) driven by d0 (a talking head), measured by re-tracking."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from conftest import read_video
from reenact_fx.face import geometry as g
from reenact_fx.cli import main
from reenact_fx.pipeline.effect import Effect
from reenact_fx.errors import FaceError, MediaError
from reenact_fx.face.tracking import FaceTracker

# face outline, nose and eye corners: what makes a face shape, little moved by expressions
IDENTITY = list(g.FACE_OVAL) + [1, 4, 5, 6, 168, 197, 195, 98, 327, 33, 133, 362, 263]


def retrack(frames, size, fps=25.0):
    with FaceTracker({"verify_human": False}) as tr:
        return tr.track_frames(enumerate(frames), path="<output>", size=size,
                               times=np.arange(len(frames)) / fps)


@pytest.fixture(scope="module")
def s9(faces, tmp_path_factory):
    """The effect analysed once, its sequential render as lossless PNG frames, and the re-tracking."""
    out = tmp_path_factory.mktemp("s9") / "frames"
    fx = Effect(params={"output": {"codec": "png", "audio": "none"}})
    a = fx.analyze(faces / "source/s9.jpg", faces / "driving/d0.mp4")
    fx.render(str(out))
    frames = read_video(out)
    yield fx, a, frames, retrack(frames, a.size)
    fx.close()


def test_output_follows_the_driver_length_and_keeps_target_size(s9):
    fx, a, frames, _ = s9
    assert len(frames) == a.frame_count == a.driver.frame_count == 78
    assert frames[0].shape == (a.target.height, a.target.width, 3) == (1280, 720, 3)
    assert a.fps == 25


def test_mouth_follows_the_driver(s9):
    fx, a, frames, out = s9
    assert out.valid.all()
    driver = g.mouth_opening(a.driver_points)
    result = g.mouth_opening(out.points)
    assert np.ptp(driver) > 0.1, "the driver speaks"
    assert np.corrcoef(driver, result)[0, 1] > 0.85
    assert np.ptp(result) > 0.5 * np.ptp(driver)


def test_background_far_from_the_face_is_unchanged(s9, faces):
    fx, a, frames, _ = s9
    still = fx._frame("target", 0)
    for t in (0, 30, 60):
        rgb, matte = fx.render_frame(t, matte=True)
        assert np.array_equal(rgb[matte == 0], still[matte == 0])
        # only the face crop is touched (meshwarp 2 moves hair and neck too: 3x the face's extent)
        x0, y0, x1, y1 = fx.crop_at(t).box(*a.size)
        outside = np.ones(matte.shape, bool)
        outside[y0:y1, x0:x1] = False
        assert not matte[outside].any(), "only the face crop is touched"
        assert (matte > 0).mean() < 0.75
        # the face itself does change
        face = matte > 0.9
        assert np.abs(rgb[face].astype(int) - still[face]).mean() > 0.5 or t == 0


def test_render_frame_is_frame_t_of_the_sequential_render(s9):
    fx, a, frames, _ = s9
    order = list(range(a.frame_count))
    random.Random(1).shuffle(order)
    for t in order[:12]:
        assert np.array_equal(fx.render_frame(t), frames[t]), t


def test_output_face_keeps_the_target_shape(s9):
    fx, a, frames, out = s9

    def shape_distance(x, y):
        m = g.similarity_2d(x[IDENTITY, :2], y[IDENTITY, :2])
        aligned = g.transform_points(m, x[IDENTITY, :2])
        return np.linalg.norm(aligned - y[IDENTITY, :2], axis=1).mean() / g.face_size(y)

    target_ref = a.target_track.points[0]
    driver = a.driver_points
    to_target = np.mean([shape_distance(out.points[t], target_ref) for t in range(0, 78, 6)])
    to_driver = np.mean([shape_distance(out.points[t], driver[t]) for t in range(0, 78, 6)])
    assert to_target < 0.5 * to_driver, (to_target, to_driver)


def test_cli_render_h264_with_audio_and_preview(faces, d3_short, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    rc = main(["render", "-t", str(faces / "source/s9.jpg"), "-d", str(d3_short),
               "-o", str(out), "--preview", "--set", "delta.expression=1.2", "--quiet"])
    assert rc == 0
    import av

    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (720, 1280)
        assert c.streams.audio, "the driver's speech goes with the mouth"
        assert abs(float(c.duration / 1e6) - 60 / 30) < 0.25      # d3's first 60 frames
    assert (tmp_path / "out.preview.mp4").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("name,words", [("s22.jpg", ["s22.jpg", "human"])])
def test_animal_target_is_refused_by_name(faces, tmp_path, capsys, name, words):
    rc = main(["render", "-t", str(faces / "source" / name), "-d", str(faces / "driving/d0.mp4"),
               "-o", str(tmp_path / "o.mp4"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and all(w in err for w in words), err
    assert not list(tmp_path.iterdir())


def test_bad_inputs_give_errors_naming_the_file(faces, tmp_path, capsys):
    d0 = faces / "driving/d0.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    noface = tmp_path / "noface.png"
    import cv2
    from skimage import data

    cv2.imwrite(str(noface), data.coffee()[:, :, ::-1])
    for bad in (empty, text, tmp_path / "missing.mp4", noface):
        rc = main(["render", "-t", str(bad), "-d", str(d0), "-o", str(tmp_path / "o.mp4"), "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and bad.name in err and "Traceback" not in err, err
    with pytest.raises(FaceError, match="noface.png"):
        Effect().analyze(noface, d0)


def test_truncated_driver_renders_what_it_has_or_is_refused(faces, tmp_path, capsys):
    data_ = (faces / "driving/d0.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data_[: int(len(data_) * 0.4)])
    rc = main(["render", "-t", str(faces / "source/s9.jpg"), "-d", str(cut),
               "-o", str(tmp_path / "o.mp4"), "-q"])
    err = capsys.readouterr().err
    if rc == 0:
        assert "cut.mp4" in err, "a truncated input is reported"
        assert (tmp_path / "o.mp4").stat().st_size > 0
    else:
        assert rc == 2 and "cut.mp4" in err and "Traceback" not in err


def test_output_equal_to_an_input_is_refused(faces, tmp_path):
    d = tmp_path / "d0.mp4"
    shutil.copy(faces / "driving/d0.mp4", d)
    before = d.read_bytes()
    with Effect() as fx:
        fx.analyze(faces / "source/s9.jpg", d)
        with pytest.raises(MediaError, match="d0.mp4"):
            fx.render(str(d))
    assert d.read_bytes() == before


def test_driver_face_gaps_short_filled_long_passed_through(faces, tmp_path):
    """A driver that loses the face for 3 frames (filled) and for 30 frames (the target passes)."""
    from fractions import Fraction

    from reenact_fx.media import MediaWriter

    frames = read_video(faces / "driving/d0.mp4")
    gappy = tmp_path / "gappy.mp4"
    short, long_ = range(10, 13), range(30, 60)
    with MediaWriter(str(gappy), 512, 512, Fraction(25), codec="h264") as w:
        for i, f in enumerate(frames):
            w.write(np.zeros_like(f) if i in short or i in long_ else f)
    with Effect() as fx:
        a = fx.analyze(faces / "source/s9.jpg", gappy)
        still = fx._frame("target", 0)
        assert a.active[list(short)].all(), "a short gap is interpolated"
        assert not a.active[list(long_)].any(), "a long one is not"
        assert a.driver_track.filled[list(short)].all()
        assert any("30–59" in n and "passes through" in n for n in a.notes), a.notes
        for t in (35, 50):
            assert np.array_equal(fx.render_frame(t), still)
        assert not np.array_equal(fx.render_frame(11), still)


def test_odd_sized_target_with_alpha(astronaut_png, tmp_path):
    """A 511x509 RGBA portrait: rendered at its own size, its alpha noted and dropped."""
    import cv2

    rgba = cv2.imread(str(astronaut_png))[:509, :511]
    rgba = np.dstack([rgba, np.full(rgba.shape[:2], 200, np.uint8)])
    target = tmp_path / "odd.png"
    cv2.imwrite(str(target), rgba)
    out = tmp_path / "odd.mp4"
    with Effect(controls={"mode": "replace", "keys": {"smile": [[0, 0], [0.5, 0.8]]}}) as fx:
        a = fx.analyze(target)
        fx.render(str(out))
    assert any("alpha" in n for n in a.notes), a.notes
    frames = read_video(out)
    assert frames[0].shape == (509, 511, 3) and len(frames) == a.frame_count


def test_variable_frame_rate_driver_is_mapped_by_time(faces, tmp_path):
    """d0 re-timed: its first 40 frames at 25 fps, the rest at 12.5 fps (each shown twice as
    long).  A still target's output keeps the driver's duration, and frame t shows the driver's
    face at time t."""
    import av

    frames = read_video(faces / "driving/d0.mp4")
    vfr = tmp_path / "vfr.mp4"
    with av.open(str(vfr), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 512, 512, "yuv420p"
        s.codec_context.time_base = s.time_base = __import__("fractions").Fraction(1, 100)
        t = 0
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = t
            t += 4 if i < 40 else 8
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with Effect(params={"output": {"audio": "none"}}) as fx:
        a = fx.analyze(faces / "source/s9.jpg", vfr)
    duration = a.frame_count / float(a.fps)
    assert abs(duration - (40 * 0.04 + 38 * 0.08)) < 0.2, (a.frame_count, a.fps)
    times = np.arange(a.frame_count) / float(a.fps)
    expected = np.where(times < 1.6, np.floor(times / 0.04 + 1e-6),
                        40 + np.floor((times - 1.6) / 0.08 + 1e-6)).clip(0, 77)
    assert np.abs(a.driver_index - expected).max() <= 1
