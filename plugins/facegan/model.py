"""FACEGAN's landmark transformer and its AU regressor (torch; training/export only).

Landmark transformer: the target's reference landmarks (478-point mesh, canonical frame) with 17
AU-like intensities and 3 head-pose angles -> a landmark delta; the output is ``l_T,r + delta``.
AU regressor (for the L_a loss): landmarks and their reference -> the 17 intensities.  Our AU proxies
are relative to a reference face (``aus.py``), so the regressor sees the reference too, where
FACEGAN's OpenFace AUs are absolute.
"""

from __future__ import annotations

import torch
from torch import nn

from reenact_fx.api.training import DIM, N_POINTS, Standardise, mlp

from .aus import N_AUS


class LandmarkTransformer(nn.Module):
    """target_ref (B, 478, 3), aus (B, 17), pose (B, 3) -> landmarks (B, 478, 3)."""

    def __init__(self, hidden: int = 96):
        super().__init__()
        self.norm = Standardise()
        self.net = mlp(DIM + N_AUS + 3, hidden, hidden, DIM, last_act=False)
        nn.init.zeros_(self.net[-1].weight)        # start from the target's own reference
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, target_ref: torch.Tensor, aus: torch.Tensor, pose: torch.Tensor
                ) -> torch.Tensor:
        delta = self.net(torch.cat([self.norm.shape(target_ref), aus, pose], 1)) \
            * self.norm.motion_std
        return target_ref + delta.reshape(-1, N_POINTS, 3)


class AURegressor(nn.Module):
    """landmarks, reference (B, 478, 3) -> AU intensities (B, 17)."""

    def __init__(self, norm: Standardise, hidden: int = 256):
        super().__init__()
        self.norm = norm
        self.net = mlp(2 * DIM, hidden, hidden // 2, N_AUS, last_act=False)

    def forward(self, shape: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.norm.motion(shape - ref), self.norm.shape(ref)], 1))
