"""The result of analysing a target and a driver: per output frame, everything rendering needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
import numpy as np

from ..face.track import LandmarkTrack, MediaInfo


@dataclass
class Analysis:
    """Everything rendering needs, per output frame t (arrays of length T)."""

    target: MediaInfo
    driver: MediaInfo
    fps: Fraction
    size: tuple[int, int]
    target_index: np.ndarray      # (T,) target frame shown at t
    driver_index: np.ndarray      # (T,) driver frame driving t
    src: np.ndarray               # (T, 478, 3) where the target's face is (smoothed)
    dst: np.ndarray               # (T, 478, 3) where it must go (converted, smoothed)
    driver_points: np.ndarray     # (T, 478, 3) the driver's landmarks in its own frame
    active: np.ndarray            # (T,) False: no face on either side, the target passes through
    target_track: LandmarkTrack
    driver_track: LandmarkTrack
    notes: list[str] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.active)


def track_info(track: LandmarkTrack) -> MediaInfo:
    """MediaInfo of a driver that is a landmark track, not a file."""
    n = len(track)
    fps = Fraction(round((n - 1) / (track.times[-1] - track.times[0]))) if n > 1 else Fraction(25)
    return MediaInfo(path=track.path, width=track.size[0], height=track.size[1], fps=fps,
                     frame_count=n, duration=n / float(fps), is_still=False, has_audio=False,
                     has_alpha=False, rotation=0, times=track.times)
