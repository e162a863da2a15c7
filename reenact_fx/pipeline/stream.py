"""A media tracked in a background thread while the render reads what is known so far.

The tracker sees frames in order; a frame's landmarks are *final* once nothing tracked later can
change them.  A tracked frame is final at once; a frame without a face is final once its gap is
closed by a tracked frame (``fill_gaps`` then interpolates or holds it) or has lasted longer than
``max_gap`` (it then stays invalid whatever follows).  ``snapshot`` gives the track with every later
frame invalid, gaps filled as ``fill_gaps`` fills them, and how many leading frames are final: with
components that read a bounded number of frames ahead, planning that snapshot gives the final frames
exactly as planning the whole track does.
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping

import numpy as np

from ..face.track import N_LANDMARKS, LandmarkTrack
from ..face.tracking import FaceTracker, fill_gaps
from ..media import MediaReader


class Stopped(Exception):
    """The render no longer wants this track."""


class StreamedTrack:
    """Track ``path`` with its own reader in a thread; ``changed`` is notified per frame."""

    def __init__(self, path: str, settings: Mapping, changed: threading.Condition, *,
                 on_done: Callable[[LandmarkTrack], None] | None = None,
                 progress: Callable[[int, int], None] | None = None):
        self.reader = MediaReader(path)   # its own decoder: the render reads the file too
        info = self.reader.info
        self.path, self.size = info.path, (info.width, info.height)
        self.times = np.asarray(info.times, np.float64)
        n = len(self.times)
        self.points = np.zeros((n, N_LANDMARKS, 3), np.float32)
        self.valid = np.zeros(n, bool)
        self.max_gap = float(settings["max_gap"])
        self.done = 0                  # frames the tracker has been through
        self.last_face = -1            # the last of them with a face
        self.track: LandmarkTrack | None = None   # the whole track, gaps filled, when finished
        self.error: BaseException | None = None
        self.changed, self._stop = changed, threading.Event()
        self._settings, self._on_done, self._progress = dict(settings), on_done, progress
        self._thread = threading.Thread(target=self._run, name="reenact-fx-track", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self.times)

    def _run(self) -> None:
        try:
            with FaceTracker(self._settings) as tracker:
                track = tracker.track_media(self.reader, progress=self._progress, sink=self._seen)
            if self._on_done:
                self._on_done(track)
            with self.changed:
                self.track = track
                self.changed.notify_all()
        except BaseException as exc:   # handed to the render, which raises it
            with self.changed:
                self.error = exc
                self.changed.notify_all()
        finally:
            self.reader.close()

    def _seen(self, i: int, pts: np.ndarray | None) -> None:
        if self._stop.is_set():
            raise Stopped()
        with self.changed:
            if pts is not None:
                self.points[i], self.valid[i], self.last_face = pts, True, i
            self.done = i + 1
            self.changed.notify_all()

    def final(self) -> int:
        """How many leading frames are final (call with ``changed`` held)."""
        n, done = len(self.times), self.done
        if self.track is not None:
            return n
        gap_from = self.last_face + 1
        if gap_from < done and done < n and self.times[done] - self.times[gap_from] > \
                self.max_gap + 1e-9:
            return done            # the open gap is already too long to be filled
        return gap_from

    def has_face(self) -> bool:
        return self.track is not None or self.last_face >= 0

    def snapshot(self) -> LandmarkTrack:
        """The track so far (later frames invalid), gaps filled (call with ``changed`` held)."""
        if self.track is not None:
            return self.track
        done = self.done
        valid = np.zeros(len(self.times), bool)
        valid[:done] = self.valid[:done]
        return fill_gaps(LandmarkTrack(path=self.path, size=self.size, points=self.points.copy(),
                                       valid=valid, times=self.times), self.max_gap)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
