"""The fine-grained landmark sequence generator (LSG) and its training critics, in torch.

From two key landmark sets the generator makes the K landmark sets in between, as shifts over their
linear interpolation: a Bi-LSTM runs over the K steps, each step seeing the interpolated landmarks, the
two keys and its position between them, and writes that step's shift.  All landmarks are the full
478-point mesh (flattened to 1434 numbers), in the window frame described below.

Adaptations for footage: (1) besides the two keys, the generator sees the frame just outside each key
(one step before the first key, one after the second).  A face-lost gap in a video always has those
neighbours, and the way the head moves at each key is exactly what linear interpolation throws away;
with it the in-betweens can carry the head's momentum.  When a neighbour is missing, the key itself is
passed (no motion).  (2) A sequence is generated in the frame of its first key: every landmark set of
the window mapped by the similarity that takes the first key into the canonical frame.  Head motion
within the window stays in the landmarks (in shared talking-head footage it is most of the motion, and
its momentum the most predictable part), while faces of any size and place look alike; linear
interpolation in that frame is exactly linear interpolation of the pixels.

Critics used only in training (see ``train.py``):

- ``RealnessCritic``  a Bi-LSTM over a whole sequence (key, in-betweens, key) -> "real motion" logit;
- ``IdentityCritic``  (a generated frame, a key) -> "the same person" logit;
- ``IdentityClassifier``  the identity support task: which training identity a landmark set belongs
  to; trained on real frames, then asked to recognise the keys' identity in the generated frames.

Sizes keep the shipped graph under 1.5 MB: landmarks (and key motions) are projected to a 40-dimensional
code (face meshes vary in a few dozen directions) before the LSTM, and shifts are written back through a
40-dimensional bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

from reenact_fx.api.training import DIM

CODE = 40
HIDDEN = 64


class LSG(nn.Module):
    """keys (B, 4, 1434) = [before first key, first key, second key, after second key], and the
    in-between positions tau (B, K) in (0, 1) -> in-between landmarks (B, K, 1434)."""

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, 1, DIM).clone())
        self.enc = nn.Linear(DIM, CODE)          # where the face is (shape and place)
        self.enc_motion = nn.Linear(DIM, CODE)   # how it moves at the keys (frame differences)
        # per step: codes of the interpolated landmarks, of both keys, the motion at both keys; tau
        self.lstm = nn.LSTM(5 * CODE + 1, HIDDEN, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(2 * HIDDEN, CODE), nn.LeakyReLU(0.2), nn.Linear(CODE, DIM))
        nn.init.zeros_(self.head[-1].weight)   # start as linear interpolation
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, keys: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        before, a, b, after = keys[:, 0:1], keys[:, 1:2], keys[:, 2:3], keys[:, 3:4]   # (B, 1, DIM)
        t = tau.unsqueeze(-1)                                       # (B, K, 1)
        lerp = a + (b - a) * t                                      # (B, K, DIM)
        k = tau.shape[1]
        # motion is a few hundredths of the eye distance a frame: scaled up to the shapes' range
        fixed = torch.cat([self.enc(a - self.mean), self.enc(b - self.mean),
                           self.enc_motion(10.0 * (a - before)),
                           self.enc_motion(10.0 * (after - b))], -1)
        steps = torch.cat([self.enc(lerp - self.mean), fixed.expand(-1, k, -1), t], -1)
        h, _ = self.lstm(steps)
        return lerp + self.head(h)


class RealnessCritic(nn.Module):
    """A landmark sequence (B, L, 1434) -> logit "real motion"; judged on frame-to-frame motion and
    the frames themselves, in a small code."""

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, 1, DIM).clone())
        self.enc = nn.Linear(DIM, CODE)
        self.lstm = nn.LSTM(2 * CODE, HIDDEN, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * HIDDEN, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        c = self.enc(seq - self.mean)
        motion = torch.cat([torch.zeros_like(c[:, :1]), c[:, 1:] - c[:, :-1]], 1)
        h, _ = self.lstm(torch.cat([c, 10.0 * motion], -1))
        return self.out(h.mean(1))


class IdentityCritic(nn.Module):
    """(a landmark set (B, 1434), a key of the sequence (B, 1434)) -> logit "the same person"."""

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, DIM).clone())
        self.net = nn.Sequential(nn.Linear(2 * DIM, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                                 nn.LeakyReLU(0.2), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x - self.mean, key - self.mean], 1))


class IdentityClassifier(nn.Module):
    """A landmark set (B, 1434) -> logits over the training identities (the identity support task)."""

    def __init__(self, mean: torch.Tensor, n_ids: int):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, DIM).clone())
        self.net = nn.Sequential(nn.Linear(DIM, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                                 nn.LeakyReLU(0.2), nn.Linear(128, n_ids))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - self.mean)


INPUTS = ("keys", "tau")
OUTPUTS = ("inbetween",)
