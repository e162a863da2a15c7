"""Smoother ``savgol``: Savitzky-Golay polynomial smoothing over a time window (zero phase)."""

from __future__ import annotations

import numpy as np

from reenact_fx.api import Param, Smoother, hookimpl, runs


class SavgolSmoother(Smoother):
    name = "savgol"
    version = "1.0"
    summary = "Savitzky-Golay filter: fits a low-order polynomial in a sliding window"
    params = (
        Param("window", "float", 0.2, "window length in seconds", 0.02, 5.0),
        Param("order", "int", 2, "polynomial order (lower = smoother)", 1, 5),
    )

    def lookahead(self, fps: float) -> int:
        """A frame within a window of a run's end is fitted to the last window: its value
        changes until the run is a whole window longer."""
        return int(round(self.p["window"] * fps)) | 1

    def smooth(self, points: np.ndarray, valid: np.ndarray, fps: float) -> np.ndarray:
        # scipy.signal takes a second or more to import: not for every effect that never uses it
        from scipy.signal import savgol_filter

        out = points.astype(np.float32, copy=True)
        for a, b in runs(valid):
            n = b - a
            win = int(round(self.p["window"] * fps)) | 1  # odd
            win = min(win, n if n % 2 else n - 1)
            if win <= self.p["order"]:
                continue  # too short to fit: leave as is
            out[a:b] = savgol_filter(points[a:b].astype(np.float64), win, self.p["order"], axis=0,
                                     mode="interp")
        return out


@hookimpl
def reenact_fx_components():
    return [SavgolSmoother]
