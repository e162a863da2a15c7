"""Training and export of ``freenet.gag`` (torch; ``reenact-fx train freenet.gag --data clip.mp4``).

Losses as in FReeNet (eq. 8-11): pixel L1 (λ 100), PatchGAN adversarial (λ 1) and the triplet
perceptual loss (λ 0.1, margin 0.3); Adam lr 2e-4, β 0.5/0.999 for the generator and the
discriminator.  Pairs are self-reenactment pairs of the footage (``learning.image_data``): the
reference frame I_T,n1 and the ground truth I_T,n2 of one clip, the landmark image of n2 drawn in
the reference's crop.  The triplet (eq. 11): anchor Î_T,n2 = G(I_T,n1, L_T,n2), positive
Î_T,n3 = G(I_T,n2, L_T,n3) (same person, another expression), negative Î_R,n2 = G(I_R,n3, L̂_R,n2)
(another person R with T's expression n2 moved onto R's face: R's landmarks plus T's motion in the
canonical frame, as the ``delta`` converter does; FReeNet uses its ULC there).

Adapted, and why:
- κ, the perceptual features: VGG-19 needs weights that cannot be fetched offline.  With
  ``--config vgg=PATH`` (a local torchvision ``vgg19`` state dict) they are VGG's relu1_1..relu4_1;
  otherwise the PatchGAN discriminator's own layer features (feature matching), each layer scaled
  to unit mean square so that the margin of 0.3 keeps its meaning.
- least-squares GAN losses (CycleGAN's, the discriminator FReeNet cites [43]);
- the L1 is masked to the pixels of the truth's own frame (head motion moves the crop's border);
- one identity (a person-specific fine-tune) has no triplet (it needs two persons): L1 + GAN only;
- batch 4 as the paper, 2 of them in the triplet (CPU time), a constant learning rate (runs are
  a few thousand steps, not 400 epochs); the weights kept (``best.pt``) are those with the lowest
  L1 on held-out frames.
"""

from __future__ import annotations

import numpy as np
import torch

from reenact_fx.api import canonical, runtime
from reenact_fx.api.training import (LANDMARK_SIZE, ImageRun, PatchGAN, export_onnx, facecrops,
                                     gan_loss, imagekit, into_reference, load_checkpoint)

from .gag_model import GAG

METHOD = "freenet.gag"
CONFIG = {"steps": 250, "batch": 4, "triplet_batch": 1, "lr": 2e-4, "betas": (0.5, 0.999),
          "lambda_pix": 100.0, "lambda_adv": 1.0, "lambda_tp": 0.1, "margin": 0.3,
          "size": 128, "width": 8, "d_width": 32, "max_frames": 120, "val_every": 50,
          "val_frames": 8, "vgg": "", "checkpoint_every": 50}


def landmark_images(points: np.ndarray, size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([facecrops.landmark_image(p, size) for p in points])[:, None])


def moved_onto(points_from: np.ndarray, points_to: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other``'s landmarks with the motion from ``points_from`` to ``points_to`` (each (478, 3)
    in its crop's pixels), added in the canonical frame."""
    a, _ = canonical.normalize(points_from)
    b, _ = canonical.normalize(points_to)
    o, sim = canonical.normalize(other)
    return canonical.denormalize(o + (b - a), sim)


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None, size: int | None = None, init: str | None = None,
          config: dict | None = None, max_frames: int | None = None) -> str:
    run = ImageRun(METHOD, data, out, CONFIG, steps=steps, seed=seed, progress=progress,
                   size=size, config=config, max_frames=max_frames)
    cfg, ds = run.cfg, run.ds
    s = cfg["size"]
    torch.manual_seed(seed)
    g = GAG(s, cfg["width"])
    d = PatchGAN(3, cfg["d_width"])
    vgg, opt_g, opt_d = run.adversarial(g, d, init=init, shipped=runtime.shipped(
        __package__, "gag.onnx"))
    vb = run.val_batch

    def validate():
        fake = g(imagekit.batch_tensors(vb)["ref"], landmark_images(vb.points, s))
        truth = imagekit.batch_tensors(vb)["truth"]
        valid = torch.from_numpy(vb.valid[:, None].copy())
        l1 = imagekit.masked_l1(fake, truth, valid)
        imgs = facecrops.from_net(fake.numpy())
        run.preview({"reference": vb.ref, "landmarks": (landmark_images(vb.points, s)[:, 0]
                                                        .numpy() * 255).astype(np.uint8),
                     "generated": imgs, "truth": vb.truth})
        return {"l1": l1.item(), "ssim": imagekit.face_box_ssim(imgs, vb.truth, vb.points)}

    trainer = run.trainer_for({"gag": g, "d": d}, {"g": opt_g, "d": opt_d}, validate=validate)
    if resume:
        trainer.resume(required=True, match=("size", "width"))
    multi = run.pairs.multi_identity
    n, k = cfg["batch"], min(cfg["triplet_batch"], cfg["batch"])

    def features(x):
        return vgg(x) if vgg is not None else imagekit.normalised(d(x)[1])

    def step(i: int) -> dict[str, float]:
        run.pairs.rng = np.random.default_rng([seed, i])   # a resumed run draws the same batches
        rows = run.pairs.rows(n)
        b = run.pairs.batch(n, rows)
        t = imagekit.batch_tensors(b)
        fake = g(t["ref"], landmark_images(b.points, s))

        d_loss = imagekit.discriminator_step(d, opt_d, t["truth"], fake)
        pix = imagekit.masked_l1(fake, t["truth"], t["valid"])
        adv = gan_loss(d(fake)[0], True)
        tp = fake.new_zeros(())
        if multi and k > 0 and cfg["lambda_tp"] > 0:
            pos_pts, neg_img, neg_pts = [], [], []
            for j, (r, _t, u, c) in enumerate(rows[:k]):
                # positive: the truth frame (as reference) driven to a third frame's landmarks
                pos_pts.append(into_reference(ds, r, u)[1])
                # negative: another person's frame driven by T's expression n2
                c2 = run.pairs.other_clip(c)
                r2 = int(run.pairs.rng.choice(run.pairs.clips[c2]))
                neg_img.append(ds.crops[r2])
                neg_pts.append(moved_onto(b.ref_points[j], b.points[j], ds.points[r2]))
            pos = g(t["truth"][:k], landmark_images(np.stack(pos_pts), s))
            neg = g(torch.from_numpy(facecrops.to_net(np.stack(neg_img))),
                    landmark_images(np.stack(neg_pts), s))
            tp = imagekit.triplet_perceptual(features(fake[:k]), features(pos), features(neg),
                                             cfg["margin"])
        imagekit.descend(opt_g, cfg["lambda_pix"] * pix + cfg["lambda_adv"] * adv
                         + cfg["lambda_tp"] * tp)
        return {"pix": pix.item(), "adv_g": adv.item(), "tp": tp.item(), "d": d_loss.item()}

    return trainer.run(step)


def load(checkpoint: str) -> tuple[GAG, int]:
    """The generator of a checkpoint, and its crop size."""
    ck = load_checkpoint(checkpoint, method=METHOD)
    cfg = ck["config"]
    g = GAG(cfg["size"], cfg["width"])
    g.load_state_dict(ck["modules"]["gag"])
    return g.eval(), int(cfg["size"])


def export(checkpoint: str, onnx_path: str) -> str:
    g, s = load(checkpoint)
    rng = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, s, s, generator=rng) * 2 - 1
    lm = (torch.rand(1, 1, LANDMARK_SIZE, LANDMARK_SIZE, generator=rng) > 0.9).float()
    return export_onnx(g, (img, lm), onnx_path, ["image", "landmarks"], ["generated"],
                       half_weights=True, atol=5e-3)
