"""The learned image components freenet.gag, facegan.reenactor and facegan.bgmix: face crops,
landmark pictures, pseudo-labels, image datasets and pairs, training (loss falls, resume exact,
ONNX agrees with torch), a person-specific fine-tune, bad weights, rendering end to end."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cut_clip

from reenact_fx.cli import main
from reenact_fx.components import GenerateInput, GenerateOutput
from reenact_fx.errors import ReenactError
from reenact_fx.evaluation import selfreenact
from reenact_fx.face import geometry as g
from reenact_fx.face.crop import SquareCrop
from reenact_fx.learning import facecrops, labels
from reenact_fx.learning.image_data import ImageDataset, ImagePairs, build_images, cached_images
from reenact_fx.pipeline.effect import Effect
from reenact_fx.pipeline.registry import default_registry

GENERATORS = ["freenet.gag", "facegan.reenactor"]
TRAINED = ["freenet.gag", "facegan.reenactor", "facegan.bgmix"]
TINY = {"width": 4, "d_width": 8, "val_every": 8, "val_frames": 4, "batch": 2}


def component(name, **params):
    reg = default_registry()
    kind = "mixer" if name == "facegan.bgmix" else "generator"
    return reg.get(kind, name)(params)


def training(name):
    return type(component(name)).training()


@pytest.fixture(scope="module")
def clip(faces, tmp_path_factory):
    """The first 40 frames of d3 as their own clip (a talking head)."""
    return cut_clip(faces / "driving/d3.mp4", tmp_path_factory.mktemp("clip") / "d3-40.mp4", 0, 40)


@pytest.fixture(scope="module")
def images(clip, tmp_path_factory) -> str:
    """That clip's image dataset at 64 px (its last 8 frames held out)."""
    path = tmp_path_factory.mktemp("images") / "d3.npz"
    build_images([str(clip)], size=64, max_frames=40).save(str(path))
    return str(path)


# -------------------------------------------------------------------------------- core machinery

def test_canonical_crop_landmark_image_heatmap_and_labels(astronaut_png):
    from reenact_fx.media import MediaReader

    with Effect() as fx:
        pts = fx.track(str(astronaut_png)).points[0]
    with MediaReader(str(astronaut_png)) as r:
        rgb = r.frame_at(0)
    for size in (64, 128, 256):
        a = facecrops.alignment(pts, size)
        crop = facecrops.cut(rgb, a, size)
        assert crop.shape == (size, size, 3)
        p = g.transform_points(a, pts)
        # the eyes land where the template puts them, whatever the size
        eyes = p[[33, 263], :2] / size
        assert np.abs(eyes[:, 1] - eyes[:, 1].mean()).max() < 0.02
        assert 0.25 < eyes[1, 0] - eyes[0, 0] < 0.5 and 0.25 < eyes[:, 1].mean() < 0.45
    p = g.transform_points(facecrops.alignment(pts, 128), pts)
    lm = facecrops.landmark_image(p, 128)
    assert lm.shape == (64, 64) and lm.max() == pytest.approx(1.0, abs=0.05)
    assert 0.03 < (lm > 0.3).mean() < 0.3            # lines, not a filled face
    hm = facecrops.heatmap(p, 128)
    assert hm.shape == (128, 128) and hm.max() <= 1.0
    x, y = np.round(p[1, :2]).astype(int)               # the nose tip is on a peak
    assert hm[y, x] > 0.5 and hm[5, 5] == 0
    crop = facecrops.cut(rgb, facecrops.alignment(pts, 128), 128)
    seg = labels.PersonSegmenter()
    try:
        lab = labels.pseudo_labels(crop, p, seg)
    finally:
        seg.close()
    oval = facecrops.face_mask(p, 128) > 0.5
    assert (lab[oval] == labels.FACE).mean() > 0.99
    top = lab[: int(p[10, 1]), :]                        # above the forehead: her hair, some sky
    assert (top == labels.HAIR).mean() > 0.1
    assert (lab == labels.BACKGROUND).mean() > 0.1


def test_image_dataset_pairs_and_cache(images, clip, tmp_path):
    ds = ImageDataset.load(images)
    assert ds.size == 64 and len(ds) == 40 and ds.val.sum() == 8
    assert ds.val[-8:].all()                             # the clip's last frames are held out
    pairs = ImagePairs(ds, "val", np.random.default_rng(0))
    b = pairs.batch(3)
    assert b.truth.shape == (3, 64, 64, 3) and b.points.shape == (3, 478, 3)
    assert not np.isin(b.ref_points, ds.points[ds.val]).all()   # references from training frames
    # the truth moved into the reference's crop, pixels and landmarks together: aligning it by
    # its moved landmarks gives its own crop back
    rows = pairs.rows(1)
    one = pairs.batch(1, rows)
    t = rows[0][1]
    back = facecrops.cut(one.truth[0], facecrops.alignment(one.points[0], 64), 64)
    assert np.abs(back[16:48, 16:48].astype(int) - ds.crops[t][16:48, 16:48]).mean() < 8
    # a build is cached beside the run and reused while its inputs are unchanged
    first = cached_images(str(clip), str(tmp_path), size=64, max_frames=6)
    again = cached_images(str(clip), str(tmp_path), size=64, max_frames=6)
    assert first.key == again.key and (tmp_path / "images-64.npz").is_file()
    with pytest.raises(ReenactError, match="no such image dataset") as e:
        ImageDataset.load(str(tmp_path / "none.npz"))
    assert "none.npz" in str(e.value)


# ------------------------------------------------------------------------------------ training

@pytest.mark.parametrize("name", TRAINED)
def test_training_loss_falls_resume_is_exact_and_onnx_agrees(images, tmp_path, name):
    import torch

    mod = training(name)
    cfg = dict(TINY, lr=1e-3)
    long = mod.train(images, str(tmp_path / "long"), steps=16, config=cfg)
    ck = torch.load(str(tmp_path / "long" / "checkpoint.pt"), weights_only=True)
    first = next(k for k in ck["history"] if not k.startswith("val_"))
    hist = np.array(ck["history"][first])
    assert hist[-4:].mean() < 0.85 * hist[:4].mean(), (first, hist[:4], hist[-4:])
    assert (tmp_path / "long" / "losses.png").is_file() and (tmp_path / "long" / "preview.png").is_file()
    # 8 steps, then resumed to 16: the same weights as 16 at once
    mod.train(images, str(tmp_path / "split"), steps=8, config=cfg)
    mod.train(images, str(tmp_path / "split"), steps=16, config=cfg, resume=True)
    a = ck["modules"]
    b = torch.load(str(tmp_path / "split" / "checkpoint.pt"), weights_only=True)["modules"]
    for m in a:
        for k in a[m]:
            assert torch.equal(a[m][k], b[m][k]), (m, k)
    # export checks onnxruntime against torch itself; the component runs it and agrees too
    onnx = mod.export(long, str(tmp_path / "w.onnx"))
    model, size = mod.load(long)
    comp = component(name, weights=onnx)
    sess = comp.session()
    feeds = {i.name: np.random.default_rng(1).uniform(0, 1, [1] + list(i.shape[1:]))
             .astype(np.float32) for i in sess.get_inputs()}
    with torch.no_grad():
        want = model(*[torch.from_numpy(feeds[i.name]) for i in sess.get_inputs()])
    got = sess.run(None, feeds)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    for w, o in zip(want, got):
        assert np.abs(w.numpy() - o).max() < 0.02


def test_person_specific_finetune_improves_heldout_ssim(images, tmp_path):
    """A fine-tune on the clip's first frames reenacts its held-out frames better than the
    untrained network (self-reenactment SSIM through onnxruntime)."""
    mod = training("freenet.gag")
    cfg = dict(TINY, width=8, lr=1e-3, batch=4)
    untrained = mod.train(images, str(tmp_path / "u"), steps=0, config=cfg)
    tuned = mod.train(images, str(tmp_path / "t"), steps=60, config=cfg)
    ds = ImageDataset.load(images)
    score = {}
    for tag, ck in (("untrained", untrained), ("tuned", tuned)):
        onnx = mod.export(ck, str(tmp_path / f"{tag}.onnx"))
        score[tag] = selfreenact.heldout(component("freenet.gag", weights=onnx), ds)
    assert score["tuned"]["ssim"] > score["untrained"]["ssim"] + 0.05, score
    assert score["tuned"]["mae"] < score["untrained"]["mae"], score


def test_cli_trains_with_progress_loss_plot_and_previews(clip, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "freenet.gag", "--data", str(clip), "--out", str(out), "--steps", "6",
               "--size", "64", "--max-frames", "12", "--config", "width=4", "--config",
               "val_every=3", "--config", "val_frames=2"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "steps/s" in err and "ETA" in err and "pix " in err
    assert (out / "losses.png").is_file() and (out / "images-64.npz").is_file()
    assert sorted(p.name for p in (out / "previews").iterdir()) == ["step-000003.png",
                                                                     "step-000006.png"]
    assert main(["train", "freenet.gag", "--data", str(clip), "--out", str(out), "--size", "64",
                 "--force", "--config", "widht=4"]) == 2
    assert "unknown training setting 'widht'" in capsys.readouterr().err
    assert main(["train", "freenet.ulc", "--data", str(clip), "--out", str(out), "--force",
                 "--size", "64"]) == 2
    assert "takes no --size" in capsys.readouterr().err


# ------------------------------------------------------------------------------ shipped weights

def _input(ds: ImageDataset):
    b = ImagePairs(ds, "val", np.random.default_rng(0)).fixed(1)
    return GenerateInput(image=b.ref[0], src=b.ref_points[0], dst=b.points[0])


@pytest.mark.parametrize("name", TRAINED)
def test_missing_and_corrupt_weights_name_file_and_key(images, tmp_path, name):
    x = _input(ImageDataset.load(images))

    def use(c):
        if name == "facegan.bgmix":
            frame = np.zeros((64, 64, 3), np.uint8)
            c.mix(frame, GenerateOutput(x.image, np.ones((64, 64), np.float32)),
                  SquareCrop(0, 0, 64, 64))
        else:
            c.generate(x)

    with pytest.raises(ReenactError, match="not found") as e:
        use(component(name, weights=str(tmp_path / "nope.onnx")))
    assert "nope.onnx" in str(e.value) and f"{name}.weights" in str(e.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    with pytest.raises(ReenactError, match="ONNX") as e:
        use(component(name, weights=str(bad)))
    assert "bad.onnx" in str(e.value) and f"{name}.weights" in str(e.value)
    from reenact_fx.learning import runtime

    wrong = runtime.shipped("reenact_fx_plugins.freenet", "ulc.onnx")   # a converter's weights
    with pytest.raises(ReenactError, match="do not fit") as e:
        use(component(name, weights=wrong))
    assert f"{name}.weights" in str(e.value)


@pytest.mark.parametrize("generator,mixer", [("freenet.gag", "feather"),
                                             ("facegan.reenactor", "facegan.bgmix"),
                                             ("meshwarp", "facegan.bgmix")])
def test_render_end_to_end_with_shipped_weights(faces, generator, mixer):
    """A shared portrait driven by a shared clip: the face changes with the driver's mouth, and
    the frame far from the face stays exactly as it was."""
    with Effect(generator=generator, mixer=mixer) as fx:
        a = fx.analyze(str(faces / "source/s9.jpg"), str(faces / "driving/d0.mp4"))
        from reenact_fx.media import MediaReader

        with MediaReader(str(faces / "source/s9.jpg")) as r:
            still = r.frame_at(0)
        frames = [fx.render_frame(t) for t in (0, 20, 40)]
        crop = fx.crop_at(20)
    for f in frames:
        assert f.shape == still.shape and f.dtype == np.uint8
    h, w = still.shape[:2]
    x0, y0, x1, y1 = crop.box(w, h)
    outside = np.ones((h, w), bool)
    outside[y0:y1, x0:x1] = False
    assert (frames[1][outside] == still[outside]).all()
    mouth = a.dst[20][list(g.LIPS_OUTER), :2]
    (mx0, my0), (mx1, my1) = mouth.min(0).astype(int) - 4, mouth.max(0).astype(int) + 4
    diff = np.abs(frames[1].astype(int) - frames[0].astype(int))[my0:my1, mx0:mx1].mean()
    assert diff > 2.0, diff
