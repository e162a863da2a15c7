"""FReeNet's unified landmark converter (ULC) and its two discriminators (torch; training/export only).

ULC: a landmark encoder for the target's reference landmarks l_T,r, a second landmark encoder for the
driver, and a shift decoder on the concatenated codes; the output is ``l̂ = l_T,r + shift``.  The
landmarks are the full 478-point mesh in the canonical frame (x, y, z).

Adapted for talking-head footage: the driver encoder sees the driver's motion from its own reference
frame (``l_S - l_S,r``), not its absolute landmarks.  FReeNet's RaFD/Multi-PIE training set has
dozens of identities performing the same expressions, which teaches an encoder to separate
expression from identity in absolute landmarks; the shared faces hold about twenty people, too few
for that, while the driver's reference frame is known at render time anyway.

Inputs are standardised with constants measured on the training data (buffers, so they travel in
the checkpoint and the ONNX graph).
"""

from __future__ import annotations

import torch
from torch import nn

from reenact_fx.api.training import DIM, N_POINTS, Standardise, mlp


class ULC(nn.Module):
    """target_ref, driver, driver_ref (B, 478, 3) canonical -> converted landmarks (B, 478, 3)."""

    def __init__(self, hidden: int = 64, code: int = 32):
        super().__init__()
        self.norm = Standardise()
        self.encode_target = mlp(DIM, hidden, code, last_act=True)
        self.encode_driver = mlp(DIM, hidden, code, last_act=True)
        self.decode_shift = mlp(2 * code, hidden, DIM, last_act=False)
        nn.init.zeros_(self.decode_shift[-1].weight)      # start from the driver's own motion
        nn.init.zeros_(self.decode_shift[-1].bias)

    def forward(self, target_ref: torch.Tensor, driver: torch.Tensor, driver_ref: torch.Tensor
                ) -> torch.Tensor:
        z = torch.cat([self.encode_target(self.norm.shape(target_ref)),
                       self.encode_driver(self.norm.motion(driver - driver_ref))], 1)
        shift = (driver - driver_ref) + (self.decode_shift(z) * self.norm.motion_std
                                         ).reshape(-1, N_POINTS, 3)
        return target_ref + shift


class RealFake(nn.Module):
    """D_TF: is a landmark set a real face's?"""

    def __init__(self, norm: Standardise, hidden: int = 256):
        super().__init__()
        self.norm = norm
        self.net = mlp(DIM, hidden, hidden // 2, 1, last_act=False)

    def forward(self, shape: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm.shape(shape))[:, 0]


class SameIdentity(nn.Module):
    """D_S: do a landmark set and a reference landmark set belong to one person?"""

    def __init__(self, norm: Standardise, hidden: int = 256):
        super().__init__()
        self.norm = norm
        self.net = mlp(2 * DIM, hidden, hidden // 2, 1, last_act=False)

    def forward(self, shape: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.norm.shape(shape), self.norm.shape(ref)], 1))[:, 0]
