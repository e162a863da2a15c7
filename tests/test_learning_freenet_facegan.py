"""The learned converters freenet.ulc and facegan.lt: training, export, shipped weights, identity
keeping on a real cross-identity pair, expression editing, rendering end to end, bad weights."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cut_clip

from reenact_fx.face import controls
from reenact_fx.face import geometry as g
from reenact_fx.components import ConvertInput
from reenact_fx.pipeline.effect import Effect
from reenact_fx.errors import ReenactError
from reenact_fx.face import canonical
from reenact_fx.learning import dataset, runtime
from reenact_fx.pipeline.registry import default_registry

METHODS = ["freenet.ulc", "facegan.lt"]
OVAL = list(g.FACE_OVAL)


def converter(name, **params):
    return default_registry().get("converter", name)(params)


@pytest.fixture(scope="module")
def tracks(s9_d0_tracks):
    """s9 (a portrait, the target) and d0 (another person talking, the driver)."""
    return s9_d0_tracks


def still_input(target, driver) -> ConvertInput:
    n = len(driver)
    return ConvertInput(driver=driver, driver_valid=np.ones(n, bool), driver_ref=driver[0],
                        target=np.repeat(target[None], n, 0), target_valid=np.ones(n, bool),
                        target_ref=target, target_is_still=True, fps=25.0)


@pytest.mark.parametrize("name", METHODS)
def test_shipped_weights_keep_the_target_contour_on_a_cross_identity_pair(tracks, name):
    target, driver = tracks[0].points[0], tracks[1].points[:40]
    out = converter(name).convert(still_input(target, driver))
    assert out.shape == driver.shape and out.dtype == np.float32 and np.isfinite(out).all()
    t_oval = canonical.normalize(target)[0][OVAL]
    dist = lambda p: np.linalg.norm(canonical.normalize(p)[0][:, OVAL] - t_oval, axis=-1).mean()  # noqa: E731
    assert dist(out) < 0.6 * dist(driver), (dist(out), dist(driver))
    # and it carries the driver's mouth motion
    jaw_d = controls.measure(driver, driver[0])["jaw_open"]
    jaw_o = controls.measure(out, target)["jaw_open"]
    assert np.ptp(jaw_d) > 0.2
    assert np.corrcoef(jaw_d, jaw_o)[0, 1] > 0.8


def test_facegan_edits_expressions_through_its_au_input(tracks):
    target, driver = tracks[0].points[0], tracks[1].points[:10]
    x = still_input(target, driver)
    plain = converter("facegan.lt").convert(x)
    smiling = converter("facegan.lt", smile=0.8).convert(x)
    gain = controls.measure(smiling, target)["smile"] - controls.measure(plain, target)["smile"]
    assert gain.mean() > 0.3, gain


@pytest.mark.parametrize("name", METHODS)
def test_missing_and_corrupt_weights_name_file_and_key(tracks, tmp_path, name):
    x = still_input(tracks[0].points[0], tracks[1].points[:3])
    with pytest.raises(ReenactError, match="not found") as e:
        converter(name, weights=str(tmp_path / "nope.onnx")).convert(x)
    assert "nope.onnx" in str(e.value) and f"{name}.weights" in str(e.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    with pytest.raises(ReenactError, match="ONNX") as e:
        converter(name, weights=str(bad)).convert(x)
    assert "bad.onnx" in str(e.value) and f"{name}.weights" in str(e.value)
    other = {"freenet.ulc": ("facegan", "lt.onnx"), "facegan.lt": ("freenet", "ulc.onnx")}[name]
    wrong = runtime.shipped(f"reenact_fx_plugins.{other[0]}", other[1])   # the other's weights
    with pytest.raises(ReenactError, match="do not fit") as e:
        converter(name, weights=wrong).convert(x)
    assert f"{name}.weights" in str(e.value)


@pytest.fixture(scope="module")
def short_driver(faces, tmp_path_factory):
    """Frames 10-29 of d0 as their own clip (closed mouth, then opening)."""
    return cut_clip(faces / "driving/d0.mp4", tmp_path_factory.mktemp("short") / "d0-20.mp4", 10, 30,
                    size=(512, 512))


@pytest.mark.parametrize("name", METHODS)
def test_render_end_to_end(faces, short_driver, tmp_path, name):
    from conftest import read_video

    with Effect(converter=name, params={"output": {"audio": "none"}}) as fx:
        a = fx.analyze(str(faces / "source/s9.jpg"), str(short_driver))
        path = fx.render(str(tmp_path / "out.mp4"))
        frames = read_video(path)
        assert len(frames) == a.frame_count == 20
        assert frames[0].shape == (1280, 720, 3)
        # the target opens its mouth with the driver
        mo_d, mo_o = g.mouth_opening(a.driver_points), g.mouth_opening(a.dst)
        assert np.ptp(mo_d) > 0.15 and np.ptp(mo_o) > 0.3 * np.ptp(mo_d)
        assert np.corrcoef(mo_d, mo_o)[0, 1] > 0.8
        # and the rendered pixels change around the mouth, not elsewhere
        box = a.dst[-1, list(g.LIPS_OUTER), :2]
        (x0, y0), (x1, y1) = box.min(0).astype(int) - 10, box.max(0).astype(int) + 10
        moved = np.abs(frames[-1].astype(int) - frames[0].astype(int))
        assert moved[y0:y1, x0:x1].mean() > 5 * moved[:200].mean()


# ------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def small_data(small_dataset):
    return small_dataset


def _run(mod, name, ck, batch, names):
    """The checkpoint's model on a batch of pairs (torch)."""
    import torch

    model = mod.load(ck)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))   # noqa: E731
    with torch.no_grad():
        if name == "freenet.ulc":
            return model(t(batch.target_ref), t(batch.driver), t(batch.driver_ref)).numpy()
        from reenact_fx_plugins.facegan.aus import from_controls

        aus, pose = from_controls(batch.controls, names)
        return model(t(batch.target_ref), t(aus), t(pose)).numpy()


@pytest.mark.parametrize("name", METHODS)
def test_training_loss_falls_and_onnx_agrees_with_torch(small_data, tmp_path, name):
    torch = pytest.importorskip("torch")
    from reenact_fx.learning.pairs import PairSampler

    mod = default_registry().get("converter", name).training()
    start = mod.train(str(small_data), str(tmp_path / "start"), steps=0, seed=0)
    ck = mod.train(str(small_data), str(tmp_path / "run"), steps=150, seed=0)
    hist = torch.load(ck, weights_only=True)["history"]
    assert len(hist["l1"]) == 150 and np.isfinite(hist["l1"]).all() and (tmp_path / "run" / "losses.png").is_file()
    # the error on fixed pairs with a known truth (same-person and synthetic-identity) falls
    ds = dataset.LandmarkDataset.load(small_data)
    batch = PairSampler(ds, np.random.default_rng(7), mix=(0.3, 0.7, 0.0)).batch(128)
    err = {k: np.abs(_run(mod, name, c, batch, ds.control_names) - batch.truth).mean()
           for k, c in (("start", start), ("trained", ck))}
    # (freenet.ulc starts from the driver's own motion, a residual shift, so it starts close)
    assert err["trained"] < 0.95 * err["start"], err

    # torch and onnxruntime agree on real inputs
    onnx_path = mod.export(ck, str(tmp_path / "m.onnx"))
    sess = converter(name, weights=onnx_path).session()
    want = _run(mod, name, ck, batch, ds.control_names)
    if name == "freenet.ulc":
        feed = {"target_ref": batch.target_ref, "driver": batch.driver,
                "driver_ref": batch.driver_ref}
    else:
        from reenact_fx_plugins.facegan.aus import from_controls

        aus, pose = from_controls(batch.controls, ds.control_names)
        feed = {"target_ref": batch.target_ref, "aus": aus, "pose": pose}
    got = sess.run(["landmarks"], feed)[0]
    assert np.abs(got - want).max() < 1e-3       # float16-stored weights, float32 compute
    assert np.abs(got - batch.target_ref).max() > 1e-2   # and the model does something


@pytest.mark.parametrize("name", METHODS)
def test_training_needs_motion_and_a_checkpoint_to_resume(faces, tmp_path, name):
    pytest.importorskip("torch")
    mod = default_registry().get("converter", name).training()
    stills = dataset.build([faces / "source/s2.jpg", faces / "source/s9.jpg"], tmp_path / "st.npz",
                           val_fraction=0.0)
    assert len(stills) == 2
    with pytest.raises(ReenactError, match="no clip with more than one") as e:
        mod.train(str(tmp_path / "st.npz"), str(tmp_path / "run"), steps=5)
    assert "st.npz" in str(e.value)
