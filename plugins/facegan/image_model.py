"""FACEGAN's face reenactor G_r and background mixer G_b (torch; training/export only).

Both are U-Nets (``learning.imagekit.UNet``), as in the paper:

- **reenactor**: the target image I_s and the landmark heatmap H_t (4 channels) -> the reenacted
  face I_fr (RGB, tanh) and its segmentation S_fr (face / hair / background logits) from a head on
  the same last decoder features (the paper's "CNN head added to the second last layer");
- **mixer**: the reenacted face I'_f (background removed), the target's background I_b (face and
  hair removed) and that removal mask m (7 channels) -> a colour image I_c and a mask M, output
  ``I_r = M * I_c + (1 - M) * I_b``.  The mask channel is an addition: the generator in front may be
  any (``meshwarp`` has no segmentation), so the mixer is told where its face is.
"""

from __future__ import annotations

import torch
from torch import nn

from reenact_fx.api.training import UNet


class Reenactor(nn.Module):
    """image (B, 3, S, S) in [-1, 1], heatmap (B, 1, S, S) in [0, 1] -> (image, segmentation
    logits (B, 3, S, S))."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = UNet(4, {"rgb": 3, "seg": 3}, width)

    def forward(self, image: torch.Tensor, heatmap: torch.Tensor):
        rgb, seg = self.net(torch.cat([image, heatmap * 2 - 1], 1))
        return torch.tanh(rgb), seg


class Mixer(nn.Module):
    """face (B, 3, S, S), background (B, 3, S, S) in [-1, 1], mask (B, 1, S, S) in [0, 1] ->
    (mixed image I_r, colour image I_c, mask M)."""

    def __init__(self, width: int = 12):
        super().__init__()
        self.net = UNet(7, {"rgb": 3, "mask": 1}, width, blocks=1)

    def forward(self, face: torch.Tensor, background: torch.Tensor, mask: torch.Tensor):
        rgb, m = self.net(torch.cat([face, background, mask * 2 - 1], 1))
        colour, m = torch.tanh(rgb), torch.sigmoid(m)
        return m * colour + (1 - m) * background, colour, m
