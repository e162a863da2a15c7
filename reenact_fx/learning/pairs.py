"""Training pairs for landmark converters, sampled from a :class:`LandmarkDataset` (numpy only).

Talking-head footage has no expression performed by several people (FReeNet trained on RaFD's posed
expressions, shared across identities), so there is no real cross-identity pair with a ground truth.
Three kinds of sample stand in:

- ``self``: target and driver are one clip; the driver's frame t is the truth (same identity);
- ``synthetic``: the target is a synthetic identity of the driver's clip (``dataset.synthetic_identity``),
  its frame t is the truth, and the driver is the real clip or another synthetic identity of it:
  a cross-identity pair with a known answer;
- ``cross``: target and driver are different real people: no truth (adversarial and cycle terms).

Every array is in the canonical frame; references are each clip's reference (first tracked) frame,
as at render time with ``effect.reference=first``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ReenactError
from .dataset import LandmarkDataset, synthetic_identity

KINDS = ("self", "synthetic", "cross")


@dataclass
class PairBatch:
    kind: np.ndarray         # (B,) str: self | synthetic | cross
    target_ref: np.ndarray   # (B, 478, 3) the target's reference shape
    driver_ref: np.ndarray   # (B, 478, 3) the driver's reference shape
    driver: np.ndarray       # (B, 478, 3) the driver's shape at frame t
    truth: np.ndarray        # (B, 478, 3) the target performing frame t (zeros where unknown)
    has_truth: np.ndarray    # (B,) bool
    controls: np.ndarray     # (B, C) the driver frame's controls relative to its reference
    same_identity: np.ndarray  # (B,) bool target and driver are one (real) person
    driver_identity: np.ndarray  # (B,) int32 dataset identity of the driver's clip
    target_identity: np.ndarray  # (B,) int32 (synthetic: the clip's identity)


class PairSampler:
    """Random batches of converter training pairs; ``mix`` gives the share of each kind."""

    def __init__(self, ds: LandmarkDataset, rng: np.random.Generator,
                 mix: tuple[float, float, float] = (0.2, 0.5, 0.3),
                 strength: float | tuple[float, float] = 1.0):
        if len(ds) == 0:
            raise ValueError("the dataset is empty")
        self.ds, self.rng, self.strength = ds, rng, strength
        self.mix = np.asarray(mix, float) / np.sum(mix)
        clips = np.unique(ds.clip)
        self.ref_row = {int(c): ds.reference_row(int(c)) for c in clips}
        self.moving = [int(c) for c in clips if (ds.clip == c).sum() > 1]   # clips with motion
        if not self.moving:
            raise ValueError("the dataset has no clip with more than one frame to learn motion from")
        self.rows = {c: np.flatnonzero(ds.clip == c) for c in self.moving}
        self.clip_identity = {int(c): int(ds.identity[ds.clip == c][0]) for c in clips}
        ids = np.unique(ds.identity)
        self.multi_identity = len(ids) > 1
        self.all_clips = [int(c) for c in clips]

    def _strength(self) -> float:
        """A synthetic identity's strength: fixed, or uniform in a (lo, hi) range."""
        if isinstance(self.strength, tuple):
            return float(self.rng.uniform(*self.strength))
        return float(self.strength)

    def _clip(self, weighted: bool = True) -> int:
        """A moving clip, chosen in proportion to its frame count."""
        sizes = np.array([len(self.rows[c]) for c in self.moving], float)
        return int(self.rng.choice(self.moving, p=sizes / sizes.sum() if weighted else None))

    def _other_target(self, identity: int) -> int:
        """A clip (moving or still) of another identity."""
        others = [c for c in self.all_clips if self.clip_identity[c] != identity]
        return int(self.rng.choice(others))

    def batch(self, n: int) -> PairBatch:
        ds, rng = self.ds, self.rng
        kinds = rng.choice(KINDS, size=n, p=self.mix)
        if not self.multi_identity:
            kinds[kinds == "cross"] = "synthetic"
        out = {k: np.zeros((n, 478, 3), np.float32) for k in ("target_ref", "driver_ref", "driver",
                                                                "truth")}
        has_truth = np.zeros(n, bool)
        same = np.zeros(n, bool)
        controls = np.zeros((n, ds.controls.shape[1]), np.float32)
        d_id = np.zeros(n, np.int32)
        t_id = np.zeros(n, np.int32)
        for i, kind in enumerate(kinds):
            c = self._clip()
            row = int(rng.choice(self.rows[c]))
            ref = ds.shapes[self.ref_row[c]]
            frame = ds.shapes[row]
            controls[i] = ds.controls[row]
            d_id[i] = t_id[i] = self.clip_identity[c]
            if kind == "self":
                out["target_ref"][i], out["driver_ref"][i] = ref, ref
                out["driver"][i] = out["truth"][i] = frame
                has_truth[i] = same[i] = True
            elif kind == "synthetic":
                pair = np.stack([ref, frame])
                tgt = synthetic_identity(pair, rng, strength=self._strength())
                drv = synthetic_identity(pair, rng, strength=self._strength()) \
                    if rng.random() < 0.5 else pair
                out["target_ref"][i], out["truth"][i] = tgt
                out["driver_ref"][i], out["driver"][i] = drv
                has_truth[i] = True
            else:
                c2 = self._other_target(self.clip_identity[c])
                out["target_ref"][i] = ds.shapes[self.ref_row[c2]]
                out["driver_ref"][i], out["driver"][i] = ref, frame
                t_id[i] = self.clip_identity[c2]
        return PairBatch(kind=kinds, has_truth=has_truth, controls=controls, same_identity=same,
                         driver_identity=d_id, target_identity=t_id, **out)

    def real_pairs(self, n: int, same: bool) -> tuple[np.ndarray, np.ndarray]:
        """Real (shape, reference) pairs: of one person (same=True) or of two (same=False)."""
        ds, rng = self.ds, self.rng
        shapes = np.zeros((n, 478, 3), np.float32)
        refs = np.zeros((n, 478, 3), np.float32)
        for i in range(n):
            c = self._clip()
            shapes[i] = ds.shapes[int(rng.choice(self.rows[c]))]
            c2 = c if same or not self.multi_identity else self._other_target(self.clip_identity[c])
            refs[i] = ds.shapes[self.ref_row[c2]]
        return shapes, refs


def training_set(data: str) -> LandmarkDataset:
    """The dataset's train split (all of it when nothing is held out); it needs a clip to learn
    motion from."""
    ds = LandmarkDataset.load(data)
    train = ds.subset("train")
    train = train if len(train) else ds
    if not any((train.clip == c).sum() > 1 for c in np.unique(train.clip)):
        raise ReenactError("the training split has no clip with more than one tracked frame (only "
                           "stills): add talking-head clips, or hold fewer identities out",
                           path=data)
    return train


def validation_batch(data: str, n: int = 256, seed: int = 12345) -> PairBatch | None:
    """A fixed batch of pairs with a truth (self and synthetic) from the held-out identities, or
    None when the dataset holds none out (or they have no motion)."""
    val = LandmarkDataset.load(data).subset("val")
    try:
        return PairSampler(val, np.random.default_rng(seed), mix=(0.3, 0.7, 0.0)).batch(n)
    except ValueError:
        return None


def motions(ds: LandmarkDataset) -> np.ndarray:
    """Every frame's motion from its clip's reference frame."""
    ref = np.empty_like(ds.shapes)
    for c in np.unique(ds.clip):
        ref[ds.clip == c] = ds.shapes[ds.reference_row(int(c))]
    return ds.shapes - ref
