"""The tables `reenact-fx analyze` prints: a clip's control traces (min, mean, max, peak), or, for a
still, its absolute measures with a word on why there are no traces."""

from __future__ import annotations

import numpy as np

from . import controls
from .track import LandmarkTrack


def _unit_width() -> int:
    return max(len("unit"), *(len(c.unit) for c in controls.CONTROLS)) + 2


def trace_table(track: LandmarkTrack, traces: dict[str, np.ndarray]) -> list[str]:
    """One line per control over the frames with a face: unit, min, mean, max, time of the peak."""
    valid, uw = track.valid, _unit_width()
    lines = [f"  {'control':<12}{'unit':<{uw}}{'min':>8}{'mean':>8}{'max':>8}  peak at"]
    for c in controls.CONTROLS:
        v = np.where(valid, traces[c.name], np.nan)
        peak = int(np.nanargmax(np.abs(v)))
        lines.append(f"  {c.name:<12}{c.unit:<{uw}}{np.nanmin(v):8.2f}{np.nanmean(v):8.2f}"
                     f"{np.nanmax(v):8.2f}  {track.times[peak]:.2f}s")
    return lines


def still_table(track: LandmarkTrack) -> list[str]:
    """A still has no motion: relative to itself every control is 0.  What it does have is its
    expression and pose, measured against a typical neutral face."""
    uw = _unit_width()
    values = controls.measure(track.points[int(np.flatnonzero(track.valid)[0])])
    lines = ["  a still: one frame, so there is no motion to trace (relative to itself every "
             "control is 0);",
             "  its own expression and head pose, measured against a typical neutral face "
             "(a neutral face reads about 0; yaw/pitch/roll: the pose):",
             f"  {'control':<12}{'unit':<{uw}}{'value':>8}"]
    for c in controls.CONTROLS:
        lines.append(f"  {c.name:<12}{c.unit:<{uw}}{values[c.name]:8.2f}")
    return lines
