"""The effect: analyse a target and a driver once, then render any frame, in any order.

``Effect.analyze`` tracks both media (streamed), maps them onto the output frame grid, converts and
smooths the landmarks of the whole sequence; everything a frame needs is then an array lookup, so
``render_frame(t)`` is exactly frame t of ``render()``.  This is the object a host bridge drives.

``analyze(..., stream=True)`` returns before the tracking ends: the media are tracked in background
threads and frame t is planned from the frames tracked so far once they reach the components'
look-ahead (``Converter.lookahead``, ``Smoother.lookahead``) past t, so it is still exactly frame t
of a full analysis; components without a bounded look-ahead (and ``effect.reference=neutral``, which
looks at the whole driver) make it track everything first, as without ``stream``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any, Callable, Mapping

import cv2
import numpy as np

from ..face import geometry as g
from .analysis import Analysis, track_info
from .cache import TrackCache
from ..components import Component, ConvertInput, GenerateInput
from ..face.keyframes import Keyframes
from ..face.controls import Rig
from ..face.crop import SquareCrop
from ..errors import MediaError, ParamError, ReenactError
from ..media import STILL_FPS, MediaReader, MediaWriter
from .outputs import OutputPlan, plan_output
from .schemas import CORE_SCHEMAS, component_values
from .registry import Registry, default_registry
from .stream import StreamedPlan, StreamedTrack
from .timing import Timing
from ..sequences import Stopwatch, prefetch
from ..face.tracking import FaceTracker, reference_index
from ..face.track import LandmarkTrack



class Effect:
    """Face reenactment of a target by a driver, with one component of each kind.

    >>> fx = Effect()                                        # delta, meshwarp, one_euro, feather
    >>> fx.analyze("portrait.jpg", "speech.mp4")
    >>> frame = fx.render_frame(10)                          # RGB uint8 (H, W, 3)
    >>> fx.render("out.mp4")
    """

    def __init__(self, converter: str | None = None, generator: str | None = None,
                 smoother: str | None = None, mixer: str | None = None,
                 params: Mapping[str, Mapping[str, Any]] | None = None,
                 registry: Registry | None = None, cache: bool | str | os.PathLike = True,
                 controls: Mapping[str, Any] | None = None):
        self.registry = registry or default_registry()
        # tracking results are cached on disk (True: the default folder, a path: that folder)
        self.cache_root = None if cache is False else (None if cache is True else os.fspath(cache))
        self.use_cache = cache is not False
        # keyframed expression controls: {"mode": "add"|"replace", "interpolation", "keys"}
        self.controls, self.controls_mode = None, "add"
        if controls:
            data = dict(controls)
            self.controls_mode = data.pop("mode", "add")
            if self.controls_mode not in ("add", "replace"):
                raise ParamError(f"expected add or replace, found {self.controls_mode!r}",
                                 key="controls.mode")
            self.controls = Keyframes.parse(data, source="controls")
        chosen = {"converter": converter, "generator": generator, "smoother": smoother,
                  "mixer": mixer}
        classes = {k: self.registry.get(k, v or self.registry.default(k)) for k, v in chosen.items()}
        params = dict(params or {})
        known = set(CORE_SCHEMAS) | {c.name for c in classes.values()} | set(classes)
        for owner in params:
            if owner not in known:
                raise ParamError(f"no component or stage named '{owner}' in this effect; settable: "
                                 f"{', '.join(sorted(known))}", key=owner)

        self.components: dict[str, Component] = {
            k: c(component_values(params, c.kind, c.name)) for k, c in classes.items()}
        self.settings = {name: s.resolve(params.get(name)) for name, s in CORE_SCHEMAS.items()}
        from ..learning.runtime import OnnxWeights

        for c in self.components.values():   # weights are checked now, not after the tracking
            if isinstance(c, OnnxWeights):
                c.session()
        self.analysis: Analysis | None = None
        self._readers: dict[str, MediaReader] = {}
        self._last: dict[str, tuple[int, np.ndarray]] = {}
        self._decode_lock = threading.Lock()
        self.timings = Stopwatch()   # seconds per stage, for benchmarks and --stats
        self._cache = None
        self._stream: StreamedPlan | None = None   # a streamed analysis, until its tracking ends
        self._head, self._head_lock = None, threading.Lock()
        # the checked output of the next render (plan_output), and what the user should hear about
        # it as soon as it is known (on_warning: a callable; else only collected in .warnings)
        self.output_plan: OutputPlan | None = None
        self.preview_plan: OutputPlan | None = None
        self.on_warning: Callable[[str], None] | None = None
        self.warnings: list[str] = []
        self._damaged: dict[str, list[int]] = {}

    # ---------------------------------------------------------------- analysis
    @property
    def converter(self):
        return self.components["converter"]

    @property
    def generator(self):
        return self.components["generator"]

    @property
    def smoother(self):
        return self.components["smoother"]

    @property
    def mixer(self):
        return self.components["mixer"]

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            if self.on_warning:
                self.on_warning(text)

    def plan_output(self, out, *, preview=None, target=None, driver=None,
                    players: bool = True) -> OutputPlan:
        """Check every output decision of a render to ``out`` (and ``preview``) before any work:
        the path (not empty, a device, a folder, an input; its folder writable), the codec's
        container and alpha; the extension comes from the codec when ``out`` has none.  Raises
        MediaError naming the path; the plan's warnings are reported through ``on_warning``."""
        from ..media.partials import sweep

        o = self.settings["output"]
        inputs = [p for p in (target, driver) if isinstance(p, (str, os.PathLike))]
        plan = plan_output(out, o["codec"], alpha=o["alpha"], audio=o["audio"], inputs=inputs,
                           players=players)
        pv = None
        if preview:
            pv = plan_output(preview, "h264", audio=o["audio"], inputs=inputs + [plan.path],
                             what="preview")
            if pv.path == plan.path:
                raise MediaError("the preview and the output are the same file", path=plan.path)
        sweep(os.path.dirname(os.path.abspath(plan.path)))   # partials of dead renders
        plan.requested, self.output_plan, self.preview_plan = os.fspath(out), plan, pv
        for w in plan.warnings:
            self._warn(w)
        return plan

    def _check_media_output(self) -> None:
        """The output decisions that depend on the opened inputs (their headers, no decoding)."""
        plan = self.output_plan
        if plan is None:
            return
        ti = self._readers["target"].info
        src = {"driver": self._readers.get("driver"), "target": self._readers["target"],
               "none": None}[plan.audio]
        info = src.info if src is not None else None
        plan.check_media(ti.width, ti.height, info.path if info else None,
                         audio_is_still=bool(info and info.is_still),
                         audio_has_stream=info.has_audio if info else None)
        for w in plan.warnings:
            self._warn(w)

    def analyze(self, target: str,
                driver: str | LandmarkTrack | Callable[[LandmarkTrack], LandmarkTrack] | None = None,
                progress: Callable[[str, int, int], None] | None = None, *,
                timing: Timing | None = None, stream: bool = False) -> Analysis:
        """Track both media and prepare every frame's landmarks (done once; then render freely).

        ``driver`` is a media path, or a landmark track (a synthetic performance), or a function
        making one from the target's track, or None when keyframed controls replace the driver.
        ``timing`` gives the output frames explicitly (rate, and per frame the target and driver
        times: a trimmed, retimed clip of a timeline); by default they are the target clip's frames
        (or, for a still, the driver's).  ``stream``: return once the first frames are planned and
        track the rest while rendering (see the module's docstring); the analysis returned then
        holds final values only for frames the render has reached, and its notes are complete
        once the render ends (``self.analysis``).
        """
        self.close()
        if driver is None and not (self.controls and self.controls_mode == "replace"):
            raise ReenactError("a driver is needed, unless keyframed controls replace it "
                               "(controls with mode: replace)", key="driver")
        if driver is not None and self.controls_mode == "replace":
            raise ReenactError("controls with mode: replace take the driver's place; give no "
                               "driver, or use mode: add", key="controls.mode")
        roles = {"target": target}
        if isinstance(driver, (str, os.PathLike)):
            roles["driver"] = driver
        for role, path in roles.items():
            self._readers[role] = MediaReader(str(path))
        self._check_media_output()
        self._timing = timing
        if stream and self._streamable(driver):
            try:
                self._start_streams()
                self._ensure(0)
            except BaseException:
                self.close()   # every tracker stops
                raise
        else:
            tracks = self._track_all(progress)
            target_track = tracks["target"]
            if driver is None:
                driver = self._performance
            if "driver" not in tracks:
                tracks["driver"] = driver if isinstance(driver, LandmarkTrack) \
                    else driver(target_track)
            self.analysis = self._plan(target_track, tracks["driver"], timing=timing)
        for c in self.components.values():
            c.prepare(self.analysis)
        return self.analysis

    # ---------------------------------------------------------------- streamed analysis
    def _streamable(self, driver) -> bool:
        return isinstance(driver, (str, os.PathLike)) and self.converter.lookahead is not None \
            and self.smoother.lookahead(25.0) is not None \
            and self.settings["effect"]["reference"] != "neutral"

    def _start_streams(self) -> None:
        """Each media tracked in its own thread (a cached track at once; a still in this thread,
        once the clips' trackers have started)."""
        self._cache = TrackCache(self.cache_root) if self.use_cache else None
        settings = self.settings["tracking"]
        changed = threading.Condition()
        tracks: dict = {}
        self._stream = StreamedPlan(
            tracks, changed,
            plan=lambda tr: self._plan(tr["target"], tr["driver"], timing=self._timing),
            ahead=lambda a: (self.converter.lookahead or 0) + self.smoother.lookahead(float(a.fps)))
        for role, reader in sorted(self._readers.items(), key=lambda kv: kv[1].info.is_still):
            key = self._cache.key(reader.path, settings) if self._cache else None
            hit = self._cache.load(key, path=reader.path) if self._cache else None
            if hit is None and reader.info.is_still:
                hit = self._tracked(reader, role)
            if hit is not None:
                tracks[role] = hit
                continue
            store = (lambda track, key=key: self._cache.store(key, track)) if self._cache else None
            tracks[role] = StreamedTrack(reader.path, settings, changed, on_done=store)

    def _ensure(self, t: int, *, to_the_end: bool = False, timeout: float | None = None) -> bool:
        """A streamed analysis planned until frame t is final (or to its end); False when
        ``timeout`` seconds passed first."""
        stream = self._stream
        if stream is None or (t < stream.ready and not to_the_end):
            return True
        ok = stream.ensure(t, to_the_end=to_the_end, timeout=timeout)
        self.analysis = stream.analysis
        if stream.done:
            self._stream = None   # a plain analysis from now on
        return ok

    def planned(self, t: int | None = None, timeout: float | None = None) -> bool:
        """Whether frame t of a streamed analysis is planned for good (None: every frame, the
        tracking ended, the notes complete), waiting up to ``timeout`` seconds for it (None: as
        long as it takes).  Always True for an analysis that was not streamed."""
        if t is None:
            return self._ensure(0, to_the_end=True, timeout=timeout)
        return self._ensure(t, timeout=timeout)

    def finish(self) -> Analysis:
        """Wait for a streamed analysis to end: the analysis of every frame, with all its notes."""
        self._ensure(0, to_the_end=True)
        return self._require()

    HEAD_PLATE_FRAMES = 12   # frames of a video target sampled for its background plate

    def _head_region(self):
        """The target's head region (person matte, body points, background plate), found the
        first time a frame's head moves (with its own reader: the render's decodes in order)."""
        from ..face.head import HeadRegion

        with self._head_lock:
            if self._head is None:
                with self.timings("head region"), MediaReader(self._readers["target"].path) as r:
                    n = r.info.frame_count
                    if r.info.is_still:
                        self._head = HeadRegion.of_still(r.frame_at(0))
                    else:
                        idx = np.unique(np.linspace(0, n - 1, self.HEAD_PLATE_FRAMES).round())
                        self._head = HeadRegion.of_video([r.frame_at(int(i)) for i in idx])
            return self._head

    def _performance(self, target: LandmarkTrack) -> LandmarkTrack:
        """The driver that keyframed controls replace: the target's reference face, at rest, for
        the keyframes' duration (a still) or the target's (a clip); the controls act after
        conversion, like on any driver."""
        ref = target.points[reference_index(target, "first")]
        if self._readers["target"].info.is_still:
            fps = float(STILL_FPS)
            times = np.arange(max(1, int(round(self.controls.duration() * fps)) + 1)) / fps
        else:
            times = target.times
        return LandmarkTrack(path="<keyframed controls>", size=target.size,
                             points=np.repeat(ref[None], len(times), 0).astype(np.float32),
                             valid=np.ones(len(times), bool), times=np.asarray(times, float))

    def _track_all(self, progress) -> dict[str, LandmarkTrack]:
        """Track every opened media, each in its own thread (mediapipe and FFmpeg release the GIL,
        so the target and the driver are tracked side by side on two cores)."""
        self._cache = TrackCache(self.cache_root) if self.use_cache else None
        both = _JointProgress(progress, "track", {r: rd.info.frame_count
                                                  for r, rd in self._readers.items()})
        stop = threading.Event()   # set when the caller is interrupted: the trackers stop too

        def guarded(part):
            def report(done, total):
                if stop.is_set():
                    raise _Stopped()
                if part:
                    part(done, total)
            return report

        with ThreadPoolExecutor(len(self._readers), thread_name_prefix="reenact-fx-track") as pool:
            jobs = {role: pool.submit(self._tracked, reader, role, guarded(both.part(role)))
                    for role, reader in self._readers.items()}
            try:
                return {role: job.result() for role, job in jobs.items()}
            except BaseException:
                stop.set()   # (Ctrl-C, SIGTERM, the other track's error) before the pool waits
                raise

    def _tracked(self, reader: MediaReader, role: str, progress=None) -> LandmarkTrack:
        """The landmark track of a media: from the analysis cache when this media was tracked
        with these settings before, else tracked now (and cached)."""
        cache, settings = self._cache, self.settings["tracking"]
        cb = progress
        key = cache.key(reader.path, settings) if cache else None
        hit = cache.load(key, path=reader.path) if cache else None
        if hit is not None:
            if cb:
                cb(len(hit), len(hit))
            return hit
        with FaceTracker(settings) as tracker, self.timings(f"decode+track {role}"):
            found = tracker.track_media(reader, progress=cb)  # gaps filled
        if cache:
            cache.store(key, found)
        return found

    def track(self, path: str, progress: Callable[[str, int, int], None] | None = None
              ) -> LandmarkTrack:
        """The landmark track of one media file (cached like an analysis's)."""
        self._cache = TrackCache(self.cache_root) if self.use_cache else None
        with MediaReader(str(path)) as reader:
            cb = (lambda d, n: progress("track", d, n)) if progress else None
            track = self._tracked(reader, "media", cb)
        track.notes = track.notes + [f"{reader.path}: {w}" for w in reader.warnings]
        return track

    def plan(self, driver: LandmarkTrack, *, target: LandmarkTrack | None = None,
             driver_reference: np.ndarray | None = None) -> Analysis:
        """Plan the analysed target again with another driver track (and optionally another target
        track, e.g. a window of the analysed one): conversion and smoothing only, no tracking, no
        ``prepare``.  ``driver_reference`` (478, 3): the driver's rest face, instead of choosing one
        in ``driver`` (a live session keeps one reference while its window moves on)."""
        a = self.finish()   # a streamed analysis is tracked to its end first
        self.analysis = self._plan(a.target_track if target is None else target, driver,
                                   driver_reference, self._timing)
        return self.analysis

    def _plan(self, tt: LandmarkTrack, dt: LandmarkTrack,
              driver_reference: np.ndarray | None = None, timing: Timing | None = None
              ) -> Analysis:
        ti = self._readers["target"].info
        di = self._readers["driver"].info if "driver" in self._readers else track_info(dt)
        notes = [f"{r.info.path}: {w}" for r in self._readers.values() for w in r.warnings]
        notes += tt.notes + dt.notes + (self._cache.notes if self._cache else [])
        # the output grid: the target clip's frames, or for a still the driver's duration at the
        # driver's average rate (a variable-rate driver is sampled by time like any other)
        if timing is None:
            grid = dt if ti.is_still else tt
            fps = di.fps if ti.is_still else ti.fps
            n = max(1, int(round((grid.times[-1] - grid.times[0]) * float(fps))) + 1)
            times = np.arange(n) / float(fps)
            t_times = d_times = times
        else:
            fps, t_times, d_times = timing.fps, timing.target_times, timing.driver_times
            times = np.arange(len(timing)) / float(fps)
            end = tt.times[-1] + 1.0 / float(ti.fps)
            if not ti.is_still and t_times.max() > end:
                notes.append(f"{ti.path}: the range runs past the target's end ({end:.2f}s); its "
                             f"last frame is held for {int((t_times > end).sum())} frames")
        t_idx = np.array([tt.index_at(t) for t in t_times], np.int64)
        d_idx = np.array([dt.index_at(t) for t in d_times], np.int64)
        d_end = dt.times[-1] + 1.0 / float(di.fps) if len(dt) else 0.0
        if (timing is not None or not ti.is_still) and len(dt) and d_times.max() > d_end:
            held = int((d_times > d_end).sum())
            notes.append(f"{di.path}: the driver ends at {dt.times[-1]:.2f}s; its last frame drives "
                         f"the last {held} frames of the target")
        if self.controls is not None and len(times):
            end = times[-1] + 1.0 / float(fps)
            if self.controls.duration() > end + 1e-6 and not (ti.is_still and "driver" not in self._readers):
                notes.append(f"controls: keys after {end:.2f}s (the output's end) have no effect; the "
                             f"last key is at {self.controls.duration():g}s")
        active = tt.valid[t_idx] & dt.valid[d_idx]
        if not active.any():
            raise ReenactError("no output frame has a face on both the target and the driver",
                               path=ti.path)

        eff = self.settings["effect"]
        d_ref = reference_index(dt, eff["reference_frame"] if eff["reference"] == "frame"
                                else eff["reference"])
        t_ref = reference_index(tt, "first")
        driver = dt.points[d_idx].copy()
        target = tt.points[t_idx].copy()
        d_rest = dt.points[d_ref] if driver_reference is None else np.asarray(driver_reference,
                                                                               np.float32)
        driver[~active] = d_rest   # keep the converters' arithmetic finite
        target[~active] = tt.points[t_ref]
        x = ConvertInput(driver=driver, driver_valid=active, driver_ref=d_rest,
                         target=target, target_valid=active, target_ref=tt.points[t_ref],
                         target_is_still=ti.is_still, fps=float(fps),
                         target_size=(ti.width, ti.height))
        with self.timings("convert"):
            dst = np.asarray(self.converter.convert(x), np.float32)
            if self.controls is not None:
                dst = self._apply_controls(dst, active, times)
        if dst.shape != target.shape or not np.isfinite(dst[active]).all():
            raise ReenactError(f"converter '{self.converter.name}' returned {dst.shape} or non-finite "
                               f"landmarks; expected {target.shape}")
        with self.timings("smooth"):
            dst = self.smoother.smooth(dst, active, float(fps))
            src = target if ti.is_still else self.smoother.smooth(target, active, float(fps))
        return Analysis(target=ti, driver=di, fps=Fraction(fps), size=(ti.width, ti.height),
                        target_index=t_idx, driver_index=d_idx, src=src, dst=dst,
                        driver_points=driver, active=active, target_track=tt, driver_track=dt,
                        notes=notes)

    def _apply_controls(self, dst: np.ndarray, active: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The keyframed controls laid over the converted landmarks (FACEGAN's selective editing:
        each control is a calibrated, local deformation of the face)."""
        curves = self.controls.at(times)
        out = dst.copy()
        for t in np.flatnonzero(active):
            values = {k: float(v[t]) for k, v in curves.items()}
            if any(values.values()):
                out[t] = Rig(dst[t]).apply(values)
        return out

    # ---------------------------------------------------------------- frames
    def _frame(self, role: str, index: int) -> np.ndarray:
        """Decoded frame ``index`` of the target or driver (the last one is kept: slow drivers and
        stills repeat frames).  Readers decode forwards, one caller at a time."""
        with self._decode_lock:
            last = self._last.get(role)
            if last is None or last[0] != index:
                with self.timings(f"decode {role}"):
                    try:
                        rgb = self._readers[role].frame_at(int(index))
                    except MediaError:
                        if last is None:
                            raise
                        # a damaged packet (the analysis skipped it too): hold the frame before
                        self._damaged.setdefault(role, []).append(int(index))
                        rgb = last[1]
                    self._last[role] = last = (index, rgb)
            return last[1]

    def damage_notes(self) -> list[str]:
        """Which decoded frames were damaged and replaced by the frame before them."""
        from ..sequences import runs

        notes = []
        for role, frames in self._damaged.items():
            idx = np.zeros(max(frames) + 1, bool)
            idx[sorted(set(frames))] = True
            spans = ", ".join(f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in runs(idx))
            notes.append(f"{self._readers[role].path}: frame(s) {spans} could not be decoded "
                         f"(damaged); the frame before each was repeated")
        return notes

    def _require(self) -> Analysis:
        if self.analysis is None:
            raise ReenactError("analyze(target, driver) must run before rendering")
        return self.analysis

    def crop_at(self, t: int) -> SquareCrop:
        """The aligned face crop of frame t: around where the face is and where it goes, at the
        frame's own resolution (resampling would only blur), at most effect.crop_size."""
        a = self._require()
        eff = self.settings["effect"]
        pts = np.vstack([a.src[t, :468, :2], a.dst[t, :468, :2]])
        lo, hi = pts.min(0), pts.max(0)
        margin = eff["crop_margin"]
        if self._moves_head(t):   # room for the hair and the neck, only where the head moves
            margin = max(margin, self.generator.crop_margin)
        return SquareCrop.around((lo + hi) / 2, float(max(hi - lo)) * margin, eff["crop_size"])

    def _moves_head(self, t: int) -> bool:
        a = self.analysis
        return self.generator.needs_head_region and \
            _head_motion(a.src[t], a.dst[t]) > HEAD_MOVES * g.face_size(a.src[t])

    def render_frame(self, t: int, *, matte: bool = False, source: np.ndarray | None = None):
        """Output frame ``t`` as RGB uint8 (H, W, 3); with ``matte=True`` also the face matte
        (H, W) float32 in [0, 1].  ``source``: the target frame to compose into instead of the
        decoded one (a host's own pixels, e.g. after upstream effects; not modified).  Safe to call
        from several threads at once."""
        a = self._require()
        if 0 <= t < a.frame_count:
            self._ensure(t)
            a = self.analysis
        else:
            raise ReenactError(f"frame {t} is outside 0..{a.frame_count - 1}", frame=t)
        frame = (source if source is not None else self._frame("target", a.target_index[t])).copy()
        driver = self._frame("driver", a.driver_index[t]) if self.wants_driver(t) else None
        return self.compose(t, frame, driver, matte=matte)

    def wants_driver(self, t: int) -> bool:
        """Whether frame t's generator needs the driver's pixels (else ``compose`` takes None)."""
        return bool(self.analysis.active[t]) and self.generator.needs_driver_pixels \
            and "driver" in self._readers

    def compose(self, t: int, frame: np.ndarray, driver: np.ndarray | None = None, *,
                matte: bool = False):
        """Frame t from given target pixels (pasted into in place) and driver pixels (when
        ``wants_driver(t)``).  Touches no reader, so several threads may compose different frames
        at once; a live host that brings its own driver frames calls this directly."""
        a = self.analysis
        if not a.active[t]:
            return (frame, np.zeros(frame.shape[:2], np.float32)) if matte else frame
        crop = self.crop_at(t)
        x = GenerateInput(image=None, src=g.transform_points(crop.affine, a.src[t]),
                          dst=g.transform_points(crop.affine, a.dst[t]), frame=t)
        if driver is not None:
            x.driver_image, x.driver_pts = driver, a.driver_points[t]
        with self.timings("generate"):
            x.image = crop.cut(frame)
            if self._moves_head(t):
                head = self._head_region()
                person = head.matte_at(frame)
                x.person = crop.cut(person)
                x.background = crop.cut(head.plate_at(frame, person))
                x.body = g.transform_points(crop.affine, head.body) if len(head.body) \
                    else head.body
            out = self.generator.generate(x)
        with self.timings("mix"):
            mixed = self.mixer.mix(frame, out, crop)
        return (mixed.image, mixed.matte()) if matte else mixed.image

    # ---------------------------------------------------------------- files
    def render(self, out: str, *, progress: Callable[[int, int], None] | None = None,
               preview: str | None = None, provenance: bool = True, watermark: str | None = None,
               c2pa: tuple[str, str | None] | None = None, players: bool = True) -> str:
        """Render every frame to ``out`` (codec, audio and alpha from the ``output`` settings);
        written atomically, never over an input.  Returns the path written (``out``, or ``out``
        with the codec's extension when it had none).

        ``provenance``: the container says the render is synthetic (tool, version, settings and
        source hashes); ``watermark``: text drawn on every frame; ``c2pa``: (key, certificate
        chain) PEM paths to sign a C2PA manifest with (see :mod:`reenact_fx.provenance`);
        ``players=False``: any codec FFmpeg can put in ``out``'s container (internal files)."""
        from .. import provenance as prov

        a = self._require()
        o = self.settings["output"]
        plan = self.output_plan
        if plan is None or getattr(plan, "requested", None) != os.fspath(out):
            plan = self.plan_output(out, preview=preview, target=a.target.path,
                                    driver=a.driver.path if "driver" in self._readers else None,
                                    players=players)
        self._check_media_output()
        if c2pa:
            if plan.codec == "png" or not plan.path.lower().endswith((".mp4", ".mov")):
                raise MediaError("a C2PA manifest can be embedded in .mp4 and .mov files only",
                                 path=plan.path)
            prov.check_signing(*c2pa)
        inputs = [a.target.path, a.driver.path]
        audio = {"driver": a.driver.path if "driver" in self._readers else None,
                 "target": a.target.path, "none": None}[o["audio"]]
        sources = {"target": a.target.path,
                   "driver": a.driver.path if "driver" in self._readers else None}
        record = prov.record(self._effective_settings(), sources,
                             {k: c.name for k, c in self.components.items()}) if provenance else None
        w, h = a.size
        writer = MediaWriter(plan.path, w, h, a.fps, codec=o["codec"], alpha=o["alpha"],
                             audio_from=audio, protect=inputs, provenance=record)
        pv = None
        self._damaged = {}
        try:
            if preview:
                pv_size = _preview_size(a)
                pv = MediaWriter(self.preview_plan.path if self.preview_plan else str(preview),
                                 *pv_size, a.fps, protect=inputs + [plan.path], audio_from=audio,
                                 provenance=record)

            for t, rgb, a8, side in self._rendered(o["alpha"], pv_size if pv else None,
                                                   range(a.frame_count)):
                if watermark:
                    prov.watermark(rgb, watermark)
                with self.timings("encode"):
                    writer.write(rgb, a8)
                    if pv is not None:
                        pv.write(side)
                if progress:
                    progress(t + 1, a.frame_count)
            self.finish()   # a streamed analysis: its trackers' notes, its tracks cached
        except BaseException:
            writer.abort()
            if pv is not None:
                pv.abort()
            raise
        with self.timings("finalize (flush, audio, rename)"):
            path = writer.close()
        if pv is not None:
            pv.close()
        if c2pa:
            with self.timings("sign (C2PA)"):
                prov.sign_c2pa(path, record or prov.record(self._effective_settings(), sources), *c2pa)
        for note in self.damage_notes() + self._writer_notes(writer, pv):
            self._warn(note)
        return path

    def _writer_notes(self, *writers) -> list[str]:
        """The writers' own warnings, less those the output plan already gave."""
        said = " ".join(self.output_plan.warnings) if self.output_plan else ""
        covered = {"odd frame size": "odd frame size", "no audio": "no audio",
                   "has no audio": "no audio", "still image": "no audio"}
        out = []
        for wr in writers:
            for note in (wr.warnings if wr is not None else []):
                if any(k in note and v in said for k, v in covered.items()):
                    continue
                out.append(note)
        return out

    def _effective_settings(self) -> dict:
        """What decides the look: components, their parameters, core stages, controls."""
        return {"components": {k: c.name for k, c in self.components.items()},
                "params": {c.name: dict(getattr(c, "p", {}) or {}) for c in self.components.values()},
                "core": {k: dict(v) for k, v in self.settings.items()},
                "controls": self.controls.to_dict() if self.controls is not None else None,
                "controls_mode": self.controls_mode}

    def frames(self, frames: range | None = None, *, alpha: bool = False):
        """Output frames ``frames`` (default: all), in order, as (t, rgb, alpha8 or None), through
        render()'s overlapped decode/compose pipeline: a chunk of a long render, each frame equal to
        ``render_frame(t)`` (alpha8: the face matte as uint8, when ``alpha``)."""
        a = self._require()
        frames = range(a.frame_count) if frames is None else frames
        if len(frames) and not (0 <= min(frames) and max(frames) < a.frame_count):
            raise ReenactError(f"frames {frames.start}..{frames.stop - 1} are outside "
                               f"0..{a.frame_count - 1}")
        for t, rgb, a8, _ in self._rendered(alpha, None, frames):
            yield t, rgb, a8

    def _rendered(self, alpha: bool, preview_size: tuple[int, int] | None, frames: range,
                  workers: int = 2):
        """(t, rgb, alpha8, preview) for each of ``frames``, in order.

        Three stages overlap: one thread decodes the target and driver frames in order (decoders
        run forwards), ``workers`` threads compose frames, and the caller encodes.
        """
        a = self.analysis

        def decoded():
            for t in frames:
                self._ensure(t)   # a streamed analysis: wait until frame t is planned for good
                at = self.analysis
                driver = self._frame("driver", at.driver_index[t]) \
                    if self.wants_driver(t) or preview_size else None
                target = self._frame("target", at.target_index[t])
                yield t, target.copy(), driver, target if preview_size else None

        def compose(t, frame, driver, original):
            rgb, mt = self.compose(t, frame, driver, matte=True) if alpha \
                else (self.compose(t, frame, driver), None)
            a8 = None if mt is None else (mt * 255 + 0.5).astype(np.uint8)
            side = self._preview(t, rgb, original, driver, preview_size) if preview_size else None
            return t, rgb, a8, side

        # frames in flight (prefetched + being composed) bounded by memory as well as by count:
        # an 8000x6000 still is 144 MB a frame
        w, h = a.size
        depth = int(max(1, min(2 * workers, RENDER_INFLIGHT_BYTES // max(1, w * h * 3 * 2))))
        with ThreadPoolExecutor(workers, thread_name_prefix="reenact-fx-render") as pool:
            pending: deque = deque()
            for item in prefetch(decoded(), depth=depth):
                pending.append(pool.submit(compose, *item))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _preview(self, t: int, result: np.ndarray, target: np.ndarray, driver: np.ndarray | None,
                 size: tuple[int, int]) -> np.ndarray:
        """driver | target | result, each with its landmarks drawn."""
        a = self.analysis
        h = size[1]
        panels = []
        if driver is None:
            driver = np.zeros((a.driver.height, a.driver.width, 3), np.uint8)
        for image, pts, colour in (
                (driver, a.driver_points[t], (80, 200, 255)),
                (target, a.src[t], (120, 255, 120)),
                (result, a.dst[t], (255, 120, 200))):
            s = h / image.shape[0]
            panel = cv2.resize(image, (int(round(image.shape[1] * s)) & ~1, h),
                               interpolation=cv2.INTER_AREA)
            if a.active[t]:
                for x, y in (pts[:468:2, :2] * s).astype(int):
                    cv2.circle(panel, (int(x), int(y)), 1, colour, -1, cv2.LINE_AA)
            panels.append(panel)
        row = np.hstack(panels)
        canvas = np.zeros((h, size[0], 3), np.uint8)
        canvas[:, :min(row.shape[1], size[0])] = row[:, :size[0]]
        return canvas

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        self._stream, self._head = None, None
        for r in self._readers.values():
            r.close()
        self._readers.clear()
        self._last.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


RENDER_INFLIGHT_BYTES = 512 << 20   # decoded and composed frames held at once while rendering
# a frame whose head moves further than this (in eye-corner distances) gets the whole-head
# treatment (room for the hair and the neck, the target's head region).  A video target keeping its
# own pose moves by less (its rigid points shift with the driver's expression: at most 1.4 % on the
# shared clips), so its head region is not computed and its frames are not slowed down.
HEAD_MOVES = 0.02


class _Stopped(Exception):
    """A tracker stopped because the render was interrupted."""


def _head_motion(src: np.ndarray, dst: np.ndarray) -> float:
    """Largest displacement (frame px) of the rigid face points under the head's 2-D motion from
    ``src`` to ``dst``: how far the head (not the expression) moves in a frame."""
    rig = list(g.RIGID)
    m = g.similarity_2d(src[rig, :2], dst[rig, :2])
    p = src[rig, :2].astype(np.float64)
    return float(np.linalg.norm(p @ m[:, :2].T + m[:, 2] - p, axis=1).max())


class _JointProgress:
    """One progress stage for work done in parallel parts (the target and the driver tracked at
    once): each part reports its own count, the callback sees the sum."""

    def __init__(self, callback, stage: str, totals: Mapping[str, int]):
        self.callback, self.stage = callback, stage
        self.totals = dict(totals)
        self.done = {k: 0 for k in totals}
        self.lock = threading.Lock()

    def part(self, name: str):
        if self.callback is None:
            return None

        def report(done: int, total: int) -> None:
            with self.lock:
                self.done[name], self.totals[name] = done, total
                self.callback(self.stage, sum(self.done.values()), sum(self.totals.values()))
        return report


def _preview_size(a: Analysis, height: int = 360) -> tuple[int, int]:
    width = 0
    for info in (a.driver, a.target, a.target):
        width += int(round(info.width * height / info.height)) & ~1
    return width, height
