"""Face tracking on real faces (no mocks): skimage's astronaut, and the shared face material when present."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from reenact_fx.errors import FaceError, ParamError
from reenact_fx.face.humanface import human_face_score
from reenact_fx.face.tracking import TRACKING, FaceTracker, fill_gaps, reference_index
from reenact_fx.face.track import N_LANDMARKS, LandmarkTrack

from conftest import SHARED  # noqa: E402  (the one place that locates the shared faces)

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared face material not found at {SHARED} (set REENACT_FX_SHARED)")

# mediapipe mesh indices
UPPER_LIP, LOWER_LIP = 13, 14            # inner lips
RIGHT_EYE, LEFT_EYE = 33, 263            # outer eye corners


def face_size(pts: np.ndarray) -> float:
    return float((pts[:, :2].max(0) - pts[:, :2].min(0)).max())


def centre_x(pts: np.ndarray) -> float:
    return float(pts[:, 0].mean())


def mouth_open(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[..., UPPER_LIP, :2] - points[..., LOWER_LIP, :2], axis=-1)


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def video_frames(path: Path, limit: int | None = None):
    """(index, rgb) of a video, decoded with PyAV, plus its size and frame times."""
    import av
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = s.frames if limit is None else min(limit, s.frames)
        rate = float(s.average_rate)
        size = (s.codec_context.width, s.codec_context.height)
    times = np.arange(n) / rate

    def gen():
        with av.open(str(path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i >= n:
                    break
                yield i, f.to_ndarray(format="rgb24")
    return gen(), size, times


def track_still(tracker: FaceTracker, rgb: np.ndarray, path: str) -> LandmarkTrack:
    h, w = rgb.shape[:2]
    return tracker.track_frames([(0, rgb)], path=path, size=(w, h), times=np.zeros(1))


def two_faces(small_on_left: bool = True) -> np.ndarray:
    """The astronaut beside a 0.6x copy of herself, on one 1024x512 canvas."""
    big = skimage.data.astronaut()
    small = cv2.resize(big, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    pad = np.zeros_like(big)
    pad[:small.shape[0], :small.shape[1]] = small
    return np.concatenate([pad, big] if small_on_left else [big, pad], axis=1)


@pytest.fixture(scope="module")
def tracker():
    t = FaceTracker()
    yield t
    t.close()


@pytest.fixture(scope="module")
def d0_track(tracker):
    frames, size, times = video_frames(SHARED / "driving" / "d0.mp4")
    return tracker.track_frames(frames, path=str(SHARED / "driving" / "d0.mp4"), size=size, times=times)


# --- no shared data needed ---------------------------------------------------------------------------

def test_astronaut_one_upright_face(tracker):
    img = skimage.data.astronaut()
    faces = tracker.detect_faces(img)
    assert len(faces) == 1
    f = faces[0]
    assert f.shape == (N_LANDMARKS, 3) and f.dtype == np.float32
    h, w = img.shape[:2]
    assert (f[:, 0] >= 0).all() and (f[:, 0] < w).all() and (f[:, 1] >= 0).all() and (f[:, 1] < h).all()
    assert max(f[RIGHT_EYE, 1], f[LEFT_EYE, 1]) < min(f[UPPER_LIP, 1], f[LOWER_LIP, 1])
    assert mouth_open(f) < 0.1 * face_size(f)          # lips nearly closed in a smile
    assert np.ptp(f[:, 2]) < face_size(f)              # z is in pixels like x, not normalised


def test_astronaut_is_human(tracker):
    img = skimage.data.astronaut()
    assert human_face_score(img, tracker.detect_faces(img)[0][:, :2]) > 0.9


def test_same_input_same_landmarks(tracker):
    img = skimage.data.astronaut()
    a, b = tracker.detect_faces(img)[0], FaceTracker().detect_faces(img)[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("select, expect", [
    ("largest", "big"), ("left", "small"), ("right", "big"), ("center", "big"), ("index", "small")])
def test_face_select_picks_the_right_face(select, expect):
    img = two_faces(small_on_left=True)
    with FaceTracker({"face_select": select}) as t:
        assert len(t.detect_faces(img)) == 2
        track = track_still(t, img, "two.png")
    x = centre_x(track.points[0])
    assert (x > 512) == (expect == "big")
    assert any("2 faces seen" in n and "tracking.face_select" in n for n in track.notes)


def test_largest_face_on_the_left():
    with FaceTracker() as t:
        track = track_still(t, two_faces(small_on_left=False), "two.png")
    assert centre_x(track.points[0]) < 512


def test_face_index_out_of_range_is_a_face_error():
    with FaceTracker({"face_select": "index", "face_index": 5}) as t:
        with pytest.raises(FaceError, match="face_index"):
            track_still(t, two_faces(), "two.png")


def test_follows_the_chosen_face_through_a_moving_two_face_video():
    base = two_faces(small_on_left=True)
    frames = [(i, cv2.warpAffine(base, np.float32([[1, 0, 3 * i], [0, 1, 2 * i]]), (1024, 512)))
              for i in range(12)]
    with FaceTracker({"face_select": "left"}) as t:
        track = t.track_frames(frames, path="two.mp4", size=(1024, 512), times=np.arange(12) / 25)
    assert track.valid.all()
    xs = track.points[:, :, 0].mean(1)
    np.testing.assert_allclose(np.diff(xs), 3, atol=1.0)      # stays on the small face, moving with it


def test_tiny_face_is_rejected_with_a_reason():
    img = np.full((720, 1280, 3), 128, np.uint8)
    small = cv2.resize(skimage.data.astronaut(), None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    img[240:240 + small.shape[0], 640:640 + small.shape[1]] = small   # a ~21 px face
    with FaceTracker() as t, pytest.raises(FaceError, match="smaller than 24 px"):
        track_still(t, img, "tiny.png")


def test_no_face_names_the_file(tracker, tmp_path):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR))
    with pytest.raises(FaceError) as e:
        track_still(tracker, read_rgb(path), str(path))
    assert str(path) in str(e.value) and "no face" in str(e.value)


def test_schema_refuses_unknown_and_bad_values():
    assert TRACKING.resolve()["face_select"] == "largest"
    with pytest.raises(ParamError):
        FaceTracker({"max_face": 2})
    with pytest.raises(ParamError):
        FaceTracker({"face_select": "biggest"})


def synthetic_track(valid: np.ndarray, fps: float = 25) -> LandmarkTrack:
    n = len(valid)
    pts = np.zeros((n, N_LANDMARKS, 3), np.float32) + np.arange(n, dtype=np.float32)[:, None, None]
    return LandmarkTrack("x.mp4", (64, 64), pts, valid.copy(), np.arange(n) / fps)


def test_fill_gaps_edges_and_reference():
    valid = np.ones(40, bool)
    valid[:5] = False                       # 0.2 s at the start: held
    valid[30:] = False                      # 0.4 s at the end with max_gap 0.3: left invalid
    out = fill_gaps(synthetic_track(valid), 0.3)
    assert out.valid[:30].all() and not out.valid[30:].any()
    assert (out.points[:5] == 5).all() and out.filled[:5].all() and not out.filled[5:].any()
    assert any("frames 30–39" in n for n in out.notes)
    assert reference_index(out) == 5        # held frames are not the reference
    assert reference_index(out, "12") == 12
    with pytest.raises(FaceError):
        reference_index(out, "35")


# --- shared face material -----------------------------------------------------------------------------

@needs_shared
def test_d0_tracks_every_frame_and_the_mouth_moves(d0_track):
    assert len(d0_track) == 78 and d0_track.valid.all() and not d0_track.filled.any()
    assert d0_track.points.dtype == np.float32
    lips = mouth_open(d0_track.points)
    assert lips.max() > 5 * max(lips.min(), 0.5)           # the person speaks
    # one person: the face moves smoothly, never jumps
    centres = d0_track.points[:, :, :2].mean(1)
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() < 0.2 * face_size(d0_track.points[0])


@needs_shared
def test_face_found_again_after_blank_frames(tracker):
    frames, size, times = video_frames(SHARED / "driving" / "d0.mp4", limit=50)
    blanked = ((i, np.zeros_like(f) if 30 <= i < 36 else f) for i, f in frames)
    track = tracker.track_frames(blanked, path="d0.mp4", size=size, times=times)
    assert track.valid.all()                                 # 0.24 s gap: interpolated
    assert track.filled[30:36].all() and not track.filled[:30].any() and not track.filled[36:].any()


@needs_shared
def test_small_face_in_full_body_shot(tracker):
    frames, size, times = video_frames(SHARED / "source" / "s13.mp4", limit=30)
    track = tracker.track_frames(frames, path="s13.mp4", size=size, times=times)
    assert track.valid.sum() >= 27
    sizes = [face_size(p) for p in track.points[track.valid]]
    assert max(sizes) < 0.15 * size[1]                       # it really is a small face
    tiny_track = FaceTracker({"small_face_search": False})
    frames, size, times = video_frames(SHARED / "source" / "s13.mp4", limit=1)
    with pytest.raises(FaceError, match="small_face_search"):
        tiny_track.track_frames(frames, path="s13.mp4", size=size, times=times)


@needs_shared
def test_monkey_is_refused_as_not_human(tracker):
    path = SHARED / "source" / "s22.jpg"
    with pytest.raises(FaceError) as e:
        track_still(tracker, read_rgb(path), str(path))
    assert "human" in str(e.value) and str(path) in str(e.value) and e.value.frame == 0
    with FaceTracker({"verify_human": False}) as t:       # the documented way out
        assert track_still(t, read_rgb(path), str(path)).valid.all()


@needs_shared
def test_fill_gaps_on_d0(d0_track):
    holed = LandmarkTrack(d0_track.path, d0_track.size, d0_track.points.copy(), d0_track.valid.copy(),
                          np.arange(len(d0_track)) / 25.0)
    holed.valid[10:13] = False              # 0.12 s: interpolated
    holed.valid[30:61] = False              # 1.24 s: passes through
    out = fill_gaps(holed, 0.5)
    assert out.valid[10:13].all() and out.filled[10:13].all()
    err = np.linalg.norm(out.points[10:13, :, :2] - d0_track.points[10:13, :, :2], axis=-1).mean()
    assert err < 0.03 * face_size(d0_track.points[10])
    assert not out.valid[30:61].any() and not out.filled[30:61].any()
    assert any(n.startswith("frames 30–60 (1.2s)") and "passes through" in n for n in out.notes)
    assert out.valid[:30].all() and out.valid[61:].all()
