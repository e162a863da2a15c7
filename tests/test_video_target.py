"""A video target keeps its own head motion and takes the driver's expressions; rates map by time;
the face matte can be written as alpha."""

from __future__ import annotations

import numpy as np
import pytest

from reenact_fx.face import geometry as g
from reenact_fx.pipeline.effect import Effect
from test_effect import retrack

FRAMES = list(range(0, 90, 2))


@pytest.fixture(scope="module")
def s20(faces):
    """s20.mp4 (480x908, 30 fps, a woman who moves her head) driven by d0.mp4 (25 fps, speaking)."""
    fx = Effect(params={"output": {"audio": "none"}})
    a = fx.analyze(faces / "source/s20.mp4", faces / "driving/d0.mp4")
    frames = [fx.render_frame(t) for t in FRAMES]
    yield fx, a, retrack(frames, a.size, fps=15.0)
    fx.close()


def test_output_keeps_the_target_grid_and_maps_the_driver_by_time(s20):
    fx, a, _ = s20
    assert a.frame_count == a.target.frame_count == 297 and a.fps == 30
    assert a.size == (480, 908)
    # output frame t shows the driver frame at the same time: 25 driver frames per 30 output frames
    assert a.driver_index[30] == 25 and a.driver_index[60] == 50
    assert a.driver_index[-1] == a.driver.frame_count - 1   # a shorter driver holds its last frame
    assert any("driver ends" in n for n in a.notes)


def test_head_motion_is_the_targets_own(s20):
    fx, a, out = s20
    assert out.valid.all()
    centre = lambda p: p[..., list(g.RIGID), :2].mean(-2)  # noqa: E731
    own = centre(a.target_track.points[a.target_index[FRAMES]])
    got = centre(out.points)
    motion = np.ptp(own, axis=0).max()
    assert motion > 5, "the target moves its head in these frames"
    assert np.abs(got - own).mean() < 0.15 * motion + 2


def test_expressions_are_the_drivers(s20):
    fx, a, out = s20
    driver = g.mouth_opening(a.driver_points[FRAMES])
    target_own = g.mouth_opening(a.target_track.points[a.target_index[FRAMES]])
    result = g.mouth_opening(out.points)
    assert np.corrcoef(driver, result)[0, 1] > 0.8
    assert np.corrcoef(driver, result)[0, 1] > np.corrcoef(target_own, result)[0, 1]


def test_face_matte_written_as_alpha(faces, tmp_path):
    import av

    out = tmp_path / "matte.mov"
    with Effect(params={"output": {"codec": "prores4444", "alpha": True, "audio": "none"}}) as fx:
        a = fx.analyze(faces / "source/s9.jpg", faces / "driving/d0.mp4")
        fx.render(str(out))
        _, matte = fx.render_frame(5, matte=True)
    with av.open(str(out)) as c:
        frame = next(iter(c.decode(video=0)))
        assert "a" in frame.format.name          # an alpha pixel format
        rgba = frame.to_ndarray(format="rgba")
    alpha = rgba[..., 3].astype(float) / 255
    nose = a.dst[0, 1, :2].astype(int)
    assert alpha[nose[1], nose[0]] > 0.95            # the face is opaque
    assert alpha[:40].max() == 0 and alpha[-40:].max() == 0   # far from it, transparent
    assert matte.shape == alpha.shape
