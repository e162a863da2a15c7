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
import time
from typing import Callable, Mapping

import numpy as np

from ..errors import ReenactError
from ..face.track import N_LANDMARKS, LandmarkTrack
from ..face.tracking import FaceTracker, fill_gaps
from ..media import MediaReader
from .analysis import Analysis


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


class StreamedPlan:
    """The analysis of media being tracked: planned again from the tracks' snapshots as they grow.

    ``tracks`` maps each role (target, driver) to a finished track or a :class:`StreamedTrack`
    notifying ``changed``; ``plan(tracks)`` plans them (convert, smooth), ``ahead(analysis)`` is the
    components' look-ahead in output frames.  Output frames below ``ready`` are final; once every
    tracker has ended, ``done`` and ``analysis`` is the full one."""

    def __init__(self, tracks: dict, changed: threading.Condition,
                 plan: Callable[[dict], Analysis], ahead: Callable[[Analysis], int]):
        self.tracks, self.changed, self._plan, self._ahead = tracks, changed, plan, ahead
        self.analysis: Analysis | None = None
        self.ready, self.done = 0, False
        self._lock = threading.Lock()

    def live(self) -> list[StreamedTrack]:
        return [s for s in self.tracks.values() if isinstance(s, StreamedTrack)]

    def ensure(self, t: int, *, to_the_end: bool = False, timeout: float | None = None) -> bool:
        """Plan until frame t is final (or, ``to_the_end``, until the tracking has ended); False
        when ``timeout`` seconds passed first.  A tracker's error is raised here."""
        if self.done or (t < self.ready and not to_the_end):
            return True
        deadline = None if timeout is None else time.monotonic() + timeout

        def wait() -> bool:   # with ``changed`` held
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            self.changed.wait(left)
            return True

        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        try:
            while not self.done and (to_the_end or t >= self.ready):
                with self.changed:
                    live = self.live()
                    for s in live:
                        if s.error is not None:
                            raise s.error
                    finished = all(s.track is not None for s in live)
                    if not (finished or self._time_to_plan(t, live)):
                        if not wait():
                            return False
                        continue
                    tracks = {r: s if isinstance(s, LandmarkTrack) else s.snapshot()
                              for r, s in self.tracks.items()}
                    final = self._final_counts()   # what the snapshots know, not what is known later
                try:
                    a = self._plan(tracks)
                except ReenactError:
                    if finished:
                        raise
                    with self.changed:       # no frame with a face on both sides yet
                        if not wait():
                            return False
                    continue
                self.analysis = a
                if finished:
                    self.tracks, self.ready, self.done = tracks, a.frame_count, True
                else:
                    self.ready = self._final_frames(final)
            return True
        finally:
            self._lock.release()

    def _time_to_plan(self, t: int, live: list[StreamedTrack]) -> bool:
        """Whether planning now brings frame t (``changed`` held): the first plan once every
        media shows a face; then as soon as frame t is final while nothing is (the first frame out
        early); later ones once half as many frames again are final, or the clip's end (each plan
        converts and smooths every frame so far: this keeps the total linear)."""
        if self.analysis is None:
            return all(s.has_face() for s in live)
        n = self.analysis.frame_count
        grown = int(1.5 * self.ready) + 16 if self.ready else 0
        return self._final_frames(self._final_counts()) >= min(n, max(t + 1, grown))

    def _final_counts(self) -> dict[str, int]:
        """Per media, how many leading frames are tracked for good (``changed`` held)."""
        return {r: len(s) if isinstance(s, LandmarkTrack) else s.final()
                for r, s in self.tracks.items()}

    def _final_frames(self, final: dict[str, int]) -> int:
        """Output frames whose plan is final when ``final`` leading frames of each media are."""
        a = self.analysis
        ok = (a.driver_index < final["driver"]) & (a.target_index < final["target"])
        known = len(ok) if ok.all() else int(np.argmin(ok))
        return known if known == len(ok) else max(0, known - self._ahead(a))

    def stop(self) -> None:
        for s in self.live():
            s.stop()
