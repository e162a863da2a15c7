"""Training and export of ``facegan.reenactor`` (torch; ``reenact-fx train facegan.reenactor``).

FACEGAN's face-reenactor losses (eq. 5-8): reconstruction L1 of the face with the background
removed (I'_fr against F_d, both cut by the truth's face + hair labels), the perceptual term, the
adversarial term (PatchGAN) and cross-entropy of the segmentation head against the pseudo-labels
(``learning.labels``: face mesh + selfie segmentation; no face-parsing network offline).  The
paper gives no loss weights; these are pix2pixHD's, which FACEGAN builds on ([25]): L1 100 (as
Pix2Pix), perceptual / feature matching 10, adversarial 1, and CE 1.  Adam lr 2e-4 (the paper's),
β 0.5/0.999; batch 4 (the paper trains with 1).  Pairs: two frames of one clip, the heatmap of the
truth's landmarks drawn in the reference's crop (the paper's "same face track" pairs).

Adapted: the perceptual term is VGG-19's (``--config vgg=PATH``, a local torchvision state dict)
or, without it, the discriminator's feature matching; least-squares GAN; one PatchGAN, not
pix2pixHD's three scales (128 px crops); no progressive 128 -> 256 schedule (train at the size you
render at); the kept weights (``best.pt``) have the lowest masked L1 on held-out frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reenact_fx.api import runtime
from reenact_fx.api.training import (ImageRun, PatchGAN, export_onnx, facecrops, gan_loss, imagekit,
                                     labels, load_checkpoint)

from .image_model import Reenactor

METHOD = "facegan.reenactor"
CONFIG = {"steps": 500, "batch": 4, "lr": 2e-4, "betas": (0.5, 0.999), "lambda_rec": 100.0,
          "lambda_perc": 10.0, "lambda_adv": 1.0, "lambda_ce": 1.0, "size": 128, "width": 8,
          "d_width": 32, "max_frames": 120, "val_every": 50, "val_frames": 8, "vgg": "",
          "checkpoint_every": 50}


def heatmaps(points: np.ndarray, size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([facecrops.heatmap(p, size) for p in points])[:, None])


def head_mask(lab: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) 1 on face and hair."""
    return (lab != labels.BACKGROUND).float()[:, None]


def seg_colours(logits: np.ndarray) -> np.ndarray:
    """Segmentation logits (B, 3, S, S) as a grey picture: face mid grey, hair white."""
    return (np.argmax(logits, 1) * 120).astype(np.uint8)


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None, size: int | None = None, init: str | None = None,
          config: dict | None = None, max_frames: int | None = None) -> str:
    run = ImageRun(METHOD, data, out, CONFIG, steps=steps, seed=seed, progress=progress,
                   size=size, config=config, max_frames=max_frames)
    cfg = run.cfg
    s = cfg["size"]
    torch.manual_seed(seed)
    g = Reenactor(cfg["width"])
    d = PatchGAN(3, cfg["d_width"])
    vgg, opt_g, opt_d = run.adversarial(g, d, init=init, shipped=runtime.shipped(
        __package__, "reenactor.onnx"))
    vb = run.val_batch

    def validate():
        t = imagekit.batch_tensors(vb)
        fake, seg = g(t["ref"], heatmaps(vb.points, s))
        m = head_mask(t["labels"]) * t["valid"]
        l1 = imagekit.masked_l1(fake, t["truth"], m)
        imgs = facecrops.from_net(fake.numpy())
        run.preview({"reference": vb.ref,
                     "heatmap": (heatmaps(vb.points, s)[:, 0].numpy() * 255).astype(np.uint8),
                     "generated": imgs, "segmentation": seg_colours(seg.numpy()),
                     "truth": vb.truth})
        return {"l1": l1.item(), "ssim": imagekit.face_box_ssim(imgs, vb.truth, vb.points),
                "ce": F.cross_entropy(seg, t["labels"]).item()}

    trainer = run.trainer_for({"reenactor": g, "d": d}, {"g": opt_g, "d": opt_d},
                              validate=validate)
    if resume:
        trainer.resume(required=True, match=("size", "width"))
    n = cfg["batch"]

    def step(i: int) -> dict[str, float]:
        b = run.step_batch(i, n)
        t = imagekit.batch_tensors(b)
        fake, seg = g(t["ref"], heatmaps(b.points, s))
        m = head_mask(t["labels"]) * t["valid"]
        real_f, fake_f = t["truth"] * m, fake * m      # I'_fr and F_d: background removed

        d_loss = imagekit.discriminator_step(d, opt_d, real_f, fake_f)
        rec = imagekit.masked_l1(fake, t["truth"], m)
        logits, fake_feats = d(fake_f)
        adv = gan_loss(logits, True)
        perc = imagekit.perceptual(fake_f, real_f, fake_feats, d, vgg)
        ce = F.cross_entropy(seg, t["labels"])
        imagekit.descend(opt_g, cfg["lambda_rec"] * rec + cfg["lambda_perc"] * perc
                         + cfg["lambda_adv"] * adv + cfg["lambda_ce"] * ce)
        return {"rec": rec.item(), "ce": ce.item(), "perc": perc.item(), "adv_g": adv.item(),
                "d": d_loss.item()}

    return trainer.run(step)


def load(checkpoint: str) -> tuple[Reenactor, int]:
    ck = load_checkpoint(checkpoint, method=METHOD)
    cfg = ck["config"]
    g = Reenactor(cfg["width"])
    g.load_state_dict(ck["modules"]["reenactor"])
    return g.eval(), int(cfg["size"])


def export(checkpoint: str, onnx_path: str) -> str:
    g, s = load(checkpoint)
    rng = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, s, s, generator=rng) * 2 - 1
    hm = torch.rand(1, 1, s, s, generator=rng)
    return export_onnx(g, (img, hm), onnx_path, ["image", "heatmap"], ["generated", "segmentation"],
                       half_weights=True, atol=5e-3)
