"""The streamed analysis (``analyze(stream=True)``, what ``reenact-fx render`` uses): rendering
starts before the driver is tracked to its end, and every frame equals the full analysis's frame,
across gaps in the driver's face (interpolated, held, and too long to fill).  Real clips, real
tracking."""

from __future__ import annotations

import av
import numpy as np
import pytest

from reenact_fx import Effect
from reenact_fx.pipeline.stream import StreamedTrack

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def gapped_driver(faces, tmp_path_factory):
    """d0 (78 frames, 25 fps) with the face gone (the frame black) in frames 0-1 (a leading gap:
    held), 20-23 (a short gap: interpolated) and 40-59 (0.8 s, longer than max_gap: the target
    passes through), then d0's first 32 frames again (110 frames)."""
    out = tmp_path_factory.mktemp("gapped") / "gapped.mp4"
    with av.open(str(faces / "driving/d0.mp4")) as inp:
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    frames = frames + frames[:32]
    with av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], \
            "yuv420p"
        stream.options = {"crf": "12"}
        for i, rgb in enumerate(frames):
            if i < 2 or 20 <= i < 24 or 40 <= i < 60:
                rgb = np.zeros_like(rgb)
            for p in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(p)
        for p in stream.encode():
            dst.mux(p)
    return out


def test_streamed_render_equals_the_full_one_and_starts_before_the_tracking_ends(
        faces, gapped_driver):
    target = str(faces / "source/s4.jpg")   # 720x720: quick to render
    with Effect(cache=False) as fx:
        full = fx.analyze(target, str(gapped_driver))
        want = {t: rgb for t, rgb, _ in fx.frames()}
        assert not full.active[45] and full.active[21] and full.active[0]   # the gaps are real
        full_dst, full_notes = full.dst.copy(), list(full.notes)

    with Effect(cache=False) as fx:
        a = fx.analyze(target, str(gapped_driver), stream=True)
        tracker = fx._stream.tracks["driver"]
        assert isinstance(tracker, StreamedTrack)
        ready = []
        for t, rgb, _ in fx.frames():
            if t == 0:   # the first frame is out while the driver is still being tracked
                assert tracker.track is None and tracker.done < len(tracker), tracker.done
            np.testing.assert_array_equal(rgb, want[t], err_msg=f"frame {t}")
            ready.append(fx._stream.ready if fx._stream else a.frame_count)
        assert len(set(ready)) >= 3, "planned once: nothing was streamed"
        assert a.frame_count == full.frame_count
        done = fx.finish()
        np.testing.assert_array_equal(done.dst, full_dst)
        assert done.notes == full_notes and any("passes through" in n for n in done.notes)
        # random access after the end, as a host asks
        np.testing.assert_array_equal(fx.render_frame(30), want[30])


def test_streamed_render_frame_waits_for_its_frame_only(faces, gapped_driver):
    """A host asking for frame 100 first gets frame 100 of the full render."""
    target = str(faces / "source/s4.jpg")   # 720x720: quick to render
    with Effect(cache=False) as fx:
        fx.analyze(target, str(gapped_driver))
        want = fx.render_frame(100)
    with Effect(cache=False) as fx:
        fx.analyze(target, str(gapped_driver), stream=True)
        np.testing.assert_array_equal(fx.render_frame(100), want)
        assert fx._stream is None or fx._stream.ready > 100


def test_stream_falls_back_to_the_full_analysis_when_a_component_reads_everything(
        faces, gapped_driver):
    """reference=neutral looks at the whole driver for its rest face: no streaming, same result."""
    target = str(faces / "source/s4.jpg")   # 720x720: quick to render
    params = {"effect": {"reference": "neutral"}}
    with Effect(cache=False, params=params) as fx:
        a = fx.analyze(target, str(gapped_driver), stream=True)
        assert fx._stream is None and a.driver_track.valid.sum() > 80


def test_streamed_video_target_equals_the_full_one(d3_short, gapped_driver):
    """Both media streamed: the target clip's own track is smoothed with the same look-ahead."""
    with Effect(cache=False) as fx:
        fx.analyze(str(d3_short), str(gapped_driver))
        want = [rgb for _, rgb, _ in fx.frames()]
    with Effect(cache=False) as fx:
        fx.analyze(str(d3_short), str(gapped_driver), stream=True)
        assert isinstance(fx._stream.tracks["target"], StreamedTrack)
        got = [rgb for _, rgb, _ in fx.frames()]
    assert len(got) == len(want) > 50
    for t, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"frame {t}")
