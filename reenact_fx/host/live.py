"""Live sessions: a target driven by frames that arrive one by one (a frei0r mixer's second input).

A stream gives no random access to the driver, so frame t is made from the driver frames seen up to
t: causal, smoothing looks back only.  The work per frame is constant: the target is analysed once
(one :class:`Effect` per session, its components prepared once), each driver frame is tracked once
on arrival, and frame t is planned from a bounded window of the frames before it (``WINDOW_S``
seconds, longer than any smoother's memory) with the session's first driver face as the rest face.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import FaceError
from ..face.track import LandmarkTrack
from ..face.tracking import TRACKING, FaceTracker

WINDOW_S = 2.0          # seconds of driver history a live frame is planned from


class LiveSession:
    """A target and a driver that arrives frame by frame.  Each driver frame is tracked on arrival
    (the first one also checked to be human); the face stays where it was on frames without one."""

    def __init__(self, target: str, settings):
        self.target, self.settings = target, settings
        self.points: dict[int, np.ndarray | None] = {}
        self.times: list[float] = []
        self.trackers: dict[bool, FaceTracker] = {}
        self.reference: np.ndarray | None = None     # the first driver face: the rest face
        self.fx = None                               # the target's Effect, analysed once
        self.lock = threading.Lock()

    def _fps(self) -> float:
        steps = np.diff(sorted(set(self.times)))
        steps = steps[steps > 1e-4]
        return float(round(1.0 / float(np.median(steps)), 3)) if len(steps) else 25.0

    def _track(self, rgb: np.ndarray) -> np.ndarray | None:
        first = self.reference is None
        if first not in self.trackers:   # the human check once, on the first face
            tracking = dict(self.settings.params.get("tracking", {}))
            if not first:
                tracking["verify_human"] = False
            self.trackers[first] = FaceTracker(TRACKING.resolve(tracking))
        try:
            track = self.trackers[first].track_frames(
                [(0, rgb)], path="<driver input>", size=(rgb.shape[1], rgb.shape[0]),
                times=np.zeros(1))
        except FaceError:
            return None
        return track.points[0] if track.valid[0] else None

    def _window(self, t: int, fps: float, size: tuple[int, int]) -> LandmarkTrack:
        """The driver frames t-W+1 .. t (W from WINDOW_S), each held from the last face before it."""
        lo = max(0, t - int(np.ceil(WINDOW_S * fps)) + 1)
        seen = sorted(k for k, v in self.points.items() if v is not None and k <= t)
        held = [k for k in seen if k <= lo]
        last = self.points[held[-1]] if held else self.points[seen[0]]
        points = np.empty((t - lo + 1, 478, 3), np.float32)
        for k in range(lo, t + 1):
            p = self.points.get(k)
            if p is not None:
                last = p
            points[k - lo] = last
        n = len(points)
        return LandmarkTrack(path="<driver input>", size=size, points=points,
                             valid=np.ones(n, bool), times=np.arange(n) / fps)

    def _target_window(self, t: int, n: int, fps: float) -> LandmarkTrack:
        """The analysed target track over the same times as the driver window (a video target)."""
        tt = self.fx.analysis.target_track
        times = (t - n + 1 + np.arange(n)) / fps
        idx = np.array([tt.index_at(s) for s in times], np.int64)
        return LandmarkTrack(path=tt.path, size=tt.size, points=tt.points[idx],
                             valid=tt.valid[idx], times=np.arange(n) / fps)

    def render(self, time_s: float, target: np.ndarray, driver: np.ndarray):
        from ..pipeline.effect import Effect   # mediapipe, PyAV: loaded when a session starts

        with self.lock:
            self.times.append(time_s)
            fps = self._fps()
            t = max(0, int(round(time_s * fps)))
            if t not in self.points:
                self.points[t] = self._track(driver)
                if self.reference is None and self.points[t] is not None:
                    self.reference = self.points[t]
            if self.reference is None or not any(
                    v is not None for k, v in self.points.items() if k <= t):
                return target, t          # no driver face yet: the target passes through
            size = (driver.shape[1], driver.shape[0])
            window = self._window(t, fps, size)
            if self.fx is None:
                self.fx = Effect(**self.settings.effect_kwargs())
                self.fx.analyze(self.target, window)
            still = self.fx.analysis.target.is_still
            tw = None if still else self._target_window(t, len(window), fps)
            a = self.fx.plan(window, target=tw, driver_reference=self.reference)
            last = a.frame_count - 1
            pixels = driver if self.fx.generator.needs_driver_pixels else None
            return self.fx.compose(last, target.copy(), pixels), t

    def close(self) -> None:
        for tr in self.trackers.values():
            tr.close()
        if self.fx is not None:
            self.fx.close()
