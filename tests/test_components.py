"""Unit tests of the parameter system and of each built-in component, measured on scikit-image's
astronaut portrait (its real face-mesh landmarks, its pixels).  Needs no shared data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reenact_fx.face import keyframes
from reenact_fx.face import controls
from reenact_fx import demo
from reenact_fx.face import geometry as g
from reenact_fx.components import ConvertInput, GenerateInput, GenerateOutput
from reenact_fx.face.crop import SquareCrop
from reenact_fx.pipeline.effect import Effect
from reenact_fx.errors import ParamError
from reenact_fx.params import Param, Schema, parse_assignments
from reenact_fx.pipeline.registry import default_registry
from reenact_fx.face.tracking import FaceTracker


def component(kind, name, **values):
    return default_registry().get(kind, name)(values)


# ====================================================================== fixtures
@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker({"verify_human": False}) as tr:
        yield tr


@pytest.fixture(scope="module")
def ref(astronaut, tracker) -> np.ndarray:
    """The astronaut's real face-mesh landmarks (478, 3), tracked once."""
    faces = tracker.detect_faces(astronaut)
    assert len(faces) == 1
    return faces[0]


@pytest.fixture(scope="module")
def crop(astronaut, ref):
    """A 512x512 face crop (the Effect's crop logic: face extent x 2.4, centred), the landmarks in
    crop pixels, and the SquareCrop."""
    lo, hi = ref[:468, :2].min(0), ref[:468, :2].max(0)
    side = int(np.ceil(float(max(hi - lo)) * 2.4))
    x0, y0 = np.floor((lo + hi) / 2 - side / 2).astype(int)
    sq = SquareCrop(int(x0), int(y0), side, 512)
    return sq.cut(astronaut), g.transform_points(sq.affine, ref), sq


def polygon(size, pts, erode=0):
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [np.round(pts[:, :2]).astype(np.int32)], 1)
    if erode:
        m = cv2.erode(m, np.ones((2 * erode + 1,) * 2, np.uint8))
    return m.astype(bool)


# ====================================================================== parameters
class TestParam:
    def test_float(self):
        p = Param("expression", "float", 1.0, "h", 0.0, 3.0)
        assert p.coerce("1.5") == 1.5 and isinstance(p.coerce(2), float)
        assert p.coerce(0) == 0.0 and p.coerce(3) == 3.0          # bounds are inclusive

    def test_int(self):
        p = Param("order", "int", 2, "h", 1, 5)
        assert p.coerce("3") == 3 and isinstance(p.coerce("3"), int)
        assert p.coerce(4.0) == 4
        for bad in (2.5, True, "3.5", "three", None):
            with pytest.raises(ParamError):
                p.coerce(bad)

    @pytest.mark.parametrize("text,value", [("true", True), ("True", True), ("YES", True),
                                            ("on", True), ("1", True), ("false", False),
                                            ("No", False), ("OFF", False), ("0", False),
                                            (True, True), (False, False)])
    def test_bool_from_strings(self, text, value):
        assert Param("alpha", "bool", False, "h").coerce(text) is value

    @pytest.mark.parametrize("bad", ["maybe", "", "2", None, 0.5])
    def test_bool_refuses_other_values(self, bad):
        with pytest.raises(ParamError, match="expected bool"):
            Param("alpha", "bool", False, "h").coerce(bad, where="output")

    def test_choice(self):
        p = Param("mouth_fill", "choice", "driver", "h", choices=("driver", "synthetic", "none"))
        assert p.coerce("none") == "none"
        with pytest.raises(ParamError) as e:
            p.coerce("syntetic", where="meshwarp")
        msg = str(e.value)
        assert e.value.key == "meshwarp.mouth_fill" and "'meshwarp.mouth_fill'" in msg
        assert "did you mean 'synthetic'" in msg and "expected one of" in msg and "found" in msg

    def test_str(self):
        assert Param("label", "str", "x", "h").coerce(12) == "12"

    def test_declaration_is_checked(self):
        with pytest.raises(ValueError):
            Param("x", "complex", 0, "h")
        with pytest.raises(ValueError):
            Param("x", "choice", "c", "h", choices=("a", "b"))

    @pytest.mark.parametrize("value,why", [(5.0, "expected a value in [0.0, 3.0], found 5.0"),
                                           (-0.1, "expected a value in [0.0, 3.0], found -0.1"),
                                           ("lots", "expected float, found 'lots'"),
                                           (True, "expected float, found True"),
                                           ([1], "expected float, found [1]")])
    def test_bad_value_names_the_key_and_says_expected_and_found(self, value, why):
        schema = default_registry().get("converter", "delta").schema()
        with pytest.raises(ParamError) as e:
            schema.resolve({"expression": value})
        assert e.value.key == "delta.expression"
        assert "delta.expression" in str(e.value)
        assert why in str(e.value)

    def test_int_out_of_range(self):
        with pytest.raises(ParamError, match=r"meshwarp\.map_step.*expected a value in \[1, 4\], found 9"):
            default_registry().get("generator", "meshwarp").schema().resolve({"map_step": 9})

    @pytest.mark.parametrize("value", ["nan", float("nan")])
    def test_nan_is_refused_by_a_bounded_float(self, value):
        with pytest.raises(ParamError):
            Param("expression", "float", 1.0, "h", 0.0, 3.0).coerce(value, where="delta")


class TestSchema:
    schema = Schema("meshwarp", (Param("mouth_fill", "choice", "driver", "h",
                                       choices=("driver", "synthetic", "none")),
                                 Param("teeth", "float", 0.6, "h", 0.0, 1.0)))

    def test_resolve_overlays_and_coerces(self):
        r = self.schema.resolve({"teeth": "0.25"})
        assert dict(r) == {"mouth_fill": "driver", "teeth": 0.25}
        assert dict(self.schema.resolve(None)) == {"mouth_fill": "driver", "teeth": 0.6}
        with pytest.raises(TypeError):
            r["teeth"] = 1.0   # resolved values are read-only

    def test_unknown_name_is_refused_with_did_you_mean(self):
        with pytest.raises(ParamError) as e:
            self.schema.resolve({"teth": 0.1})
        assert e.value.key == "meshwarp.teth"
        assert "did you mean 'teeth'" in str(e.value)
        assert "mouth_fill" in str(e.value)   # the known names are listed

    def test_parse_assignments(self):
        got = parse_assignments(["delta.expression=1.2", " meshwarp.mouth_fill =none",
                                 "delta.pose=0", "output.codec=png", "x.label=a=b"])
        assert got == {"delta": {"expression": "1.2", "pose": "0"},
                       "meshwarp": {"mouth_fill": "none"}, "output": {"codec": "png"},
                       "x": {"label": "a=b"}}
        assert parse_assignments([]) == {}

    @pytest.mark.parametrize("bad", ["delta.expression", "expression=1", ".expression=1", "delta.=1",
                                     "=1"])
    def test_parse_assignments_refuses_malformed(self, bad):
        with pytest.raises(ParamError, match="expected component.param=value"):
            parse_assignments([bad])


class TestEffectParams:
    def test_misspelt_parameter_suggests_the_right_one(self):
        with pytest.raises(ParamError) as e:
            Effect(params={"delta": {"expresion": 1}})
        assert "did you mean 'expression'" in str(e.value)
        assert e.value.key == "delta.expresion"

    def test_unknown_owner_is_refused(self):
        with pytest.raises(ParamError) as e:
            Effect(params={"nosuch": {}})
        assert "nosuch" in str(e.value) and "delta" in str(e.value)

    def test_params_by_kind_or_by_name(self):
        fx = Effect(params={"converter": {"expression": 2}, "smoother": {"beta": "0.5"},
                            "tracking": {"max_gap": "1"}, "effect": {"crop_size": 256}})
        assert fx.converter.p["expression"] == 2.0
        assert fx.smoother.name == "one_euro" and fx.smoother.p["beta"] == 0.5
        assert fx.settings["tracking"]["max_gap"] == 1.0
        assert fx.settings["effect"]["crop_size"] == 256
        # the component's own name wins over its kind
        fx = Effect(params={"converter": {"expression": 2}, "delta": {"expression": 0.5}})
        assert fx.converter.p["expression"] == 0.5
        # a bad value addressed by kind is refused too, naming the component
        with pytest.raises(ParamError, match="delta.expression"):
            Effect(params={"converter": {"expression": 7}})

    def test_other_component_choice(self):
        fx = Effect(smoother="savgol", params={"savgol": {"order": "3"}})
        assert fx.smoother.name == "savgol" and fx.smoother.p["order"] == 3


# ====================================================================== converter delta
def stretched(points, k=1.3):
    """The same landmarks made a different face shape: k times wider about the face centre."""
    c = points[list(g.RIGID)].mean(0)
    q = points.astype(np.float64).copy()
    q[:, 0] = c[0] + k * (q[:, 0] - c[0])
    return q.astype(np.float32)


def moved(points, angle, shift, centre=(250.0, 120.0)):
    """A rigid in-plane rotation about a fixed point plus a translation."""
    c = np.asarray(centre)
    ca, sa = np.cos(angle), np.sin(angle)
    q = points.astype(np.float64).copy()
    d = q[:, :2] - c
    q[:, 0] = c[0] + ca * d[:, 0] - sa * d[:, 1] + shift[0]
    q[:, 1] = c[1] + sa * d[:, 0] + ca * d[:, 1] + shift[1]
    return q.astype(np.float32)


def convert_input(driver, target, *, still, target_ref=None):
    t = len(driver)
    target = np.repeat(target[None], t, 0) if target.ndim == 2 else target
    return ConvertInput(driver=driver, driver_valid=np.ones(t, bool), driver_ref=driver[0],
                        target=target, target_valid=np.ones(t, bool),
                        target_ref=target[0] if target_ref is None else target_ref,
                        target_is_still=still, fps=25.0)


def width_height(p):
    """Face width (temple to temple) over height (forehead to chin): rotation invariant."""
    return (np.linalg.norm(p[..., 234, :2] - p[..., 454, :2], axis=-1)
            / np.linalg.norm(p[..., 10, :2] - p[..., 152, :2], axis=-1))


def gap_over_height(p, ref):
    """Inner-lip gap over the face's height in its reference frame."""
    h = np.linalg.norm(ref[10, :2] - ref[152, :2])
    return np.linalg.norm(p[..., g.MOUTH_TOP, :2] - p[..., g.MOUTH_BOTTOM, :2], axis=-1) / h


JAWS = np.linspace(0.0, 1.0, 6)


def deform(ref, blink=0.0, smile=0.0, jaw=0.0, yaw=0.0):
    """``ref`` with an expression and a head yaw (radians), through the expression controls."""
    return controls.apply(ref, {"blink_left": blink, "blink_right": blink, "smile": smile,
                                "jaw_open": 0.6 * jaw, "yaw": float(np.degrees(yaw))}
                          ).astype(np.float32)


@pytest.fixture(scope="module")
def jaw_driver(ref):
    """A different person (1.3x wider face, rotated and moved) opening the jaw."""
    wide = stretched(ref)
    return wide, np.stack([moved(deform(wide, 0, 0, j, 0), 0.17, (30.0, -20.0)) for j in JAWS])


def test_delta_identity_when_driver_is_the_target(ref):
    seq = np.stack([moved(deform(ref, b, s, j, y), a, (tx, ty))
                    for b, s, j, y, a, tx, ty in [(0, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0.05, 5, 2),
                                                  (0, 1, 0.5, 0.1, -0.1, -8, 4),
                                                  (0, 0, 1, -0.2, 0.2, 12, -6),
                                                  (0.5, 0.5, 0.3, 0.25, 0.0, 0, 9)]])
    x = convert_input(seq, seq.copy(), still=False)
    out = component("converter", "delta", pose_source="target").convert(x)
    assert out.shape == seq.shape and out.dtype == np.float32
    assert np.abs(out - seq).max() < 1e-3


def test_delta_transfers_jaw_but_keeps_the_target_face_shape(ref, jaw_driver):
    wide, drv = jaw_driver
    out = component("converter", "delta").convert(convert_input(drv, ref, still=True))
    assert out.shape == drv.shape and np.isfinite(out).all()
    # the driver's reference frame, wherever the driver sits, gives the target's own face back
    assert np.abs(out[0] - ref).max() < 1e-2

    # mouth: grows with the driver's, frame by frame
    mo_d, mo_o = g.mouth_opening(drv), g.mouth_opening(out)
    assert np.all(np.diff(mo_o) > 0)
    assert np.corrcoef(mo_d, mo_o)[0, 1] > 0.99
    growth_d, growth_o = mo_d[-1] - mo_d[0], mo_o[-1] - mo_o[0]
    assert growth_d > 0.2
    # mouth_opening divides by the eye-corner width, which the driver has 1.3x wider: in the
    # height units both faces share, the output's jaw drops as far as the driver's
    assert 0.5 * growth_d < growth_o < 2.0 * growth_d
    gh_d = gap_over_height(drv, drv[0])
    gh_o = gap_over_height(out, ref)
    assert np.allclose(gh_o - gh_o[0], gh_d - gh_d[0], rtol=0.1, atol=0.005), (gh_o, gh_d)

    # face shape: the target's proportions, not the driver's 1.3x wider ones
    wh_t, wh_w = width_height(ref), width_height(wide)
    assert wh_w > 1.2 * wh_t                       # the driver really is another shape
    wh_o = width_height(out)
    assert abs(wh_o[0] - wh_t) < 0.01 * wh_t
    # as the jaw opens both faces get taller by the same relative amount
    assert np.allclose(wh_o / width_height(drv), wh_t / wh_w, rtol=0.03)
    assert np.all(np.abs(wh_o - wh_t) < np.abs(wh_o - 1.3 * wh_t))


def test_delta_expression_zero_keeps_the_target_mouth(ref, jaw_driver):
    _, drv = jaw_driver
    out = component("converter", "delta", expression=0).convert(convert_input(drv, ref, still=True))
    assert np.abs(g.mouth_opening(out) - g.mouth_opening(ref)).max() < 1e-4
    assert np.abs(out - ref).max() < 0.05      # the driver only moved its jaw: nothing moves


def test_delta_mouth_opens_from_closed_and_lips_never_cross(ref):
    """A driver whose reference frame has its lips parted, then shuts its mouth, then opens it
    wide: the target's lips meet (not through each other) and open as far as the driver's do,
    each lip keeping its thickness and the nose keeping still."""
    drv = np.stack([deform(ref, jaw=j) for j in (0.5, 0.0, 1.0)])
    out = component("converter", "delta").convert(convert_input(drv, ref, still=True))
    up, lo = list(g.LIPS_INNER_UPPER[1:-1]), list(g.LIPS_INNER_LOWER[1:-1])
    gap = lambda p: p[..., lo, 1] - p[..., up, 1]   # noqa: E731  facing inner-lip points, y down
    wide = gap(drv[2]).max()
    assert wide > gap(drv[0]).max() + 5 and wide > gap(ref).max() + 10   # it really opens
    assert (gap(out) > -0.02 * wide).all(), "the lips went through each other"
    np.testing.assert_allclose(gap(out[1]), gap(ref), atol=0.05 * wide)   # shut: the target's own
    np.testing.assert_allclose(gap(out[2]), gap(drv[2]), atol=0.1 * wide)  # as wide as the driver
    thick = lambda p: (p[..., g.MOUTH_TOP, 1] - p[..., 0, 1], p[..., 17, 1] - p[..., 14, 1])  # noqa
    for o, d in zip(thick(out[2]), thick(drv[2])):
        assert abs(o - d) < 0.15 * d
    assert np.abs(out[:, 1, :2] - drv[:, 1, :2]).max() < 0.05 * wide


@pytest.mark.parametrize("strength,moves", [(1.0, True), (0.0, False)])
def test_delta_pose_from_the_driver(ref, strength, moves):
    yaws = np.linspace(0.0, 0.3, 4)
    drv = np.stack([deform(ref, 0, 0, 0, y) for y in yaws])
    x = convert_input(drv, ref, still=False)   # a video target: pose_source must be explicit
    out = component("converter", "delta", pose_source="driver", pose=strength).convert(x)

    def nose_offset(p):   # nose tip relative to the face oval's centre, in face sizes
        return (p[..., 1, 0] - p[..., list(g.FACE_OVAL), 0].mean(-1)) / np.linalg.norm(
            p[..., 33, :2] - p[..., 263, :2], axis=-1)

    d_drv = nose_offset(drv) - nose_offset(drv[0])
    d_out = nose_offset(out) - nose_offset(out[0])
    assert abs(d_drv[-1]) > 0.15   # the driver turns its head
    if moves:
        assert np.sign(d_out[-1]) == np.sign(d_drv[-1])
        assert np.allclose(d_out, d_drv, atol=0.02)
    else:
        assert np.abs(d_out).max() < 0.005
        assert np.abs(out - ref).max() < 0.05


def test_delta_pose_source_auto(ref):
    """auto: a still target takes the driver's pose, a video target keeps its own."""
    drv = np.stack([deform(ref, 0, 0, 0, y) for y in (0.0, 0.3)])
    conv = component("converter", "delta")
    still = conv.convert(convert_input(drv, ref, still=True))
    video = conv.convert(convert_input(drv, ref, still=False))
    assert np.abs(still[1] - drv[1]).max() < 0.05
    assert np.abs(video[1] - ref).max() < 0.05


# ====================================================================== smoothers
SMOOTHERS = ["one_euro", "savgol"]


def jitter(p):
    return float(np.abs(np.diff(p[..., :2], 2, axis=0)).mean())


@pytest.fixture(scope="module")
def performance(ref):
    keys = {k: v for k, v in demo.PERFORMANCE.items() if k != "mode"}
    return keyframes.animate(ref, keyframes.Keyframes.parse(keys), np.arange(100) / 25.0
                            ).astype(np.float32)


@pytest.mark.parametrize("name", SMOOTHERS)
def test_smoother_removes_jitter(name, performance):
    clean = performance
    noisy = (clean + np.random.default_rng(0).normal(0, 0.8, clean.shape)).astype(np.float32)
    out = component("smoother", name).smooth(noisy, np.ones(len(noisy), bool), 25.0)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert jitter(out) < jitter(noisy) / 2, (jitter(out), jitter(noisy))
    # and it gets closer to the clean motion, not just flatter
    assert np.abs(out - clean).mean() < 0.8 * np.abs(noisy - clean).mean()


@pytest.mark.parametrize("name", SMOOTHERS)
def test_smoother_passes_linear_motion_without_lag(name, ref):
    t = np.arange(50)[:, None, None]
    lin = (ref[None] + t * np.array([4.0, 1.0, 0.0])).astype(np.float32)
    out = component("smoother", name).smooth(lin, np.ones(len(lin), bool), 25.0)
    motion = float(np.linalg.norm([4.0 * 49, 1.0 * 49]))
    err = np.linalg.norm(out[..., :2] - lin[..., :2], axis=-1)
    assert err.mean() < 0.01 * motion, err.mean()
    # no lag in the middle of the motion
    assert err[10:-10].mean() < 0.002 * motion


@pytest.mark.parametrize("name", SMOOTHERS)
def test_smoother_leaves_invalid_frames_and_smooths_runs_separately(name, performance):
    noisy = (performance[:60] + np.random.default_rng(1).normal(0, 0.8, performance[:60].shape)
             ).astype(np.float32)
    valid = np.ones(60, bool)
    valid[20:25] = False
    valid[40] = False
    valid[42] = False         # a one-frame run at 41
    noisy[~valid] = 5000.0    # garbage where there is no face
    sm = component("smoother", name)
    out = sm.smooth(noisy, valid, 25.0)
    assert out.shape == noisy.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[~valid], noisy[~valid])
    assert np.abs(out[valid]).max() < 1000, "garbage leaked into valid frames"
    for a, b in ((0, 20), (25, 40), (43, 60)):
        alone = sm.smooth(noisy[a:b], np.ones(b - a, bool), 25.0)
        np.testing.assert_allclose(out[a:b], alone, atol=1e-4)
        assert not np.allclose(out[a:b], noisy[a:b])     # it did smooth the run
    np.testing.assert_allclose(out[41], noisy[41], atol=1e-3)  # nothing to smooth a frame with


@pytest.mark.parametrize("name", SMOOTHERS)
def test_smoother_on_a_prefix_equals_the_whole_up_to_its_lookahead(name, performance):
    """What lets a render start before the driver is tracked to its end: smoothing the frames
    known so far (later ones not yet valid) gives frame t exactly as smoothing all of them does,
    once ``lookahead`` frames after t are known; and later frames do change frame t before that
    (the bound is real, not zero by accident)."""
    noisy = (performance + np.random.default_rng(3).normal(0, 0.8, performance.shape)
             ).astype(np.float32)
    valid = np.ones(len(noisy), bool)
    valid[30:34] = False
    sm = component("smoother", name)
    ahead = sm.lookahead(25.0)
    assert ahead is not None and 0 < ahead < 25
    full = sm.smooth(noisy, valid, 25.0)
    for known in (20, 45, 80):
        part = valid.copy()
        part[known:] = False
        got = sm.smooth(noisy, part, 25.0)
        np.testing.assert_array_equal(got[:known - ahead], full[:known - ahead])
    assert not np.array_equal(got[known - 1], full[known - 1])


def test_frame_by_frame_converter_on_a_prefix_equals_the_whole(ref, jaw_driver):
    _, drv = jaw_driver
    conv = component("converter", "delta")
    assert conv.lookahead == 0
    full = conv.convert(convert_input(drv, ref, still=True))
    part = conv.convert(convert_input(drv[:3], ref, still=True))
    np.testing.assert_array_equal(part, full[:3])


@pytest.mark.parametrize("name", SMOOTHERS)
def test_smoother_is_deterministic_and_does_not_modify_its_input(name, performance):
    x = (performance + np.random.default_rng(2).normal(0, 0.5, performance.shape)).astype(np.float32)
    before = x.copy()
    valid = np.ones(len(x), bool)
    valid[30:33] = False
    sm = component("smoother", name)
    a, b = sm.smooth(x, valid, 25.0), component("smoother", name).smooth(x, valid, 25.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)


# ====================================================================== generator meshwarp
def test_meshwarp_identity(crop):
    image, src, _ = crop
    out = component("generator", "meshwarp").generate(GenerateInput(image=image.copy(), src=src,
                                                                     dst=src.copy()))
    assert isinstance(out, GenerateOutput)
    assert out.image.shape == image.shape and out.image.dtype == np.uint8
    face = polygon(512, src[list(g.FACE_OVAL)])
    diff = np.abs(out.image.astype(float) - image.astype(float))
    assert diff[face].mean() < 1.5
    assert diff.mean() < 1.5


def test_meshwarp_moves_the_face(crop, tracker):
    image, src, _ = crop
    dst = src.copy()
    dst[:, 0] += 6.0
    out = component("generator", "meshwarp").generate(GenerateInput(image=image, src=src, dst=dst))
    before = tracker.detect_faces(image)[0]
    after = tracker.detect_faces(out.image)[0]
    dx, dy = np.median((after - before)[:468, :2], axis=0)
    assert abs(dx - 6.0) < 1.0 and abs(dy) < 1.0, (dx, dy)


def test_meshwarp_synthetic_mouth_is_dark(crop):
    image, src, _ = crop
    dst = deform(src, blink=0, smile=0, jaw=1, yaw=0)
    inner = polygon(512, dst[list(g.LIPS_INNER)], erode=1)
    assert inner.sum() > 500
    lum = lambda im: im.astype(float).mean(-1)[inner].mean()   # noqa: E731
    filled = component("generator", "meshwarp", mouth_fill="synthetic").generate(
        GenerateInput(image=image, src=src, dst=dst))
    unfilled = component("generator", "meshwarp", mouth_fill="none").generate(
        GenerateInput(image=image, src=src, dst=dst))
    assert lum(filled.image) < 0.6 * lum(image), (lum(filled.image), lum(image))
    assert lum(filled.image) < lum(unfilled.image) - 50
    # the mouth is filled, nothing else: away from the mouth both renders agree
    far = ~polygon(512, dst[list(g.LIPS_OUTER)])
    far = cv2.erode(far.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert np.array_equal(filled.image[far], unfilled.image[far])


def test_meshwarp_mask(crop):
    image, src, _ = crop
    dst = deform(src, blink=1, smile=0.5, jaw=0.5, yaw=0.1)
    out = component("generator", "meshwarp").generate(GenerateInput(image=image, src=src, dst=dst))
    m = out.mask
    assert m.shape == (512, 512) and m.dtype == np.float32
    assert m.min() >= 0.0 and m.max() <= 1.0
    assert m[0, 0] == m[0, -1] == m[-1, 0] == m[-1, -1] == 0.0
    face = polygon(512, src[list(g.FACE_OVAL)], erode=3)
    assert m[face].min() > 0.99      # the whole face is generated


# ====================================================================== mixer feather
def mix(mixer, frame, gen, sq):
    """(frame with the face pasted, full-frame matte) from a mixer, checking the result's form."""
    res = mixer.mix(frame.copy(), gen, sq)
    x0, y0, x1, y1 = res.box
    assert res.alpha.shape == (y1 - y0, x1 - x0) and res.alpha.dtype == np.float32
    return res.image, res.matte()


@pytest.fixture(scope="module")
def mix_case(astronaut, crop):
    image, src, sq = crop
    out = component("generator", "meshwarp").generate(GenerateInput(image=image, src=src,
                                                                     dst=src.copy()))
    generated = GenerateOutput(image=(255 - image).copy(), mask=out.mask)   # clearly different
    return astronaut.copy(), generated, sq


def test_feather_leaves_unmasked_pixels_untouched(mix_case):
    frame, gen, sq = mix_case
    before = frame.copy()
    result, matte = mix(component("mixer", "feather"), frame, gen, sq)
    np.testing.assert_array_equal(frame, before)
    assert result.shape == frame.shape and result.dtype == np.uint8
    assert matte.shape == frame.shape[:2] and matte.dtype == np.float32
    zero = matte == 0
    assert 0.2 < zero.mean() < 0.98
    assert np.array_equal(result[zero], frame[zero])
    assert np.abs(result[~zero].astype(int) - frame[~zero]).mean() > 20   # the face did change


def test_feather_matte_is_exactly_within_0_and_1(mix_case):
    frame, gen, sq = mix_case
    _, matte = mix(component("mixer", "feather"), frame, gen, sq)
    assert matte.min() >= 0.0 and matte.max() <= 1.0, (matte.min(), matte.max())


def test_feather_inside_the_mask_is_the_generated_face(mix_case):
    frame, gen, sq = mix_case
    result, matte = mix(component("mixer", "feather", color_match=0), frame, gen, sq)
    expected = cv2.warpAffine(gen.image, sq.inverse, (frame.shape[1], frame.shape[0]),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = matte >= 0.999
    assert inside.sum() > 2000
    d = np.abs(result[inside].astype(int) - expected[inside])
    assert d.max() <= 2 and d.mean() < 0.5
    # in between, a blend of the two
    edge = (matte > 0.2) & (matte < 0.8)
    assert edge.sum() > 100
    blend = matte[edge, None] * expected[edge] + (1 - matte[edge, None]) * frame[edge]
    assert np.abs(result[edge] - blend).max() <= 2


def test_feather_touches_nothing_outside_the_crop(mix_case):
    frame, gen, sq = mix_case
    # the same crop moved half off the frame's left edge
    moved = SquareCrop(-sq.side // 2, sq.y0, sq.side, sq.size)
    result, matte = mix(component("mixer", "feather"), frame, gen, moved)
    outside = np.ones(frame.shape[:2], bool)
    x0, y0, x1, y1 = moved.box(frame.shape[1], frame.shape[0])
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(result[outside], frame[outside])
    assert (matte[outside] == 0).all()
    assert (result[~outside] != frame[~outside]).any()


# ====================================================================== the demo
def test_demo_performance_is_visible_in_the_render(astronaut_png, tracker):
    keys = keyframes.Keyframes.parse({k: v for k, v in demo.PERFORMANCE.items() if k != "mode"})
    times = np.arange(int(keys.duration() * 25) + 1) / 25.0
    c = keys.at(times)
    blink = np.maximum(c["blink_left"], c["blink_right"])
    quiet = lambda *names: np.prod([np.abs(c[n]) < 1e-3 for n in names], axis=0)  # noqa: E731
    rest = quiet("smile", "jaw_open", "yaw", "pitch", "brow_raise") * (blink < 1e-3)
    t_jaw = int(np.argmax(c["jaw_open"] * (blink < 1e-3) * quiet("yaw", "pitch", "smile")))
    t_blink = int(np.argmax(blink * quiet("smile", "jaw_open", "yaw", "pitch", "brow_raise")))
    t_smile = int(np.argmax(c["smile"] * (blink < 1e-3) * quiet("jaw_open", "yaw")))
    assert c["jaw_open"][t_jaw] > 0.3 and blink[t_blink] > 0.5 and c["smile"][t_smile] > 0.8
    assert rest[0]

    with Effect(controls=demo.PERFORMANCE) as fx:
        a = fx.analyze(str(astronaut_png))
        assert a.frame_count == len(times) and a.active.all()
        pts, frames = {}, {}
        for t in (0, t_jaw, t_blink, t_smile):
            frames[t] = fx.render_frame(t)
            assert frames[t].shape == (512, 512, 3) and frames[t].dtype == np.uint8
            faces = tracker.detect_faces(frames[t])
            assert len(faces) == 1, f"no face re-tracked in frame {t}"
            pts[t] = faces[0]
        again = fx.render_frame(t_jaw)          # frames render alone, in any order, identically
    assert np.array_equal(again, frames[t_jaw])

    def corners(p):
        return np.linalg.norm(p[61, :2] - p[291, :2]) / g.face_size(p)

    p0 = pts[0]
    assert g.mouth_opening(pts[t_jaw]) > g.mouth_opening(p0) + 0.08, \
        (g.mouth_opening(pts[t_jaw]), g.mouth_opening(p0))
    assert g.eye_opening(pts[t_blink]) < 0.9 * g.eye_opening(p0), \
        (g.eye_opening(pts[t_blink]), g.eye_opening(p0))
    assert corners(pts[t_smile]) > corners(p0) + 0.05, (corners(pts[t_smile]), corners(p0))
