"""Training and export of LD-Net (torch; the ``train`` extra).  ``reenact-fx train ldnet --data DS
--out DIR`` runs :func:`train`, ``reenact-fx export ldnet`` runs :func:`export`.

The paper's two stages (Xiang et al. 2020, LD-Net), on canonical landmark shapes:

stage 1  ``E_P``, the identity table ``N_I`` and ``G``: ``G(E_P(l_a), N_I(b))`` must be the landmarks
         of identity b with l_a's pose/expression (point-wise L1); the classifier ``C`` learns to tell
         the identity from ``E_P``'s code while ``E_P`` learns to leave it guessing (cross-entropy
         against the uniform distribution), and the pair discriminator ``D`` judges (landmarks, a real
         frame of the identity) pairs.
stage 2  ``E_I`` learns to produce ``N_I``'s code from any single frame of the identity (L2 on the
         codes) and ``G`` is fine-tuned through ``E_I`` (L1 + ``D``), ``E_P`` and ``N_I`` frozen: at
         render time an unseen target's code comes from its one reference shape.

Loss weights: L1 100 (landmark errors are hundredths of the eye distance; eyes, irises and brows
count 4x: they move little but carry blinks and gaze, and uniform weights left their errors largest),
swap 100 (below),
adversarial 1 (D), confusion 1 (C), code 10 (stage 2).  Adam, lr 1e-3 for the encoders and generator,
2e-4 for C and D, betas (0.5, 0.999), batch 128, cosine decay to a tenth within each stage; stage 1
takes 60 % of the 10000 steps.  The exact values of the paper were not at hand offline; these follow
its structure and are the ones the shipped weights were trained with.

Adaptation for talking-head footage: the paper learns from many identities with only identity labels.
A few dozen people of shared footage are too few, so every training identity also gets
``N_SYNTHETIC`` synthetic identities (``dataset.synthetic_identity``: the same smooth shape change on
every frame of a person).  A real frame and its synthetic copies share their expression exactly, so
the stage-1 L1 term is also supervised across identities (the paper can only reconstruct within one).
The same known truth gives one term the paper does not have, the swap term: ``G(E_P(l_a), code(b)) -
G(E_P(l_a), code(a))`` must equal ``l_b - l_a`` (the same frame on two faces), in both stages.  It is
the quantity the converter's default ``swap`` mode uses; with it, that mode's error on held-out
synthetic pairs halved (WEIGHTS.md).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from reenact_fx.api import ReenactError
from reenact_fx.api import geometry as geo
from reenact_fx.api import training as torchkit
from reenact_fx.api.training import dataset as datasets

from .model import DIM, INPUTS, OUTPUTS, LDNet

STEPS = 10000
BATCH = 128
N_SYNTHETIC = 7
STAGE1 = 0.6
W_L1, W_ADV, W_CONF, W_CODE = 100.0, 1.0, 1.0, 10.0
LR, LR_CRITIC, BETAS = 1e-3, 2e-4, (0.5, 0.999)
# eyes, irises and brows move little but carry blinks and gaze: their errors count 4x in L1 and swap
FINE = sorted(set(geo.LEFT_EYE + geo.RIGHT_EYE + geo.LEFT_IRIS + geo.RIGHT_IRIS + geo.LEFT_BROW
                  + geo.RIGHT_BROW))
W_FINE = 4.0


def _point_weights() -> torch.Tensor:
    w = np.ones(DIM // 3, np.float32)
    w[FINE] = W_FINE
    return torch.from_numpy(np.repeat(w / w.mean(), 3))[None]


POINT_WEIGHTS = _point_weights()


class Pool:
    """Training frames of every real and synthetic identity: ``shapes[v, r]`` is row r's frame in
    variant v (0 = real, 1.. = synthetic), identity label ``v * n_real + real identity of r``."""
    def __init__(self, ds: datasets.LandmarkDataset, seed: int):
        real = np.unique(ds.identity)
        if len(ds) < 2 or len(real) < 2:
            raise ReenactError(f"LD-Net needs frames of at least 2 training identities, found "
                               f"{len(real)} ({len(ds)} frames)", key="data")
        self.n_real = len(real)
        self.ident = np.searchsorted(real, ds.identity)            # 0..n_real-1 per row
        self.rows_of = [np.flatnonzero(self.ident == i) for i in range(self.n_real)]
        base = ds.shapes.astype(np.float32)
        variants = [base]
        rng = np.random.default_rng(seed)
        for _ in range(N_SYNTHETIC):
            v = np.empty_like(base)
            for rows in self.rows_of:
                v[rows] = datasets.synthetic_identity(base[rows], rng)
            variants.append(v)
        self.shapes = np.stack(variants).reshape(len(variants), len(base), DIM)
        self.n_ids = len(variants) * self.n_real

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
        """x1 (a frame), x2 (the same frame as another or the same identity), ref and ref1 (other
        frames of x2's and x1's identity), their labels."""
        v_all = len(self.shapes)
        r = rng.integers(0, self.shapes.shape[1], n)
        v1, v2 = rng.integers(0, v_all, n), rng.integers(0, v_all, n)
        other = np.array([rng.choice(self.rows_of[self.ident[i]]) for i in r])
        other1 = np.array([rng.choice(self.rows_of[self.ident[i]]) for i in r])
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        return {"x1": t(self.shapes[v1, r]), "x2": t(self.shapes[v2, r]),
                "ref": t(self.shapes[v2, other]), "ref1": t(self.shapes[v1, other1]),
                "id1": t(v1 * self.n_real + self.ident[r]).long(),
                "id2": t(v2 * self.n_real + self.ident[r]).long()}


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def _optimisers(m: LDNet) -> dict[str, torch.optim.Optimizer]:
    return {"g1": torch.optim.Adam([*m.E_P.parameters(), *m.N_I.parameters(), *m.G.parameters()],
                                   LR, betas=BETAS),
            "g2": torch.optim.Adam([{"params": m.E_I.parameters()},
                                    {"params": m.G.parameters(), "lr": LR * 0.1}], LR, betas=BETAS),
            "c": torch.optim.Adam(m.C.parameters(), LR_CRITIC, betas=BETAS),
            "d": torch.optim.Adam(m.D.parameters(), LR_CRITIC, betas=BETAS)}


def step(m: LDNet, opt: dict, b: dict, stage: int) -> dict[str, float]:
    """One training step of ``stage`` (1 or 2); returns the losses."""
    x1, x2, ref = b["x1"], b["x2"], b["ref"]
    # critics: C on (detached) pose/expression codes, D on real vs generated pairs
    with torch.no_grad():
        code_p = m.E_P(x1)
        code_i = m.N_I(b["id2"]) if stage == 1 else m.E_I(ref)
        fake = m.G(code_p, code_i)
    loss_c = F.cross_entropy(m.C(code_p), b["id1"])
    opt["c"].zero_grad()
    loss_c.backward()
    opt["c"].step()
    loss_d = _bce(m.D(x2, ref), True) + _bce(m.D(fake, ref), False)
    opt["d"].zero_grad()
    loss_d.backward()
    opt["d"].step()

    if stage == 1:
        code_p = m.E_P(x1)
        fake = m.G(code_p, m.N_I(b["id2"]))
        l1 = ((fake - x2).abs() * POINT_WEIGHTS).mean()
        swap = ((fake - m.G(code_p, m.N_I(b["id1"])) - (x2 - x1)).abs() * POINT_WEIGHTS).mean()
        conf = -F.log_softmax(m.C(code_p), 1).mean()       # cross-entropy against uniform
        adv = _bce(m.D(fake, ref), True)
        loss = W_L1 * (l1 + swap) + W_ADV * adv + W_CONF * conf
        out = {"l1": l1.item(), "swap": swap.item(), "confusion": conf.item()}
        g = opt["g1"]
    else:
        with torch.no_grad():
            code_p = m.E_P(x1)
            target_code = m.N_I(b["id2"])
        code_i = m.E_I(ref)
        fake = m.G(code_p, code_i)
        l1 = ((fake - x2).abs() * POINT_WEIGHTS).mean()
        swap = ((fake - m.G(code_p, m.E_I(b["ref1"])) - (x2 - x1)).abs() * POINT_WEIGHTS).mean()
        code = F.mse_loss(code_i, target_code)
        adv = _bce(m.D(fake, ref), True)
        loss = W_L1 * (l1 + swap) + W_ADV * adv + W_CODE * code
        out = {"l1": l1.item(), "swap": swap.item(), "code": code.item()}
        g = opt["g2"]
    g.zero_grad()
    loss.backward()
    g.step()
    return {**out, "adv": adv.item(), "C": loss_c.item(), "D": loss_d.item(), "total": loss.item()}


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None) -> str:
    """Train on the dataset ``data``'s train split; checkpoint and loss curves in ``out``; returns
    the checkpoint path."""
    steps = STEPS if steps is None else int(steps)
    ds = datasets.LandmarkDataset.load(data).subset("train")
    torch.manual_seed(seed)
    pool = Pool(ds, seed)
    m = LDNet(torch.from_numpy(pool.shapes[0].mean(0)), pool.n_ids)
    stage1 = int(round(STAGE1 * steps))
    trainer = torchkit.Trainer("ldnet", out, modules={"ldnet": m}, optimizers=_optimisers(m),
                               steps=steps, seed=seed, progress=progress,
                               config={"n_ids": pool.n_ids, "n_real": pool.n_real,
                                       "stage1_steps": stage1, "data": os.path.abspath(data)})
    if resume:
        trainer.resume(required=True, match=("n_ids",))

    def one(i: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, i])     # a step's batch depends on (seed, step) only
        stage = 1 if i < stage1 else 2
        # cosine decay to a tenth within each stage: the late, fine corrections need small steps
        u = i / max(1, stage1) if stage == 1 else (i - stage1) / max(1, steps - stage1)
        for o in trainer.optimizers.values():
            for group in o.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * \
                    float(0.1 + 0.45 * (1 + np.cos(np.pi * u)))   # plain floats: weights_only
        return step(m, trainer.optimizers, pool.batch(rng, BATCH), stage)

    return trainer.run(one)


def load(checkpoint: str) -> LDNet:
    """The LD-Net of a training checkpoint."""
    ck = torchkit.load_checkpoint(checkpoint, method="ldnet")
    state = ck["modules"]["ldnet"]
    m = LDNet(state["G.mean"], int(ck["config"]["n_ids"]))
    m.load_state_dict(state)
    return m.eval()


def export(checkpoint: str, onnx_path: str) -> str:
    """The inference graph (E_P, E_I, G) of ``checkpoint`` as ONNX at ``onnx_path``."""
    m = load(checkpoint)
    example = (torch.zeros(2, DIM) + m.G.mean, torch.zeros(2, DIM) + m.G.mean)
    return torchkit.export_onnx(m.inference(), example, onnx_path, INPUTS, OUTPUTS)
