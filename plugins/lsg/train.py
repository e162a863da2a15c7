"""Training and export of the landmark sequence generator (torch; the ``train`` extra).
``reenact-fx train lsg --data DS --out DIR`` runs :func:`train`, ``reenact-fx export lsg`` :func:`export`.

Training windows are cut from the dataset's clips: a key frame, K real in-between frames (K from 1 to
``K_MAX``), a second key frame, plus the frame before the first key and after the second, all in the
frame of the first key (``model.py``).  The
generator's losses:

- point-wise L1 between the generated and the real in-betweens (weight 100: errors are hundredths of
  the eye distance);
- realness: the ``RealnessCritic`` judges the whole sequence key, in-betweens, key (weight 0.01);
- same identity: the ``IdentityCritic`` judges (generated frame, first key) pairs against (real frame,
  first key) pairs (weight 0.01);
- identity support task: the ``IdentityClassifier``, trained on real frames, must recognise the keys'
  identity in every generated frame (cross-entropy, weight 0.01).

Adam, lr 1e-3 (generator) and 2e-4 (critics), betas (0.5, 0.999), batch 64 windows (half of them
played backwards), 1500 steps.  The paper's exact weights were not at hand offline; these follow its
losses and trained the shipped weights.  Measured on the held-out clips (gap filling against linear
interpolation): with the three critic terms at weight 1, and still at 0.1, the in-betweens were worse
than linear interpolation on most clips (the critics pull towards "plausible", not "right", and a
dozen people are too few for identity critics to generalise); at 0.01 the generator is better on some
held-out clips and worse on others, about 2 % better on average (see ``bench/bench_converters.py``).

Adaptation: as for LD-Net, every training identity also appears as ``N_SYNTHETIC`` synthetic identities
(``dataset.synthetic_identity``: one smooth shape change on every frame of a clip), so the identity
critics see more than the handful of people in shared footage, and the generator sees more face
shapes.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from reenact_fx.api import ReenactError, canonical
from reenact_fx.api import training as torchkit
from reenact_fx.api.training import dataset as datasets

from .model import DIM, INPUTS, LSG, OUTPUTS, IdentityClassifier, IdentityCritic, RealnessCritic

STEPS = 1500
BATCH = 64
K_MAX = 12
N_SYNTHETIC = 3
W_L1, W_REAL, W_ID, W_SUPPORT = 100.0, 0.01, 0.01, 0.01
LR, LR_CRITIC, BETAS = 1e-3, 2e-4, (0.5, 0.999)


class Windows:
    """Runs of consecutive tracked frames of every clip, in every identity variant (0 = real)."""
    def __init__(self, ds: datasets.LandmarkDataset, seed: int, n_synthetic: int = N_SYNTHETIC):
        real = np.unique(ds.identity)
        self.n_real = len(real)
        ident = np.searchsorted(real, ds.identity)
        self.sims = canonical.fit(ds.points)                   # each frame's pixels -> canonical
        variants = [ds.points.astype(np.float32)]
        rng = np.random.default_rng(seed)
        for _ in range(n_synthetic):
            v = np.empty_like(ds.shapes)
            for i in range(self.n_real):
                rows = np.flatnonzero(ident == i)
                v[rows] = datasets.synthetic_identity(ds.shapes[rows], rng)
            variants.append(canonical.denormalize(v, self.sims))   # the new face, same head motion
        self.points = np.stack(variants)
        self.ident = ident
        self.n_ids = len(variants) * self.n_real
        # starts of windows of K_MAX + 4 consecutive frames (frame numbers without a jump)
        starts = []
        for c in np.unique(ds.clip):
            rows = ds.clip_rows(int(c))
            if len(rows) < K_MAX + 4:
                continue
            jumps = np.flatnonzero(np.diff(ds.frame[rows]) != 1)
            for a, b in zip(np.r_[0, jumps + 1], np.r_[jumps + 1, len(rows)]):
                starts += [rows[j] for j in range(a, b - (K_MAX + 4) + 1)]
        if not starts:
            raise ReenactError(f"LSG needs clips with at least {K_MAX + 4} consecutive tracked "
                               "frames; the dataset has none", key="data")
        self.starts = np.array(starts)   # rows are consecutive within a clip

    def window(self, starts: np.ndarray, variants: np.ndarray, k: int) -> np.ndarray:
        """(n, k + 4, 1434): frames start .. start + k + 3 of each window, in the frame of its first
        key (row start + 1)."""
        p = self.points[variants[:, None], starts[:, None] + np.arange(k + 4)]
        sim = self.sims[starts + 1]
        w = np.einsum("nij,nkpj->nkpi", sim[:, :, :3], p) + sim[:, None, None, :, 3]
        return w.reshape(len(starts), k + 4, DIM).astype(np.float32)

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
        k = int(rng.integers(1, K_MAX + 1))
        s = rng.choice(self.starts, n)
        v = rng.integers(0, len(self.points), n)
        seq = self.window(s, v, k)
        back = rng.random(n) < 0.5            # half the windows played backwards: motion has no
        seq[back] = seq[back, ::-1]           # preferred direction in time, and it doubles the data
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        return {"keys": t(seq[:, [0, 1, k + 2, k + 3]]), "truth": t(seq[:, 2:k + 2]),
                "tau": t(np.tile((np.arange(1, k + 1) / (k + 1)).astype(np.float32), (n, 1))),
                "id": t(v * self.n_real + self.ident[s]).long()}


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


class Nets(torch.nn.Module):
    def __init__(self, mean: torch.Tensor, n_ids: int):
        super().__init__()
        self.n_ids = n_ids
        self.G = LSG(mean)
        self.D_real = RealnessCritic(mean)
        self.D_id = IdentityCritic(mean)
        self.C_id = IdentityClassifier(mean, n_ids)


def _optimisers(m: Nets) -> dict[str, torch.optim.Optimizer]:
    critics = [*m.D_real.parameters(), *m.D_id.parameters(), *m.C_id.parameters()]
    return {"g": torch.optim.Adam(m.G.parameters(), LR, betas=BETAS),
            "d": torch.optim.Adam(critics, LR_CRITIC, betas=BETAS)}


def step(m: Nets, opt: dict, b: dict) -> dict[str, float]:
    keys, truth, tau = b["keys"], b["truth"], b["tau"]
    n, k = truth.shape[:2]
    a, z = keys[:, 1:2], keys[:, 2:3]
    pick = torch.arange(n) * k + torch.from_numpy(np.arange(n) % k)   # one in-between per window
    # critics: real vs generated sequences, same-person pairs, identities of real frames
    with torch.no_grad():
        fake = m.G(keys, tau)
    real_seq, fake_seq = torch.cat([a, truth, z], 1), torch.cat([a, fake, z], 1)
    t_frames, f_frames = truth.reshape(n * k, DIM)[pick], fake.reshape(n * k, DIM)[pick]
    key = keys[:, 1]
    loss_d = (_bce(m.D_real(real_seq), True) + _bce(m.D_real(fake_seq), False)
              + _bce(m.D_id(t_frames, key), True) + _bce(m.D_id(f_frames, key), False)
              + F.cross_entropy(m.C_id(t_frames), b["id"]))
    opt["d"].zero_grad()
    loss_d.backward()
    opt["d"].step()

    fake = m.G(keys, tau)
    l1 = (fake - truth).abs().mean()
    f_frames = fake.reshape(n * k, DIM)[pick]
    real = _bce(m.D_real(torch.cat([a, fake, z], 1)), True)
    same = _bce(m.D_id(f_frames, key), True)
    support = F.cross_entropy(m.C_id(fake.reshape(n * k, DIM)), b["id"].repeat_interleave(k))
    loss = W_L1 * l1 + W_REAL * real + W_ID * same + W_SUPPORT * support
    opt["g"].zero_grad()
    loss.backward()
    opt["g"].step()
    lerp = (a + (z - a) * tau.unsqueeze(-1) - truth).abs().mean()
    return {"l1": l1.item(), "l1_linear": lerp.item(), "realness": real.item(),
            "same_id": same.item(), "support": support.item(), "critics": loss_d.item(),
            "total": loss.item()}


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None) -> str:
    """Train on the dataset ``data``'s train split; checkpoint and loss curves in ``out``; returns
    the checkpoint path."""
    steps = STEPS if steps is None else int(steps)
    ds = datasets.LandmarkDataset.load(data).subset("train")
    torch.manual_seed(seed)
    windows = Windows(ds, seed)
    mean = windows.window(windows.starts, np.zeros(len(windows.starts), int), 0)[:, 1].mean(0)
    m = Nets(torch.from_numpy(mean), windows.n_ids)
    trainer = torchkit.Trainer("lsg", out, modules={"lsg": m}, optimizers=_optimisers(m),
                               steps=steps, seed=seed, progress=progress,
                               config={"n_ids": windows.n_ids, "k_max": K_MAX,
                                       "data": os.path.abspath(data)})
    if resume:
        trainer.resume(required=True, match=("n_ids",))

    def one(i: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, i])     # a step's batch depends on (seed, step) only
        return step(m, trainer.optimizers, windows.batch(rng, BATCH))

    return trainer.run(one)


def load(checkpoint: str) -> LSG:
    """The generator of a training checkpoint."""
    ck = torchkit.load_checkpoint(checkpoint, method="lsg")
    state = ck["modules"]["lsg"]
    m = Nets(state["G.mean"].reshape(DIM), int(ck["config"]["n_ids"]))
    m.load_state_dict(state)
    return m.G.eval()


def export(checkpoint: str, onnx_path: str) -> str:
    """The generator of ``checkpoint`` as ONNX at ``onnx_path`` (dynamic batch and K)."""
    g = load(checkpoint)
    keys = g.mean.reshape(1, 1, DIM).repeat(2, 4, 1)
    tau = torch.tensor([[0.25, 0.5, 0.75]] * 2)
    axes = {"keys": {0: "batch"}, "tau": {0: "batch", 1: "k"}, "inbetween": {0: "batch", 1: "k"}}
    return torchkit.export_onnx(g, (keys, tau), onnx_path, INPUTS, OUTPUTS, dynamic_axes=axes)
