"""Training and export of ``freenet.ulc`` (torch; ``reenact-fx train freenet.ulc``).

Losses as in FReeNet: point-wise L1 to the ground truth (λ 100), cycle consistency (λ 10: converting
the result back onto the driver's reference gives the driver's landmarks) and the two discriminators'
adversarial terms (λ 0.1: D_TF real/fake, D_S same-identity pair).  Adam, lr 1e-3, β 0.5/0.999,
batch 64, 2000 steps.  The paper (section 4, implementation details) trains the ULC with Adam lr
3e-4, β 0.99/0.999, batch 16, the rate divided by ten every 300 of 1,000 epochs; the shipped weights
were trained with the values here before the paper was at hand and were not retrained (their
held-out errors, measured, are in the README).

Adapted for talking-head footage, each measured on held-out identities before it was kept:
- pairs (``reenact_fx.learning.pairs``): the L1 term uses same-identity pairs (a clip's reference
  frame driven by its own frame t) and synthetic-identity pairs (known truth across face shapes,
  strength 0.5-2); the cycle and adversarial terms also see real cross-identity pairs (no truth);
- least-squares GAN losses and instance noise of the tracker's jitter (σ 0.005) on the
  discriminators' inputs: with the cross-entropy form the discriminators won outright on ~20
  identities and their gradient dragged the converter away from the truth (L1 rose);
- weight decay 1e-4 and 70 % synthetic pairs: without them the converter fitted the training faces
  (held-out error 10x the training error);
- the weights kept are those with the lowest L1 on held-out identities (``best.pt``), checked every
  100 steps: longer runs drift.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from reenact_fx.api import training as torchkit
from reenact_fx.api.training import PairSampler, motions, training_set, validation_batch

from .model import ULC, RealFake, SameIdentity

METHOD = "freenet.ulc"
CONFIG = {"steps": 2000, "batch": 64, "lr": 1e-3, "betas": (0.5, 0.999), "lambda_l1": 100.0,
          "lambda_cycle": 10.0, "lambda_adv": 0.1, "hidden": 64, "code": 32, "d_noise": 0.005,
          "mix": (0.2, 0.7, 0.1), "strength": (0.5, 2.0), "weight_decay": 1e-4}


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None) -> str:
    cfg = dict(CONFIG, steps=int(CONFIG["steps"] if steps is None else steps), seed=seed,
               data=os.path.abspath(data))
    ds = training_set(data)
    torch.manual_seed(seed)
    g = ULC(cfg["hidden"], cfg["code"])
    g.norm.fit(torchkit.tensor(ds.shapes), torchkit.tensor(motions(ds)))
    d_tf, d_s = RealFake(g.norm), SameIdentity(g.norm)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg["lr"], betas=cfg["betas"],
                             weight_decay=cfg["weight_decay"])
    opt_d = torch.optim.Adam(list(d_tf.parameters()) + list(d_s.parameters()), lr=cfg["lr"],
                             betas=cfg["betas"])
    vb = validation_batch(data)

    def validate():
        fake = g(*map(torchkit.tensor, (vb.target_ref, vb.driver, vb.driver_ref)))
        return {"l1": (fake - torchkit.tensor(vb.truth)).abs().mean().item()}

    trainer = torchkit.Trainer(METHOD, out, modules={"ulc": g, "d_tf": d_tf, "d_s": d_s},
                               optimizers={"g": opt_g, "d": opt_d}, steps=cfg["steps"], seed=seed,
                               config=cfg, progress=progress,
                               validate=validate if vb is not None else None)
    if resume:
        trainer.resume(required=True)
    sampler = PairSampler(ds, np.random.default_rng(seed), mix=cfg["mix"],
                          strength=tuple(cfg["strength"]))
    n = cfg["batch"]
    ones, zeros = torch.ones(n), torch.zeros(n)

    def gan(score, target):
        """Least-squares GAN loss (bounded gradients: a confident discriminator cannot swamp
        the L1 term, which the cross-entropy form did here)."""
        return F.mse_loss(score, target)

    def noisy(p):
        """Instance noise of the tracker's own jitter, so the discriminators judge face shapes,
        not the tracker's noise pattern."""
        return p + cfg["d_noise"] * torch.randn_like(p)

    def step(i: int) -> dict[str, float]:
        sampler.rng = np.random.default_rng([seed, i])   # a resumed run draws the same batches
        b = sampler.batch(n)
        t_ref, drv, d_ref, truth = map(torchkit.tensor, (b.target_ref, b.driver, b.driver_ref, b.truth))
        has = torch.from_numpy(b.has_truth)
        real, real_ref = map(torchkit.tensor, sampler.real_pairs(n, same=True))
        _, other_ref = map(torchkit.tensor, sampler.real_pairs(n, same=False))

        fake = g(t_ref, drv, d_ref)
        # discriminators: real faces vs converted ones; same-person pairs vs other-person pairs
        # and (converted, target reference) pairs
        fake_d = noisy(fake.detach())
        d_loss = (gan(d_tf(noisy(real)), ones) + gan(d_tf(fake_d), zeros)
                  + gan(d_s(noisy(real), real_ref), ones)
                  + 0.5 * gan(d_s(noisy(real), other_ref), zeros)
                  + 0.5 * gan(d_s(fake_d, t_ref), zeros))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()

        l1 = (fake - truth).abs()[has].mean() if has.any() else fake.sum() * 0
        back = g(d_ref, fake, t_ref)          # the result, converted back onto the driver
        cycle = (back - drv).abs().mean()
        adv = gan(d_tf(noisy(fake)), ones) + gan(d_s(noisy(fake), t_ref), ones)
        g_loss = cfg["lambda_l1"] * l1 + cfg["lambda_cycle"] * cycle + cfg["lambda_adv"] * adv
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return {"l1": l1.item(), "cycle": cycle.item(), "adv_g": adv.item(), "d": d_loss.item(),
                "total_g": g_loss.item()}

    return trainer.run(step)


def load(checkpoint: str) -> ULC:
    ck = torchkit.load_checkpoint(checkpoint, method=METHOD)
    cfg = ck["config"]
    g = ULC(cfg["hidden"], cfg["code"])
    g.load_state_dict(ck["modules"]["ulc"])
    return g.eval()


def export(checkpoint: str, onnx_path: str) -> str:
    g = load(checkpoint)
    ex = torch.zeros(1, 478, 3) + g.norm.shape_mean.reshape(1, 478, 3)
    return torchkit.export_onnx(g, (ex, ex + 0.01, ex), onnx_path,
                                ["target_ref", "driver", "driver_ref"], ["landmarks"],
                                half_weights=True)
