"""FReeNet's geometry-aware generator (GAG) and its PatchGAN discriminator (torch; training/export).

``Î = φ4(φ3(φ1(I_ref), φ2(L̂)))``: an image encoder φ1 (the target's reference crop, S px, down to
S/8), a landmark encoder φ2 (the plotted 64x64 landmark image, down to S/8 with as many stride-2
convs as that takes), a transformer φ3 of three ResBlock stages, each fed the landmark encoder's
output again (concatenated, then a 1x1 conv), and an image decoder φ4 back to S px.

Adapted: the decoder takes U-Net skips from the image encoder (GAG is built on Pix2Pix, whose
generator is a U-Net): on a CPU budget of minutes, not GPU-days, they carry the reference's hair,
skin texture and background at full resolution instead of making the decoder re-learn them.
Widths are small (``width`` 8: 0.2 M parameters, 0.47 MB as ONNX) so that a 128 px model trains
in half an hour on a share of a busy 2-core machine.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reenact_fx.api.training import LANDMARK_SIZE, ResBlock, Up, conv


class GAG(nn.Module):
    """image (B, 3, S, S) in [-1, 1], landmarks (B, 1, 64, 64) in [0, 1] -> (B, 3, S, S)."""

    def __init__(self, size: int = 128, width: int = 16):
        super().__init__()
        w = width
        c = 6 * w
        self.enc0, self.enc1 = conv(3, w), conv(w, 2 * w, 2)
        self.enc2, self.enc3 = conv(2 * w, 4 * w, 2), conv(4 * w, c, 2)
        strides = int(round(math.log2(LANDMARK_SIZE / (size // 8))))
        if strides < 0:
            raise ValueError(f"crop size {size} is too large for a {LANDMARK_SIZE} px landmark image")
        chans = [w] + [min(c, w * 2 ** (i + 1)) for i in range(strides)]
        chans[-1] = c
        lm: list[nn.Module] = [conv(1, chans[0])]
        lm += [conv(a, b, 2) for a, b in zip(chans[:-1], chans[1:])]
        if strides == 0:
            lm.append(conv(chans[0], c))
        self.landmarks = nn.Sequential(*lm)
        self.stages = nn.ModuleList(nn.Sequential(conv(2 * c, c, k=1), ResBlock(c))
                                    for _ in range(3))
        self.dec2, self.dec1, self.dec0 = Up(c, 4 * w), Up(8 * w, 2 * w), Up(4 * w, w)
        self.out = nn.Conv2d(2 * w, 3, 3, 1, 1, padding_mode="reflect")

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(image)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        h = self.enc3(e2)
        lm = self.landmarks(landmarks)
        for stage in self.stages:
            h = stage(torch.cat([h, lm], 1))
        h = torch.cat([self.dec2(h), e2], 1)
        h = torch.cat([self.dec1(h), e1], 1)
        h = torch.cat([self.dec0(h), e0], 1)
        return torch.tanh(self.out(h))
