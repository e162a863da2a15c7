"""Plain data passed between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

N_LANDMARKS = 478  # mediapipe face mesh with refined irises


@dataclass(frozen=True)
class MediaInfo:
    """What a reader learnt of a file before decoding it: sizes are after rotation is applied."""

    path: str
    width: int
    height: int
    fps: Fraction          # average frame rate (25 for a still)
    frame_count: int       # frames in presentation order (1 for a still)
    duration: float        # seconds
    is_still: bool
    has_audio: bool
    has_alpha: bool
    rotation: int          # clockwise degrees applied to decoded frames (0, 90, 180, 270)
    times: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1))  # (frame_count,) seconds


@dataclass
class LandmarkTrack:
    """Face landmarks of one person over every frame of one media file.

    points: (T, 478, 3) float32 in pixels of the (rotated) frame; z is mediapipe's depth scaled by the
        frame width, so x, y and z share one unit.
    valid:  (T,) bool, a face was tracked in that frame (after gap filling: tracked or interpolated).
    filled: (T,) bool, the frame's landmarks were interpolated across a short gap.
    times:  (T,) float64 presentation time of each frame in seconds.
    """

    path: str
    size: tuple[int, int]          # (width, height)
    points: np.ndarray
    valid: np.ndarray
    times: np.ndarray
    filled: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # what the tracker wants the user to know
    _slack: float | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.filled is None:
            self.filled = np.zeros(len(self.points), bool)

    def __len__(self) -> int:
        return len(self.points)

    def index_at(self, t: float) -> int:
        """The frame shown at time ``t`` seconds: the last one whose time is <= t (clamped), with a
        tenth of a frame's slack, since containers round timestamps (Matroska to 1 ms)."""
        if self._slack is None:
            steps = np.diff(self.times)
            self._slack = 0.1 * float(np.median(steps)) if len(steps) else 1e-6
        i = int(np.searchsorted(self.times, t + self._slack, side="right")) - 1
        return min(max(i, 0), len(self.times) - 1)
