"""The shared learning infrastructure: canonical frame, pose placement, landmark datasets, ONNX
runtime checks, the torch training loop / export and the dataset/train/export commands."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from reenact_fx.face import controls
from reenact_fx.face import geometry as g
from reenact_fx.cli import main
from reenact_fx.components import ConvertInput
from reenact_fx.pipeline.effect import Effect
from reenact_fx.errors import ReenactError
from reenact_fx.face import canonical, posing
from reenact_fx.learning import dataset, runtime


@pytest.fixture(scope="module")
def face(astronaut_png):
    with Effect() as fx:
        return fx.track(str(astronaut_png)).points[0].astype(np.float64)


def similar(points, angle=0.3, scale=1.7, shift=(40.0, -25.0, 8.0)):
    """A 3-D similarity of the points (a turned, scaled, moved head)."""
    r = g.rotvec_to_matrix(np.array([0.1, angle, -0.2]))
    return scale * points @ r.T + np.asarray(shift)


# ---------------------------------------------------------------------------------- canonical
def test_canonical_frame_is_unit_eye_distance_and_pose_free(face):
    shape, sim = canonical.normalize(face)
    assert shape.shape == (478, 3) and sim.shape == (3, 4)
    assert abs(canonical.eye_distance(shape) - 1.0) < 0.08          # unit: eye-corner distance
    assert np.abs(shape[list(g.RIGID)].mean(0)).max() < 1e-5         # centred on the rigid points
    assert shape[263, 0] > shape[33, 0] and shape[152, 1] > shape[10, 1]   # x right, y down
    moved = similar(face)
    assert np.abs(canonical.normalize(moved)[0] - shape).max() < 1e-4
    batch, sims = canonical.normalize(np.stack([face, moved]))
    assert np.abs(canonical.denormalize(batch, sims) - np.stack([face, moved])).max() < 1e-3


def test_canonical_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="478"):
        canonical.normalize(np.zeros((5, 3)))


# ---------------------------------------------------------------------------------- posing
def x_for(target, driver, still):
    n = len(driver)
    return ConvertInput(driver=driver, driver_valid=np.ones(n, bool), driver_ref=driver[0],
                        target=np.repeat(target[None], n, 0) if target.ndim == 2 else target,
                        target_valid=np.ones(n, bool),
                        target_ref=target if target.ndim == 2 else target[0],
                        target_is_still=still, fps=25.0)


def test_posing_target_source_gives_the_target_back(face):
    video = np.stack([similar(face, a, 1 + a, (10 * a, 0, 0)) for a in (0.0, 0.1, 0.2)])
    shapes = canonical.normalize(video)[0]
    out = posing.place(shapes, x_for(video, video, still=False), pose_source="auto")
    assert np.abs(out - video).max() < 1e-2


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_posing_driver_source_moves_the_target_by_the_drivers_relative_motion(face, strength):
    driver = np.stack([similar(face, a, 1.0, (30 * a, 5 * a, 0)) for a in (0.0, 0.15, 0.3)])
    target = similar(face, 0.0, 0.6, (100.0, 50.0, 0.0))      # another placement of the face
    shapes = np.repeat(canonical.normalize(target)[0][None], 3, 0)
    out = posing.place(shapes, x_for(target, driver, still=True), pose=strength)
    assert np.abs(out[0] - target).max() < 1e-2                 # the reference frame stays put
    # the result turns as the driver does (strength 1) or not at all (strength 0)
    turn = lambda p: controls.measure(p, p[0])["yaw"]     # noqa: E731
    assert np.allclose(turn(out), strength * turn(driver), atol=0.5)


# ---------------------------------------------------------------------------------- dataset
@pytest.fixture(scope="module")
def small(faces, tmp_path_factory):
    """d0 (a talking head) and d12, s9 (a portrait) and s22 (a monkey: skipped)."""
    out = tmp_path_factory.mktemp("ds") / "small.npz"
    ds = dataset.build([faces / "driving/d0.mp4", faces / "driving/d12.mp4",
                        faces / "source/s9.jpg", faces / "source/s22.jpg"], out, val_fraction=0.34)
    return out, ds


def test_dataset_build_tracks_labels_and_splits_by_identity(small):
    path, ds = small
    assert ds.identities == ["d0", "d12", "s9"] and len(ds.clips) == 3
    assert any("s22.jpg" in n and "human" in n for n in ds.notes)      # skipped, with the reason
    n = len(ds)
    assert 250 < n <= 78 + 183 + 1
    assert ds.points.shape == ds.shapes.shape == (n, 478, 3) and ds.controls.shape == (n, 12)
    assert ds.pose.shape == (n, 3) and ds.points.dtype == np.float32
    for c in range(3):
        rows = ds.clip_rows(c)
        assert np.all(np.diff(ds.time[rows]) > 0)
        assert np.abs(ds.controls[rows[0]]).max() < 1e-3                 # relative to its first frame
    assert np.allclose(np.abs(canonical.eye_distance(ds.shapes)).mean(), 1.0, atol=0.1)
    assert set(ds.split.values()) == {"train", "val"}
    train, val = ds.subset("train"), ds.subset("val")
    assert len(train) + len(val) == n
    assert not set(train.identity) & set(val.identity)                   # no person in both
    # the stored values are what the library measures
    r = ds.clip_rows(0)
    assert np.allclose(ds.controls[r[5], 4], controls.measure(ds.points[r[5]], ds.points[r[0]])
                       ["jaw_open"], atol=1e-4)


def test_dataset_round_trip_and_clear_errors(small, tmp_path):
    path, ds = small
    back = dataset.LandmarkDataset.load(path)
    assert back.identities == ds.identities and back.split == ds.split
    assert np.array_equal(back.points, ds.points) and np.array_equal(back.time, ds.time)
    with pytest.raises(ReenactError, match="no such landmark dataset") as e:
        dataset.LandmarkDataset.load(tmp_path / "none.npz")
    assert "none.npz" in str(e.value)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ReenactError, match="not a readable landmark dataset") as e:
        dataset.LandmarkDataset.load(bad)
    assert "bad.npz" in str(e.value)
    newer = tmp_path / "newer.npz"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(newer, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "meta.npy":
                meta = json.loads(str(np.load(path)["meta"]))
                meta["version"] = 99
                tmp = tmp_path / "meta.npy"
                np.save(tmp, np.array(json.dumps(meta)))
                data = tmp.read_bytes()
            zout.writestr(item, data)
    with pytest.raises(ReenactError, match="version 99 is newer"):
        dataset.LandmarkDataset.load(newer)


def test_manifest_groups_files_into_one_identity(faces, tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text(f"identities:\n  dee: [{faces / 'driving/d0.mp4'}, {faces / 'driving/d12.mp4'}]\n")
    ds = dataset.build([faces / "source/s9.jpg"], manifest=str(m), val_fraction=0.5)
    assert sorted(ds.identities) == ["dee", "s9"] and len(ds.clips) == 3
    dee = ds.identities.index("dee")
    assert len(np.unique(ds.clip[ds.identity == dee])) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("identities: [a, b]\n")
    with pytest.raises(ReenactError, match="identities") as e:
        dataset.build([], manifest=str(bad))
    assert "bad.yaml" in str(e.value)


def test_synthetic_identity_changes_the_face_not_the_expression(small):
    _, ds = small
    rows = ds.clip_rows(0)
    real = ds.shapes[rows]
    syn = dataset.synthetic_identity(real, np.random.default_rng(3))
    again = dataset.synthetic_identity(real, np.random.default_rng(3))
    assert np.array_equal(syn, again)                                     # same rng, same person
    oval = list(g.FACE_OVAL)
    shape_change = np.linalg.norm(syn[0, oval] - real[0, oval], axis=-1).mean()
    assert shape_change > 0.02                                            # another face shape
    motion_real = real - real[0]
    motion_syn = syn - syn[0]
    big = np.linalg.norm(motion_real, axis=-1).max(1) > 0.03
    err = np.linalg.norm(motion_syn - motion_real, axis=-1).mean(1)[big]
    assert (err < 0.3 * np.linalg.norm(motion_real, axis=-1).mean(1)[big]).all()  # same expression


# ---------------------------------------------------------------------------------- runtime
def test_runtime_errors_name_the_file_and_the_key(tmp_path):
    with pytest.raises(ReenactError, match="not found") as e:
        runtime.load_session(tmp_path / "x.onnx", owner="freenet.ulc")
    assert "x.onnx" in str(e.value) and "freenet.ulc.weights" in str(e.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ReenactError, match="not readable as ONNX") as e:
        runtime.load_session(junk, owner="facegan.lt")
    assert "facegan.lt.weights" in str(e.value)


# ---------------------------------------------------------------------------------- torchkit
def test_export_checks_names_shapes_and_agreement(tmp_path):
    torch = pytest.importorskip("torch")
    from reenact_fx.learning import torchkit

    net = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))
    path = torchkit.export_onnx(net, (torch.randn(1, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    sess = runtime.load_session(path, owner="t.c", inputs={"x": (None, 12)},
                                outputs={"y": (None, 6)})
    x = np.random.default_rng(0).normal(size=(7, 12)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert np.abs(sess.run(["y"], {"x": x})[0] - want).max() < 1e-5      # any batch size
    with pytest.raises(ReenactError, match="do not fit") as e:
        runtime.load_session(path, owner="t.c", inputs={"x": (None, 13)})
    assert "t.c.weights" in str(e.value) and "m.onnx" in str(e.value)
    with pytest.raises(ReenactError, match="do not fit"):
        runtime.load_session(path, owner="t.c", inputs={"points": (None, 12)})

    # opened once per process: the next analysis gets the same session, a new file a new one
    again = runtime.load_session(path, owner="t.c", inputs={"x": (None, 12)},
                                 outputs={"y": (None, 6)})
    assert again is sess
    other = torch.nn.Sequential(torch.nn.Linear(12, 6))
    torchkit.export_onnx(other, (torch.randn(1, 12),), tmp_path / "m.onnx", ["x"], ["y"])
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 10**9))   # however coarse the clock
    fresh = runtime.load_session(path, owner="t.c", inputs={"x": (None, 12)},
                                 outputs={"y": (None, 6)})
    with torch.no_grad():
        want = other(torch.from_numpy(x)).numpy()
    assert fresh is not sess and np.abs(fresh.run(["y"], {"x": x})[0] - want).max() < 1e-5


def test_trainer_checkpoints_resume_and_plots(tmp_path):
    torch = pytest.importorskip("torch")
    from reenact_fx.learning import torchkit

    def make():
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 1)
        return net, torch.optim.Adam(net.parameters(), 0.05)

    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def steps(net, opt):
        def step(i):
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"mse": loss.item()}
        return step

    net, opt = make()
    t = torchkit.Trainer("toy", tmp_path / "a", modules={"net": net}, optimizers={"o": opt},
                         steps=40, seed=1)
    full = t.run(steps(net, opt))
    h = torchkit.load_checkpoint(full)["history"]["mse"]
    assert len(h) == 40 and h[-1] < 0.2 * h[0]
    assert (tmp_path / "a" / "losses.png").stat().st_size > 1000
    # 20 steps, then resume to 40: the same weights as 40 in one go
    net2, opt2 = make()
    torchkit.Trainer("toy", tmp_path / "b", modules={"net": net2}, optimizers={"o": opt2},
                     steps=20, seed=1).run(steps(net2, opt2))
    net3, opt3 = make()
    t3 = torchkit.Trainer("toy", tmp_path / "b", modules={"net": net3}, optimizers={"o": opt3},
                          steps=40, seed=1)
    assert t3.resume() and t3.step == 20
    t3.run(steps(net3, opt3))
    assert torch.allclose(net3.weight, net.weight, atol=1e-6)
    with pytest.raises(ReenactError, match="'toy', not 'other'"):
        torchkit.load_checkpoint(full, method="other")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ReenactError, match="checkpoint") as e:
        torchkit.load_checkpoint(tmp_path / "junk.pt")
    assert "junk.pt" in str(e.value)


def test_resume_needs_a_checkpoint_of_the_same_dataset(tmp_path):
    torch = pytest.importorskip("torch")
    from reenact_fx.learning import torchkit

    def trainer(n_ids):
        net = torch.nn.Linear(2, 1)
        return torchkit.Trainer("toy", tmp_path, modules={"net": net},
                                optimizers={"o": torch.optim.SGD(net.parameters(), 0.1)},
                                steps=2, seed=0, config={"n_ids": n_ids})

    with pytest.raises(ReenactError, match="no checkpoint") as e:
        trainer(3).resume(required=True)
    assert str(tmp_path) in str(e.value)
    assert trainer(3).resume() is False              # not required: a fresh start
    trainer(3).run(lambda i: {"loss": 1.0 / (i + 1)})
    assert trainer(3).resume(required=True, match=("n_ids",))
    with pytest.raises(ReenactError, match="another dataset.*n_ids 3, this one 5"):
        trainer(5).resume(required=True, match=("n_ids",))


# ---------------------------------------------------------------------------------- CLI
def test_cli_dataset_build_and_show(faces, tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert main(["dataset", "build", str(faces / "driving/d0.mp4"), str(faces / "source/s9.jpg"),
                 "-o", str(out), "-q"]) == 0
    assert out.is_file()
    assert main(["dataset", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 clips, 2 identities" in text and "d0" in text and "s9" in text
    assert main(["dataset", "show", str(tmp_path / "none.npz")]) == 2
    assert "none.npz" in capsys.readouterr().err


def test_cli_train_refuses_unknown_and_unlearned_components(tmp_path, capsys):
    assert main(["train", "freenet.ucl", "--data", "x.npz", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'freenet.ulc'" in err
    assert main(["train", "delta", "--data", "x.npz", "--out", str(tmp_path)]) == 2
    assert "not a learned component" in capsys.readouterr().err


def test_cli_train_without_torch_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)   # import torch -> ImportError
    assert main(["train", "freenet.ulc", "--data", "x.npz", "--out", str(tmp_path)]) == 2
    assert 'pip install ".[train]"' in capsys.readouterr().err
