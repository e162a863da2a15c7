"""The whole head moves: head_tear (the metric itself, and meshwarp measured by it), the background
plate, pose limits and a warp field that never folds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reenact_fx.evaluation import headtear as H
from reenact_fx.face import geometry as g
from reenact_fx.face import head, posing
from reenact_fx.face.tracking import FaceTracker
from reenact_fx.pipeline.effect import Effect, _head_motion
from reenact_fx_plugins.meshwarp.field import head_field, signed_areas
from test_effect import retrack

N_FRAMES = 10


def _still(faces, name):
    return cv2.cvtColor(cv2.imread(str(faces / "source" / name)), cv2.COLOR_BGR2RGB)


def _tear(still, still_pts, frames, track):
    errs = [H.head_tear_errors(still, still_pts, f, track.points[i])
            for i, f in enumerate(frames) if track.valid[i]]
    moved = sum(e is not None for e in errs)
    return H.head_tear(errs), moved


@pytest.fixture(scope="module")
def turning(faces):
    """s4 (a painted portrait) driven by d12 (the shared driver whose head turns and moves most):
    the frames where the head moves most, rendered by frame (random access) with both anchorings."""
    still = _still(faces, "s4.jpg")
    out = {}
    for anchoring in ("head", "ring"):
        with Effect(params={"meshwarp": {"anchoring": anchoring}}) as fx:
            a = fx.analyze(str(faces / "source/s4.jpg"), str(faces / "driving/d12.mp4"))
            if anchoring == "head":   # the same frames for both: where the head moves most
                motion = np.array([_head_motion(a.src[t], a.dst[t]) for t in range(a.frame_count)])
                picks = np.sort(np.argsort(-motion)[::4][:N_FRAMES])
            frames = [fx.render_frame(int(t)) for t in picks]
        out[anchoring] = (frames, retrack(frames, a.size))
    with FaceTracker({"verify_human": False}) as tr:
        still_pts = tr.detect_faces(still)[0]
    return still, still_pts, a, picks, out


def _rigid_motions(still_pts, drv, picks):
    """The driver's head motion at each pick (its 2-D similarity relative to its first frame, the
    same rotation and scale about the still's face, the translation at the still's face size)."""
    unit = g.face_size(still_pts) / g.face_size(drv[0])
    c = still_pts[list(g.RIGID), :2].mean(0)
    dc = drv[0, list(g.RIGID), :2].mean(0)
    for t in picks:
        m = g.similarity_2d(drv[0, list(g.RIGID)], drv[t, list(g.RIGID)])
        shift = (m[:, :2] @ dc + m[:, 2] - dc) * unit
        yield np.hstack([m[:, :2], (c + shift - m[:, :2] @ c)[:, None]])


def test_a_rigidly_moved_still_scores_near_zero(turning):
    """The still moved as one piece by the driver's own head motion: a perfect head."""
    still, still_pts, a, picks, _ = turning
    h, w = still.shape[:2]
    frames = [cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
              for m in _rigid_motions(still_pts, a.driver_points, picks)]
    score, n = _tear(still, still_pts, frames, retrack(frames, (w, h)))
    assert n >= N_FRAMES // 2, "the driver's head must move for the test to say anything"
    assert score < 0.2, score


def test_a_face_sliding_over_hair_that_stays_scores_one_or_more(turning):
    """The tear itself, built here: the face (inside its oval) moved by the same motion, pasted
    over the unmoved still, so hair, ears and forehead stay where they were."""
    still, still_pts, a, picks, _ = turning
    h, w = still.shape[:2]
    oval = np.zeros((h, w), np.float32)
    cv2.fillPoly(oval, [np.round(still_pts[list(g.FACE_OVAL), :2]).astype(np.int32)], 1.0)
    oval = cv2.GaussianBlur(oval, (0, 0), 2.0)
    frames = []
    for m in _rigid_motions(still_pts, a.driver_points, picks):
        face = cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        k = cv2.warpAffine(oval, m, (w, h))[..., None]
        frames.append(np.clip(face * k + still * (1 - k) + 0.5, 0, 255).astype(np.uint8))
    score, n = _tear(still, still_pts, frames, retrack(frames, (w, h)))
    assert n >= N_FRAMES // 2
    assert score >= 1.0, score


def test_the_fixed_ring_tears_more_than_the_whole_head(turning):
    """meshwarp 1.x (anchoring=ring: hair between the oval and a fixed ring is stretched, not
    moved) against 2.x on the same frames."""
    still, still_pts, _, _, out = turning
    ring, n = _tear(still, still_pts, *out["ring"])
    whole, _ = _tear(still, still_pts, *out["head"])
    assert n >= N_FRAMES // 2
    assert ring > 1.5 * whole, (ring, whole)


def test_the_whole_head_moves_and_the_far_background_stays(turning):
    still, still_pts, _, _, out = turning
    frames, track = out["head"]
    score, n = _tear(still, still_pts, frames, track)
    assert n >= N_FRAMES // 2
    assert score <= 0.5, score
    bg = [H.background_error(still, still_pts, f, track.points[i]) for i, f in enumerate(frames)]
    assert max(b for b in bg if b is not None) < 0.5   # grey levels: the far background untouched


def test_background_plate_keeps_the_background_and_removes_the_person(faces):
    still = _still(faces, "s5.jpg")
    region = head.HeadRegion.of_still(still)
    m = region.matte
    assert m.shape == still.shape[:2] and 0.05 < (m > 0.5).mean() < 0.9
    far = ~head._grow(m > 0.05, 40)
    assert np.array_equal(region.plate[far], still[far])          # untouched where no person is
    person = m > 0.95
    # where the person was, the plate continues the background: its colour is the background's
    assert np.abs(region.plate[person].mean(0) - still[far].mean(0)).max() < \
        np.abs(still[person].mean(0) - still[far].mean(0)).max()
    assert len(region.body) == 2                                  # both shoulders


@pytest.mark.parametrize("turn,shift", [(0.0, 0.0), (0.6, 0.0), (0.0, 0.5), (-0.6, -0.5)])
def test_the_head_field_never_folds(turn, shift):
    """As far as the pose limits let a head go (a roll in radians beyond posing.MAX_TURN_DEG, a
    shift in face heights beyond posing.MAX_SHIFT eye distances), no triangle of the field flips."""
    rng = np.random.default_rng(3)
    size = 600
    t = np.linspace(0, 2 * np.pi, 478, endpoint=False)
    src = np.c_[300 + 70 * np.cos(t) * rng.uniform(0.2, 1, 478),
                280 + 90 * np.sin(t) * rng.uniform(0.2, 1, 478), np.zeros(478)]
    for k, i in enumerate(g.FACE_OVAL):          # a real oval order around the face
        a = 2 * np.pi * k / len(g.FACE_OVAL) - np.pi / 2
        src[i, :2] = [300 + 70 * np.cos(a), 280 + 90 * np.sin(a)]
    src[152, :2], src[10, :2] = [300, 370], [300, 190]
    c = np.array([300, 280])
    r = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    dst = src.copy()
    dst[:, :2] = (src[:, :2] - c) @ r.T + c + shift * 180.0      # the face is 180 px tall
    # the crop the effect would cut: 3x the extent of both faces, centred on them
    both = np.vstack([src[:468, :2], dst[:468, :2]])
    lo, hi = both.min(0), both.max(0)
    size = int(3.0 * (hi - lo).max())
    offset = size / 2 - (lo + hi) / 2
    src[:, :2] += offset
    dst[:, :2] += offset
    sv, dv, tris, motion = head_field(src, dst, size)
    outer = tris[~(tris < 478).all(1)]
    a0, a1 = signed_areas(outer, sv), signed_areas(outer, dv)
    big = np.abs(a0) > 1.0
    assert (np.sign(a0[big]) == np.sign(a1[big])).all()
    assert (motion > 1.0) == (turn != 0 or shift != 0)


def test_pose_limits_compress_but_keep_small_motion():
    x = np.array([0.0, 5.0, 15.0, 25.0, 60.0, 180.0])
    y = posing.soft(x, posing.MAX_TURN_DEG)
    assert np.allclose(y[:3], x[:3])                            # small turns pass unchanged
    assert (np.diff(y) > 0).all() and y.max() < posing.MAX_TURN_DEG   # monotone, bounded
    assert np.allclose(posing.soft(-x, 30.0), -y)


def test_a_moved_head_stays_in_the_frame(faces):
    """A driver who walks out of the frame: the head stops short of the target's frame edge."""
    with FaceTracker({"verify_human": False}) as tr:
        ref = tr.detect_faces(_still(faces, "s4.jpg"))[0]
    for d in ([-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]):
        moved = ref.copy()
        moved[:, :2] += np.array(d) * 2000.0
        kept = posing.keep_in_frame(moved, ref, (720, 720))
        lo, hi = kept[:468, :2].min(0), kept[:468, :2].max(0)
        assert (lo > 0).all() and (hi < 720).all()
        assert np.linalg.norm(kept[:, :2] - ref[:, :2], axis=1).mean() > 10   # it still moves
