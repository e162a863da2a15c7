"""Training and export of ``facegan.lt`` (torch; ``reenact-fx train facegan.lt``).

Losses of FACEGAN's landmark transformer: point-wise L1 to the ground truth, an L2 on the delta
weighted per point (by how much the point moves in the training data, so the lips and lids, which
carry expressions in a few points, count as much as the broad cheeks), the AU loss L_a (the AU
regressor, trained alongside on real faces, must read the input intensities back from the output)
and the connectivity loss (edge vectors of the face-mesh tessellation match the truth's: neighbouring
points move together).  Weights 100 / 1000 / 1 / 100: each term about equal at the start, in
canonical units (eye distance 1); the paper names λ_l1..λ_l3 but gives no values.  Adam, lr 1e-3,
β 0.5/0.999, weight decay 1e-4, batch 64, 6000 steps (the paper: lr 2e-4 and batch 32 for L_T; the
shipped weights were trained with the values here and were not retrained); the weights kept are those with the lowest L1 on
held-out identities (``best.pt``).

Adapted for talking-head footage (``reenact_fx.learning.pairs``): the truth comes from same-identity
pairs and synthetic-identity pairs; real cross-identity pairs (no truth) get the AU loss only.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from reenact_fx.api import training as torchkit
from reenact_fx.api.training import (LandmarkDataset, PairSampler, motions, training_set,
                                     validation_batch)

from .aus import from_controls
from .model import AURegressor, LandmarkTransformer

METHOD = "facegan.lt"
CONFIG = {"steps": 6000, "batch": 64, "lr": 1e-3, "betas": (0.5, 0.999), "lambda_l1": 100.0,
          "lambda_l2w": 1000.0, "lambda_au": 1.0, "lambda_conn": 100.0, "hidden": 96,
          "mix": (0.3, 0.5, 0.2), "strength": (0.5, 2.0), "weight_decay": 1e-4}


def mesh_edges() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    return np.array(sorted(tuple(sorted(e)) for e in FACEMESH_TESSELATION), np.int64)


def train(data: str, out: str, *, steps: int | None = None, resume: bool = False, seed: int = 0,
          progress=None) -> str:
    cfg = dict(CONFIG, steps=int(CONFIG["steps"] if steps is None else steps), seed=seed,
               data=os.path.abspath(data))
    ds = training_set(data)
    torch.manual_seed(seed)
    lt = LandmarkTransformer(cfg["hidden"])
    mo = motions(ds)
    lt.norm.fit(torchkit.tensor(ds.shapes), torchkit.tensor(mo))
    reg = AURegressor(lt.norm)
    point_w = np.linalg.norm(mo, axis=2).std(0)
    point_w = torchkit.tensor(np.clip(point_w / point_w.mean(), 0.2, 5.0))[None, :, None]
    edges = torch.from_numpy(mesh_edges())
    opt_g = torch.optim.Adam(lt.parameters(), lr=cfg["lr"], betas=cfg["betas"],
                             weight_decay=cfg["weight_decay"])
    opt_r = torch.optim.Adam(reg.parameters(), lr=cfg["lr"], betas=cfg["betas"])
    vb = validation_batch(data)
    names = LandmarkDataset.load(data).control_names

    def validate():
        aus, pose = map(torchkit.tensor, from_controls(vb.controls, names))
        out = lt(torchkit.tensor(vb.target_ref), aus, pose)
        return {"l1": (out - torchkit.tensor(vb.truth)).abs().mean().item()}

    trainer = torchkit.Trainer(METHOD, out, modules={"lt": lt, "au_regressor": reg},
                               optimizers={"lt": opt_g, "au_regressor": opt_r},
                               steps=cfg["steps"], seed=seed, config=cfg, progress=progress,
                               validate=validate if vb is not None else None)
    if resume:
        trainer.resume(required=True)
    sampler = PairSampler(ds, np.random.default_rng(seed), mix=cfg["mix"],
                          strength=tuple(cfg["strength"]))
    n = cfg["batch"]

    def edge_vectors(p):
        return p[:, edges[:, 0]] - p[:, edges[:, 1]]

    def step(i: int) -> dict[str, float]:
        sampler.rng = np.random.default_rng([seed, i])
        b = sampler.batch(n)
        aus_np, pose_np = from_controls(b.controls, names)
        t_ref, truth = torchkit.tensor(b.target_ref), torchkit.tensor(b.truth)
        aus, pose = torchkit.tensor(aus_np), torchkit.tensor(pose_np)
        has = torch.from_numpy(b.has_truth)

        # AU regressor on real faces: a clip's frame against its own reference
        real = b.kind == "self"
        r_loss = (reg(torchkit.tensor(b.driver[real]), torchkit.tensor(b.driver_ref[real])) - aus[real]
                  ).abs().mean() if real.any() else torch.zeros(())
        opt_r.zero_grad()
        r_loss.backward()
        opt_r.step()

        out = lt(t_ref, aus, pose)
        if has.any():
            l1 = (out - truth).abs()[has].mean()
            delta, delta_true = out - t_ref, truth - t_ref
            l2w = ((delta - delta_true) ** 2 * point_w)[has].mean()
            conn = (edge_vectors(out) - edge_vectors(truth)).abs()[has].mean()
        else:
            l1 = l2w = conn = out.sum() * 0
        for p in reg.parameters():
            p.requires_grad_(False)
        l_au = (reg(out, t_ref) - aus).abs().mean()
        for p in reg.parameters():
            p.requires_grad_(True)
        loss = (cfg["lambda_l1"] * l1 + cfg["lambda_l2w"] * l2w + cfg["lambda_au"] * l_au
                + cfg["lambda_conn"] * conn)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        return {"l1": l1.item(), "l2w": l2w.item(), "au": l_au.item(), "connectivity": conn.item(),
                "au_regressor": r_loss.item(), "total": loss.item()}

    return trainer.run(step)


def load(checkpoint: str) -> LandmarkTransformer:
    ck = torchkit.load_checkpoint(checkpoint, method=METHOD)
    lt = LandmarkTransformer(ck["config"]["hidden"])
    lt.load_state_dict(ck["modules"]["lt"])
    return lt.eval()


def export(checkpoint: str, onnx_path: str) -> str:
    lt = load(checkpoint)
    ref = torch.zeros(1, 478, 3) + lt.norm.shape_mean.reshape(1, 478, 3)
    aus = torch.full((1, 17), 0.2)
    pose = torch.full((1, 3), 0.1)
    return torchkit.export_onnx(lt, (ref, aus, pose), onnx_path, ["target_ref", "aus", "pose"],
                                ["landmarks"], half_weights=True)
