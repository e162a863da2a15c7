"""Torch building blocks shared by the learned landmark components (training and export only)."""

from __future__ import annotations

import torch
from torch import nn

N_POINTS = 478
DIM = N_POINTS * 3     # a flattened landmark set (x, y, z)


def mlp(*widths: int, last_act: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with LeakyReLU(0.2) between them (and after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_act:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class Standardise(nn.Module):
    """Fixed per-coordinate standardisation of landmark sets (measured on the training data)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shape_mean", torch.zeros(DIM))
        self.register_buffer("shape_std", torch.ones(DIM))
        self.register_buffer("motion_std", torch.ones(DIM))

    def fit(self, shapes: torch.Tensor, motions: torch.Tensor) -> None:
        s = shapes.reshape(len(shapes), -1)
        m = motions.reshape(len(motions), -1)
        self.shape_mean.copy_(s.mean(0))
        self.shape_std.copy_(s.std(0).clamp_min(1e-3))
        self.motion_std.copy_(m.std(0).clamp_min(1e-3))

    def shape(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.shape_mean) / self.shape_std

    def motion(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) / self.motion_std
