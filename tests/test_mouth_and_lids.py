"""meshwarp's mouth, eyelids and the folds of a wide-open mouth, measured on real faces by re-tracking what it renders: s4
(a painted portrait, mouth closed, eyes open) driven by d12 (a speaker who laughs with his mouth
wide open and blinks while turning his head)."""

from __future__ import annotations

import numpy as np
import pytest

from reenact_fx.face import geometry as g
from reenact_fx.face.tracking import FaceTracker
from reenact_fx.pipeline.effect import Effect
from reenact_fx_plugins.meshwarp.folds import flipped, mouth_folds
from test_effect import retrack


def _span(v):
    return float(np.percentile(v, 98) - np.percentile(v, 2))


@pytest.fixture(scope="module")
def s4_d12(faces):
    with Effect() as fx:
        a = fx.analyze(str(faces / "source/s4.jpg"), str(faces / "driving/d12.mp4"))
        mouth = g.mouth_opening(a.dst)
        # a second of speech up to the widest mouth, rendered in order and re-tracked as a video
        # (the way `reenact-fx eval` measures): closed, half-open and wide-open lips
        top = int(np.argmax(mouth[:150]))
        speech = list(range(max(0, top - 24), top + 6))
        frames = [fx.render_frame(t) for t in speech]
        # the deepest blinks of the converted landmarks, against the still's own open eyes
        eyes = g.eye_opening(a.dst)
        blinks = [int(t) for t in np.argsort(eyes)[:3]]
        blink_frames = [fx.render_frame(t) for t in blinks]
        yield a, speech, retrack(frames, a.size), blinks, blink_frames


def test_the_rendered_mouth_opens_as_far_as_the_converted_one(s4_d12):
    a, speech, out, _, _ = s4_d12
    assert out.valid.all()
    want, got = g.mouth_opening(a.dst[speech]), g.mouth_opening(out.points)
    assert _span(want) > 0.2, "the driver opens its mouth wide here"
    assert np.corrcoef(want, got)[0, 1] > 0.9
    # the interior (dark cavity, teeth, tongue) is not read as more lip
    assert _span(got) > 0.85 * _span(want)


def test_a_blink_closes_the_lids_over_an_open_eye(s4_d12):
    a, _, _, blinks, frames = s4_d12
    still = g.eye_opening(a.src[0])
    assert still > 0.3, "the portrait's eyes are open"
    assert max(g.eye_opening(a.dst[t]) for t in blinks) < 0.45 * still, "the driver blinks"
    with FaceTracker({"verify_human": False}) as tr:
        seen = [g.eye_opening(tr.detect_faces(f)[0]) for f in frames]
    # re-detected, the lids are down: no eyeball left showing through a half-transparent lid
    assert max(seen) < 0.4 * still


def test_the_folds_of_a_wide_open_mouth_are_found_next_to_the_lips_only(s4_d12):
    a = s4_d12[0]
    tris = g.mesh_triangles()
    lips = set(g.LIPS_OUTER + g.LIPS_INNER)
    wide = np.argsort(-g.mouth_opening(a.dst))[:10]
    found = [mouth_folds(tris, a.src[t], a.dst[t]) for t in wide]
    assert sum(f.any() for f in found) >= 5, "d12's wide-open mouth folds the tracked mesh"
    for t, f in zip(wide, found):
        assert f.sum() <= flipped(tris, a.src[t, :, :2], a.dst[t, :, :2]).sum()
        # every fold found touches the lips or their neighbours, never the eyes or the cheeks
        assert all(set(tri) & lips or _near_lips(tri, a.src[t]) for tri in tris[f])
    assert not mouth_folds(tris, a.src[0], a.src[0]).any()    # the still itself has none


def _near_lips(tri, src):
    lips = src[list(g.LIPS_OUTER), :2]
    d = np.linalg.norm(src[list(tri), None, :2] - lips[None], axis=-1).min()
    return d < 0.5 * g.face_size(src)
