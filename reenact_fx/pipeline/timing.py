"""An explicit output frame grid for ``Effect.analyze``: which target and driver times each output
frame shows (a clip's trims, frame rate and time warp on an editor's timeline, mapped by time)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import ReenactError


@dataclass(frozen=True)
class Timing:
    """Output frame t is shown at ``t / fps``; it shows the target frame at ``target_times[t]`` and is
    driven by the driver frame at ``driver_times[t]`` (seconds from each media's first frame; times
    outside a media hold its first or last frame)."""

    fps: Fraction
    target_times: np.ndarray
    driver_times: np.ndarray

    def __post_init__(self):
        tt = np.asarray(self.target_times, np.float64).reshape(-1)
        dt = np.asarray(self.driver_times, np.float64).reshape(-1)
        if len(tt) == 0 or len(tt) != len(dt):
            raise ReenactError(f"a timing needs as many driver times as target times (at least "
                               f"one), found {len(tt)} and {len(dt)}", key="timing")
        if not (np.isfinite(tt).all() and np.isfinite(dt).all()):
            raise ReenactError("a timing's times must be finite", key="timing")
        if Fraction(self.fps) <= 0:
            raise ReenactError(f"invalid frame rate {self.fps}", key="timing.fps")
        object.__setattr__(self, "fps", Fraction(self.fps))
        object.__setattr__(self, "target_times", tt)
        object.__setattr__(self, "driver_times", dt)

    def __len__(self) -> int:
        return len(self.target_times)
