"""LD-Net's networks (Xiang et al. 2020, "One-Shot Identity-Preserving Portrait Reenactment"), in torch.

The landmark disentanglement network splits a landmark set into a pose/expression code and an identity
code and recombines them: ``G(E_P(driver), E_I(target))`` is the driver's expression on the target's
face.  All networks are MLPs over the full 478-point mesh in the canonical frame
(:mod:`reenact_fx.face.canonical`; x, y, z, flattened to 1434 numbers):

- ``E_P``  pose/expression encoder: landmarks -> pose/expression code;
- ``N_I``  identity table (stage 1): one learned code per training identity (a one-hot times a matrix);
- ``E_I``  identity encoder (stage 2): landmarks -> identity code, trained to reproduce ``N_I``'s codes,
  so that an unseen identity gets a code from a single reference shape (one-shot);
- ``G``    generator: (pose/expression code, identity code) -> landmarks, written as an offset from the
  mean training shape;
- ``C``    classifier: tells the identity from a pose/expression code; ``E_P`` is trained to defeat it,
  so its code carries no identity;
- ``D``    discriminator on (landmarks, a real landmark set of the claimed identity) pairs: real pairs
  are two frames of one person, fake ones a generated face paired with a real frame of the identity
  it was given (Mathieu et al.'s pair discriminator, which LD-Net builds on).

Widths are chosen so that the shipped inference graph (E_P, E_I, G) stays under 1.5 MB and runs
above 87,800 landmark sets/s on 2 CPU cores (about 230,000 multiply-adds a set): the first layer of
each encoder and the last of the generator are narrow (face-mesh shapes vary in a few dozen
directions; 56 keeps the error of a linear projection of the held-out shapes near 0.003 eye
distances), the rest is cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from reenact_fx.api.training import DIM, mlp

CODE_P = 32     # pose/expression code
CODE_I = 32     # identity code


class Encoder(nn.Module):
    """Canonical landmarks (B, 1434) -> code (B, n), centred on the mean training shape."""

    def __init__(self, mean: torch.Tensor, *widths: int):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, DIM).clone())
        self.net = mlp(DIM, *widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - self.mean)


class Generator(nn.Module):
    """(pose/expression code, identity code) -> canonical landmarks (B, 1434)."""

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, DIM).clone())
        self.net = mlp(CODE_P + CODE_I, 128, 56, DIM)

    def forward(self, code_p: torch.Tensor, code_i: torch.Tensor) -> torch.Tensor:
        return self.mean + self.net(torch.cat([code_p, code_i], 1))


class LDNet(nn.Module):
    """Every LD-Net network; ``n_ids`` training identities for the stage-1 table and the classifier."""

    def __init__(self, mean: torch.Tensor, n_ids: int):
        super().__init__()
        self.n_ids = n_ids
        self.E_P = Encoder(mean, 56, 64, CODE_P)
        self.E_I = Encoder(mean, 32, 64, CODE_I)
        self.N_I = nn.Embedding(n_ids, CODE_I)
        nn.init.normal_(self.N_I.weight, std=0.5)
        self.G = Generator(mean)
        self.C = mlp(CODE_P, 128, 128, n_ids)
        self.D = PairDiscriminator(mean)

    def inference(self) -> "LDNetInference":
        return LDNetInference(self.E_P, self.E_I, self.G)


class PairDiscriminator(nn.Module):
    """(landmarks, a real landmark set of the claimed identity) -> logit "a real pair of one person"."""

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, DIM).clone())
        self.net = mlp(2 * DIM, 128, 128, 1)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x - self.mean, ref - self.mean], 1))


class LDNetInference(nn.Module):
    """The shipped graph: driver shapes (B, 1434), target shapes (B, 1434) -> converted (B, 1434)."""

    def __init__(self, e_p: Encoder, e_i: Encoder, g: Generator):
        super().__init__()
        self.E_P, self.E_I, self.G = e_p, e_i, g

    def forward(self, driver: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.G(self.E_P(driver), self.E_I(target))


INPUTS = ("driver", "target")
OUTPUTS = ("shape",)
