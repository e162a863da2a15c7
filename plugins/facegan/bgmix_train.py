"""Training and export of ``facegan.bgmix`` (torch; ``reenact-fx train facegan.bgmix``).

FACEGAN's background-mixer losses (eq. 10-11): the mask's total variation (λ_b1) and L2 (λ_b2), and
the perceptual (λ_b3), adversarial (λ_b4) and reconstruction (λ_b5) terms on I_r against the truth
I_d.  The paper gives no values; these follow pix2pixHD as for the reenactor (L1 100, feature
matching 10, GAN 1) with TV 10 and L2 1 on M (means over pixels: each about a tenth of the L1 at
the start).  Adam lr 2e-4, β 0.5/0.999, batch 4.

Pairs (two frames of one clip): the face I'_f is the truth cut by its pseudo-labels (face, or face
and hair: the generator in front may regenerate either), the background I_b the reference with the
face of both frames removed, so the mixer learns to fill what lies between (the old chin when the
jaw closes, the neck's edge) and to blend the seam.  Half the faces get a colour cast (per channel
+-8 %): a generator's face rarely matches the frame's white balance exactly.  Trained on the truth's
face, not a reenactor's output, so the mixer serves every generator (``meshwarp`` too).
"""

from __future__ import annotations

import numpy as np
import torch

from reenact_fx.api.training import (ImageRun, PatchGAN, export_onnx, facecrops, gan_loss, imagekit,
                                     labels, load_checkpoint)
from reenact_fx.api import runtime

from .image_model import Mixer

METHOD = "facegan.bgmix"
CONFIG = {"steps": 2000, "batch": 4, "lr": 2e-4, "betas": (0.5, 0.999), "lambda_rec": 100.0,
          "lambda_perc": 10.0, "lambda_adv": 1.0, "lambda_tv": 10.0, "lambda_l2": 1.0,
          "cast": 0.08, "size": 128, "width": 8, "d_width": 32, "max_frames": 120,
          "val_every": 50, "val_frames": 8, "vgg": "", "checkpoint_every": 50}


def inputs(b, t: dict, rng: np.random.Generator, cast: float):
    """(face I'_f, background I_b, face mask) tensors of a pair batch."""
    n = len(b.truth)
    with_hair = rng.random(n) < 0.5
    lab, ref_lab = t["labels"], t["ref_labels"]
    keep = torch.from_numpy(with_hair).view(-1, 1, 1)

    def region(x):
        return ((x == labels.FACE) | (keep & (x == labels.HAIR))).float()[:, None]

    face_m = region(lab)
    hole = torch.maximum(face_m, region(ref_lab))
    gain = 1 + cast * torch.from_numpy(rng.uniform(-1, 1, (n, 3)) * (rng.random((n, 1)) < 0.5)
                                       ).float().view(n, 3, 1, 1)
    face = ((t["truth"] + 1) * gain - 1).clamp(-1, 1) * face_m
    return face, t["ref"] * (1 - hole), face_m


def tv(m: torch.Tensor) -> torch.Tensor:
    return ((m[..., 1:, :] - m[..., :-1, :]) ** 2).mean() + ((m[..., 1:] - m[..., :-1]) ** 2).mean()


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None, size: int | None = None, init: str | None = None,
          config: dict | None = None, max_frames: int | None = None) -> str:
    run = ImageRun(METHOD, data, out, CONFIG, steps=steps, seed=seed, progress=progress,
                   size=size, config=config, max_frames=max_frames)
    cfg = run.cfg
    torch.manual_seed(seed)
    g = Mixer(cfg["width"])
    d = PatchGAN(3, cfg["d_width"])
    vgg, opt_g, opt_d = run.adversarial(g, d, init=init, shipped=runtime.shipped(
        __package__, "bgmix.onnx"))
    vb = run.val_batch

    def validate():
        t = imagekit.batch_tensors(vb)
        face, bg, m = inputs(vb, t, np.random.default_rng(7), 0.0)
        mixed, colour, mask = g(face, bg, m)
        l1 = imagekit.masked_l1(mixed, t["truth"], t["valid"])
        imgs = facecrops.from_net(mixed.numpy())
        run.preview({"face": facecrops.from_net(face.numpy()),
                     "background": facecrops.from_net(bg.numpy()),
                     "mask M": (mask[:, 0].numpy() * 255).astype(np.uint8),
                     "mixed": imgs, "truth": vb.truth})
        return {"l1": l1.item(), "ssim": imagekit.ssim(imgs, vb.truth)}

    trainer = run.trainer_for({"bgmix": g, "d": d}, {"g": opt_g, "d": opt_d}, validate=validate)
    if resume:
        trainer.resume(required=True, match=("size", "width"))
    n = cfg["batch"]

    def step(i: int) -> dict[str, float]:
        b = run.step_batch(i, n)
        t = imagekit.batch_tensors(b)
        face, bg, m = inputs(b, t, np.random.default_rng([seed, i, 1]), cfg["cast"])
        mixed, _colour, mask = g(face, bg, m)

        d_loss = imagekit.discriminator_step(d, opt_d, t["truth"], mixed)
        rec = imagekit.masked_l1(mixed, t["truth"], t["valid"])
        logits, fake_feats = d(mixed)
        adv = gan_loss(logits, True)
        perc = imagekit.perceptual(mixed, t["truth"], fake_feats, d, vgg)
        reg_tv, reg_l2 = tv(mask), (mask ** 2).mean()
        imagekit.descend(opt_g, cfg["lambda_rec"] * rec + cfg["lambda_perc"] * perc
                         + cfg["lambda_adv"] * adv + cfg["lambda_tv"] * reg_tv
                         + cfg["lambda_l2"] * reg_l2)
        return {"rec": rec.item(), "mask_l2": reg_l2.item(), "mask_tv": reg_tv.item(),
                "perc": perc.item(), "adv_g": adv.item(), "d": d_loss.item()}

    return trainer.run(step)


def load(checkpoint: str) -> tuple[Mixer, int]:
    ck = load_checkpoint(checkpoint, method=METHOD)
    cfg = ck["config"]
    g = Mixer(cfg["width"])
    g.load_state_dict(ck["modules"]["bgmix"])
    return g.eval(), int(cfg["size"])


def export(checkpoint: str, onnx_path: str) -> str:
    g, s = load(checkpoint)
    rng = torch.Generator().manual_seed(0)
    face = torch.rand(1, 3, s, s, generator=rng) * 2 - 1
    bg = torch.rand(1, 3, s, s, generator=rng) * 2 - 1
    m = (torch.rand(1, 1, s, s, generator=rng) > 0.5).float()
    return export_onnx(g, (face, bg, m), onnx_path, ["face", "background", "mask"],
                       ["mixed", "colour", "alpha"], half_weights=True, atol=5e-3)
