"""The render service behind the host bridges (OFX, frei0r): ``reenact-fx serve``.

Host-agnostic: a host plugin connects over a Unix domain socket, and frames travel through shared
memory (a file in /dev/shm the client creates and names), so only small JSON messages cross the socket.

Protocol (version :data:`PROTOCOL`).  Every message is a 4-byte big-endian length and a UTF-8 JSON
object.  The first request on a connection must be ``{"op": "hello", "protocol": N}``; another version
is refused with ``{"ok": false, "error": ...}`` and the connection is closed.  Then, any number of:

``upload_begin`` {width, height, fps, count, pixel_aspect}  -> {upload}
    a clip (or one still) the host decodes itself, sent frame by frame: ``upload_frames`` {upload,
    shm, count} appends ``count`` packed RGB frames from the shm file, ``upload_end`` {upload} ->
    {media}: a content-keyed name to use as ``{"upload": media}`` in a spec.
``render`` {spec, frame | time, shm, width, height, source, pixel_aspect, wait}
    analyses the spec once (cached by target, driver and effective settings; concurrent requests for
    one spec share one analysis) and renders one frame into the shm file (packed RGB, top-down).
    ``source: true``: the shm holds the host's own target frame, which is composed into (the host's
    pixels, e.g. after upstream effects); else the service decodes the target itself.
``analyze`` {spec, wait} -> {key, frames, fps, width, height, notes}
``live`` {session, spec without a driver, time, shm, width, height}
    the driver arrives as pixels (a frei0r mixer's second input): the shm holds the host's target
    frame then its driver frame; frame t is rendered from the driver frames seen up to t
    (:class:`LiveSession`) into the first.
``stats`` -> counters (analyses run and running, cache hits, renders)

A spec is ``{"target": {"path": P} | {"upload": M}, "driver": {...} | null, "preset": NAME|PATH,
"components": {kind: name}, "params": {owner: {name: value}}, "set": ["owner.name=value", ...],
"controls": {mode, interpolation, keys}}``; ``params`` of components the effect does not use are
ignored (a host page shows every method's parameters at once), ``set`` is checked like the CLI's
``--set``.  Errors come back as ``{"ok": false, "error": "..."}``; an analysis still running
after ``wait`` seconds answers ``{"ok": false, "pending": true}``.  Nothing here waits unbounded.

Frame t rendered here is :meth:`Effect.render_frame` (t) of the same settings, pixel for pixel.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ReenactError
from ..params import parse_assignments

PROTOCOL = 1
MAX_MESSAGE = 16 << 20          # a spec with per-frame control keys stays far below this
SHM_DIR = "/dev/shm"
SHM_NAME = re.compile(r"^reenactfx-[A-Za-z0-9_.-]{1,100}$")
IO_TIMEOUT = 30.0               # seconds a peer may take to send or read one message
DEFAULT_WAIT = 300.0            # seconds a render waits for its clip's analysis
MAX_CLIPS = 4                   # analysed clips kept in memory (least recently used dropped)
UPLOADS_MAX_BYTES = 4 << 30     # host-decoded clips kept on disk (oldest dropped)


class ServiceError(ReenactError):
    """The render service refused a request, or could not be reached."""


def default_socket_path() -> str:
    """$REENACT_FX_SOCKET, else $XDG_RUNTIME_DIR/reenact-fx/serve.sock, else
    /tmp/reenact-fx-UID/serve.sock (the C client computes the same path)."""
    explicit = os.environ.get("REENACT_FX_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "reenact-fx") if runtime and os.path.isabs(runtime) \
        else f"/tmp/reenact-fx-{os.getuid()}"
    return os.path.join(base, "serve.sock")


# ------------------------------------------------------------------------------------ framing
def send_message(sock: socket.socket, obj: Mapping[str, Any]) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict:
    (n,) = struct.unpack(">I", _recv_exact(sock, 4))
    if n > MAX_MESSAGE:
        raise ServiceError(f"message of {n} bytes is larger than the {MAX_MESSAGE} allowed")
    obj = json.loads(_recv_exact(sock, n))
    if not isinstance(obj, dict):
        raise ServiceError("expected a JSON object")
    return obj


# ------------------------------------------------------------------------------- shared memory
class SharedFrame:
    """A client-created file in /dev/shm, mapped for reading frames and writing the result."""

    def __init__(self, name: str, size: int):
        if not isinstance(name, str) or not SHM_NAME.match(name):
            raise ServiceError(f"shm name {name!r} is not a reenactfx-* name in {SHM_DIR}",
                               key="shm")
        self.path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise ServiceError(f"cannot open shared memory: {exc.strerror}", path=self.path) from None
        try:
            have = os.fstat(fd).st_size
            if have < size:
                raise ServiceError(f"holds {have} bytes, the request needs {size}", path=self.path)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def array(self, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
        return np.ndarray(shape, np.uint8, buffer=self.map, offset=offset)

    def close(self) -> None:
        self.map.close()


# ---------------------------------------------------------------------------------- the clips
def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _square(frame: np.ndarray, aspect: float) -> np.ndarray:
    """Non-square pixels resampled to square ones, so faces are tracked and warped undistorted."""
    import cv2

    w = max(1, int(round(frame.shape[1] * aspect)))
    return cv2.resize(frame, (w, frame.shape[0]), interpolation=cv2.INTER_LINEAR)


def _unsquare(frame: np.ndarray, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (width, frame.shape[0]), interpolation=cv2.INTER_AREA)


class Clip:
    """One analysed (target, driver, settings): its Effect, ready to render any frame."""

    def __init__(self, key: str):
        self.key = key
        self.done: Future = Future()
        self.fx = None
        self.decode_lock = threading.Lock()   # media readers decode forwards, one caller at a time

    def render(self, t: int, source: np.ndarray | None) -> np.ndarray:
        fx = self.fx
        a = fx.analysis
        # the target and driver readers are not thread-safe; composing is (Effect renders with
        # several compose workers itself), so only decoding is serialised
        with self.decode_lock:
            driver = fx._frame("driver", a.driver_index[t]) if fx._wants_driver(t) else None
            frame = source.copy() if source is not None \
                else fx._frame("target", a.target_index[t]).copy()
        return fx._compose(t, frame, driver, False)


class RenderService:
    """Serves analyses and frames of any number of clips to any number of clients."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, max_clips: int = MAX_CLIPS):
        from ..pipeline.cache import default_root

        self.cache_root = Path(cache_dir) if cache_dir else default_root()
        self.uploads_dir = self.cache_root / "uploads"
        self.max_clips = max_clips
        self.clips: OrderedDict[str, Clip] = OrderedDict()
        self.lock = threading.Lock()
        self.uploads: dict[str, dict] = {}
        self.sessions: OrderedDict[str, LiveSession] = OrderedDict()
        self.stats = {"analyses": 0, "analysis_hits": 0, "renders": 0, "uploads": 0}
        self.last_request = time.monotonic()

    # ------------------------------------------------------------ requests
    def handle(self, req: Mapping[str, Any]) -> dict:
        """One request -> one response; every failure becomes an error message."""
        self.last_request = time.monotonic()
        op = req.get("op")
        ops = {"render": self.render, "analyze": self.analyze, "live": self.live,
               "upload_begin": self.upload_begin,
               "upload_frames": self.upload_frames, "upload_end": self.upload_end,
               "stats": lambda r: self.stats_now()}
        if op not in ops:
            return {"ok": False, "error": f"unknown op {op!r}; known: {', '.join(sorted(ops))}"}
        try:
            return ops[op](req)
        except _Pending as p:
            return {"ok": False, "pending": True, "error": str(p)}
        except ReenactError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug must reach the host as a message, not kill the service
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    def stats_now(self) -> dict:
        with self.lock:
            running = sum(not c.done.done() for c in self.clips.values())
            return {"ok": True, **self.stats, "clips": len(self.clips), "analysing": running}

    def analyze(self, req) -> dict:
        clip = self._clip(req.get("spec"), float(req.get("wait", DEFAULT_WAIT)))
        a = clip.fx.analysis
        return {"ok": True, "key": clip.key, "frames": a.frame_count, "fps": float(a.fps),
                "width": a.size[0], "height": a.size[1], "notes": "\n".join(a.notes)}

    def render(self, req) -> dict:
        clip = self._clip(req.get("spec"), float(req.get("wait", DEFAULT_WAIT)))
        a = clip.fx.analysis
        n = a.frame_count
        if "frame" in req:
            t = int(req["frame"])
        elif "time" in req:
            t = int(round(float(req["time"]) * float(a.fps)))
        else:
            raise ServiceError("a render needs 'frame' or 'time'", key="frame")
        t_clamped = min(max(t, 0), n - 1)   # a host clip may be longer than the driver
        w, h = int(req.get("width", 0)), int(req.get("height", 0))
        aspect = float(req.get("pixel_aspect", 1.0) or 1.0)
        if w <= 0 or h <= 0:
            raise ServiceError(f"bad frame size {w}x{h}", key="width")
        shm = SharedFrame(req.get("shm"), w * h * 3)
        try:
            buf = shm.array((h, w, 3))
            source = None
            if req.get("source"):
                source = buf.copy()
                if aspect != 1.0:
                    source = _square(source, aspect)
                if (source.shape[1], source.shape[0]) != tuple(a.size):
                    raise ServiceError(f"the host frame is {source.shape[1]}x{source.shape[0]} "
                                       f"(square pixels) but the analysed target is "
                                       f"{a.size[0]}x{a.size[1]}", frame=t)
            elif aspect == 1.0 and (w, h) != tuple(a.size):
                raise ServiceError(f"asked for {w}x{h}, the target is {a.size[0]}x{a.size[1]}",
                                   frame=t)
            out = clip.render(t_clamped, source)
            if aspect != 1.0:
                out = _unsquare(out, w)
            buf[...] = out
        finally:
            shm.close()
        with self.lock:
            self.stats["renders"] += 1
        return {"ok": True, "frame": t_clamped, "frames": n, "clamped": t != t_clamped}

    def live(self, req) -> dict:
        """A frame of a live session: the driver arrives as frames (a frei0r mixer's second input)
        rather than as a file, so frame t is rendered from the driver frames seen up to t."""
        spec = req.get("spec")
        if not isinstance(spec, Mapping) or spec.get("driver") is not None:
            raise ServiceError("a live spec names a target and no driver", key="spec")
        target, t_key = self._media(spec, "target")
        if target is None:
            raise ServiceError("the spec names no target", key="spec.target")
        settings = self._settings(spec)
        sid = str(req.get("session", ""))
        key = hashlib.sha256(_canonical([sid, t_key, settings.effect_kwargs()]).encode()
                             ).hexdigest()[:24]
        with self.lock:
            session = self.sessions.get(key)
            if session is None:
                session = self.sessions[key] = LiveSession(target, settings)
                while len(self.sessions) > self.max_clips:
                    self.sessions.popitem(last=False)[1].close()
            self.sessions.move_to_end(key)
        w, h = int(req.get("width", 0)), int(req.get("height", 0))
        if w <= 0 or h <= 0:
            raise ServiceError(f"bad frame size {w}x{h}", key="width")
        shm = SharedFrame(req.get("shm"), 2 * w * h * 3)
        try:
            frames = shm.array((2, h, w, 3))
            out, t = session.render(float(req.get("time", 0.0)), frames[0].copy(), frames[1].copy())
            frames[0][...] = out
        finally:
            shm.close()
        with self.lock:
            self.stats["renders"] += 1
        return {"ok": True, "frame": t}

    # ------------------------------------------------------------ uploads
    def upload_begin(self, req) -> dict:
        w, h, count = int(req.get("width", 0)), int(req.get("height", 0)), int(req.get("count", 0))
        fps = float(req.get("fps", 25.0))
        if w <= 0 or h <= 0 or count <= 0 or not 0 < fps < 1000:
            raise ServiceError(f"bad upload: {w}x{h}, {count} frames at {fps} fps", key="upload")
        uid = hashlib.sha256(f"{time.time_ns()} {threading.get_ident()} {id(req)}".encode()
                             ).hexdigest()[:16]
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.uploads[uid] = {"width": w, "height": h, "count": count, "received": 0,
                                 "aspect": float(req.get("pixel_aspect", 1.0) or 1.0),
                                 "writer": _LosslessWriter(self.uploads_dir, count, fps),
                                 "hash": hashlib.sha256(f"{w}x{h}@{fps}/{count}".encode()),
                                 "started": time.monotonic()}
            abandoned = [self.uploads.pop(k) for k, u in list(self.uploads.items())
                         if time.monotonic() - u["started"] > 3600]
        for u in abandoned:   # by a client that went away
            u["writer"].abort()
        return {"ok": True, "upload": uid}

    def upload_frames(self, req) -> dict:
        """Frames are encoded as they arrive: memory stays one frame deep whatever the clip's length."""
        up = self._upload(req)
        k = int(req.get("count", 1))
        w, h = up["width"], up["height"]
        if k <= 0 or up["received"] + k > up["count"]:
            raise ServiceError(f"upload holds {up['count']} frames; {up['received']} sent, "
                               f"{k} more offered", key="count")
        shm = SharedFrame(req.get("shm"), k * w * h * 3)
        try:
            frames = shm.array((k, h, w, 3)).copy()
        finally:
            shm.close()
        for f in frames:
            up["hash"].update(f.tobytes())
            up["writer"].add(f if up["aspect"] == 1.0 else _square(f, up["aspect"]))
            up["received"] += 1
        return {"ok": True, "received": up["received"]}

    def upload_end(self, req) -> dict:
        up = self._upload(req)
        with self.lock:
            self.uploads.pop(req["upload"], None)
        if up["received"] != up["count"]:
            up["writer"].abort()
            raise ServiceError(f"upload ended after {up['received']} of {up['count']} frames",
                               key="upload")
        media = up["hash"].hexdigest()[:32]
        path = self._upload_path(media, up["count"])
        if path.exists():
            up["writer"].abort()
            os.utime(path)   # recently used: evicted last
        else:
            up["writer"].finish(path)
            self._evict_uploads(keep=path)
        with self.lock:
            self.stats["uploads"] += 1
        return {"ok": True, "media": media}

    def _evict_uploads(self, keep: Path) -> None:
        """Oldest uploads first, until the folder holds at most UPLOADS_MAX_BYTES (the newest,
        ``keep``, always stays); a clip in use is re-uploaded by its plugin if it goes."""
        files = sorted((p for p in self.uploads_dir.iterdir()
                        if p.suffix in (".png", ".mkv") and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= UPLOADS_MAX_BYTES:
                break
            if p != keep:
                total -= p.stat().st_size
                p.unlink(missing_ok=True)

    def _upload(self, req) -> dict:
        with self.lock:
            up = self.uploads.get(req.get("upload"))
        if up is None:
            raise ServiceError(f"no upload {req.get('upload')!r} in progress", key="upload")
        return up

    def _upload_path(self, media: str, count: int = 0) -> Path:
        """Where uploaded media lives: a still as PNG, a clip as FFV1; ``count`` 0: find it."""
        if not re.fullmatch(r"[0-9a-f]{32}", str(media)):
            raise ServiceError(f"bad media name {media!r}", key="upload")
        if count:
            return self.uploads_dir / f"{media}{'.png' if count == 1 else '.mkv'}"
        for ext in (".png", ".mkv"):
            p = self.uploads_dir / f"{media}{ext}"
            if p.exists():
                return p
        raise ServiceError(f"uploaded media {media} is not (or no longer) here; upload it again",
                           key="upload")

    # ------------------------------------------------------------ analysis
    def _media(self, spec: Mapping, role: str) -> tuple[str | None, Any]:
        """(path, cache-key part) of a spec's target or driver."""
        m = spec.get(role)
        if m is None:
            return None, None
        if not isinstance(m, Mapping) or len(m) != 1 or not ({"path", "upload"} & set(m)):
            raise ServiceError(f"expected {{\"path\": P}} or {{\"upload\": M}}, found {m!r}",
                               key=f"spec.{role}")
        if "upload" in m:
            path = str(self._upload_path(m["upload"]))
            return path, ("upload", m["upload"])
        path = os.path.abspath(os.path.expanduser(str(m["path"])))
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ServiceError(f"{role} file not found ({exc.strerror})", path=path) from None
        return path, ("file", path, st.st_size, st.st_mtime_ns)

    def _settings(self, spec: Mapping):
        from ..config.presets import Settings, load

        base = load(str(spec["preset"])) if spec.get("preset") else Settings()
        comps = spec.get("components") or {}
        if not isinstance(comps, Mapping):
            raise ServiceError("expected a mapping of kind: name", key="spec.components")
        settings = base.overridden(comps, {})
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise ServiceError("expected a mapping of owner: {name: value}", key="spec.params")
        from ..pipeline.effect import CORE_SCHEMAS

        used = set(settings.components.values()) | set(CORE_SCHEMAS)
        settings = settings.overridden({}, {o: v for o, v in params.items() if o in used})
        if spec.get("set"):   # the CLI's --set syntax (frei0r): checked like the CLI's
            sets = spec["set"]
            if isinstance(sets, str) or not isinstance(sets, (list, tuple)):
                raise ServiceError("expected a list of component.param=value", key="spec.set")
            settings = settings.overridden({}, parse_assignments(str(s) for s in sets))
        if spec.get("controls") is not None:
            settings.controls = spec["controls"]
        return settings

    def _clip(self, spec: Any, wait: float) -> Clip:
        if not isinstance(spec, Mapping):
            raise ServiceError("expected a spec object", key="spec")
        target, t_key = self._media(spec, "target")
        if target is None:
            raise ServiceError("the spec names no target", key="spec.target")
        driver, d_key = self._media(spec, "driver")
        settings = self._settings(spec)
        key = hashlib.sha256(_canonical([t_key, d_key, settings.effect_kwargs()]).encode()
                             ).hexdigest()[:24]
        with self.lock:
            clip = self.clips.get(key)
            fresh = clip is None
            if fresh:
                clip = self.clips[key] = Clip(key)
                evicted = [self.clips.popitem(last=False)[1]
                           for _ in range(max(0, len(self.clips) - self.max_clips))]
            else:
                self.clips.move_to_end(key)
                evicted = []
                self.stats["analysis_hits"] += 1
        for old in evicted:
            old.done.add_done_callback(lambda f, c=old: c.fx and c.fx.close())
        if fresh:
            threading.Thread(target=self._analyse, args=(clip, target, driver, settings),
                             name=f"reenact-fx-analyse-{key[:8]}", daemon=True).start()
        try:
            clip.done.result(timeout=max(0.0, wait))
        except FutureTimeout:
            raise _Pending(f"still analysing the clip (waited {wait:g}s); try again") from None
        except ReenactError:
            with self.lock:   # a failed analysis is retried by the next request (files may change)
                if self.clips.get(key) is clip:
                    del self.clips[key]
            raise
        return clip

    def _analyse(self, clip: Clip, target: str, driver: str | None, settings) -> None:
        try:
            from ..pipeline.effect import Effect

            fx = Effect(**settings.effect_kwargs())
            fx.analyze(target, driver)
            clip.fx = fx
            with self.lock:
                self.stats["analyses"] += 1
            clip.done.set_result(True)
        except ReenactError as exc:
            clip.done.set_exception(exc)
        except Exception as exc:
            clip.done.set_exception(ServiceError(f"analysis failed: {type(exc).__name__}: {exc}"))

    def close(self) -> None:
        with self.lock:
            clips = list(self.clips.values())
            sessions = list(self.sessions.values())
            self.clips.clear()
            self.sessions.clear()
        for session in sessions:
            session.close()
        for c in clips:
            if c.fx is not None:
                c.fx.close()


class LiveSession:
    """A target and a driver that arrives frame by frame.  Each driver frame is tracked on arrival
    (the first one also checked to be human); frame t is then ``Effect.render_frame(t)`` of the
    target driven by the landmark track of the driver frames seen up to t: causal, so smoothing
    only looks back, and the face stays where it was on frames without one."""

    def __init__(self, target: str, settings):
        self.target, self.settings = target, settings
        self.points: dict[int, np.ndarray | None] = {}
        self.times: list[float] = []
        self.trackers: dict[bool, Any] = {}
        self.lock = threading.Lock()

    def _fps(self) -> float:
        steps = np.diff(sorted(set(self.times)))
        steps = steps[steps > 1e-4]
        return float(round(1.0 / float(np.median(steps)), 3)) if len(steps) else 25.0

    def _track(self, rgb: np.ndarray) -> np.ndarray | None:
        from ..errors import FaceError
        from ..face.tracking import FaceTracker

        first = not any(p is not None for p in self.points.values())
        if first not in self.trackers:   # the human check once, on the first face
            tracking = dict(self.settings.params.get("tracking", {}))
            if not first:
                tracking["verify_human"] = False
            from ..face.tracking import TRACKING

            self.trackers[first] = FaceTracker(TRACKING.resolve(tracking))
        try:
            track = self.trackers[first].track_frames(
                [(0, rgb)], path="<driver input>", size=(rgb.shape[1], rgb.shape[0]),
                times=np.zeros(1))
        except FaceError:
            return None
        return track.points[0] if track.valid[0] else None

    def render(self, time_s: float, target: np.ndarray, driver: np.ndarray):
        from ..pipeline.effect import Effect
        from ..face.track import LandmarkTrack

        with self.lock:
            self.times.append(time_s)
            fps = self._fps()
            t = max(0, int(round(time_s * fps)))
            if t not in self.points:
                self.points[t] = self._track(driver)
            seen = {k: v for k, v in self.points.items() if k <= t and v is not None}
            if not seen:
                return target, t          # no driver face yet: the target passes through
            n = t + 1
            points = np.zeros((n, 478, 3), np.float32)
            valid = np.zeros(n, bool)
            for k, v in seen.items():
                points[k], valid[k] = v, True
            for k in range(n):            # hold the last face over frames without one
                if not valid[k]:
                    prev = [j for j in seen if j < k]
                    points[k] = seen[max(prev)] if prev else seen[min(seen)]
            track = LandmarkTrack(path="<driver input>", size=(driver.shape[1], driver.shape[0]),
                                  points=points, valid=np.ones(n, bool), times=np.arange(n) / fps)
            fx = Effect(**self.settings.effect_kwargs())
            try:
                a = fx.analyze(self.target, track)
                t_out = min(t, a.frame_count - 1)
                pixels = driver if fx.generator.needs_driver_pixels else None
                return fx._compose(t_out, target.copy(), pixels, False), t
            finally:
                fx.close()

    def close(self) -> None:
        for tr in self.trackers.values():
            tr.close()


class _Pending(Exception):
    pass


class _LosslessWriter:
    """Uploaded frames written as they arrive, losslessly: one frame as a PNG (a still target),
    more as FFV1 in packed RGB (bgr0; read back exactly) in Matroska, into a hidden partial file
    that ``finish`` renames into place."""

    def __init__(self, folder: Path, count: int, fps: float):
        self.count, self.fps = count, fps
        ext = ".png" if count == 1 else ".mkv"
        self.tmp = folder / f".upload.{os.getpid()}.{threading.get_ident()}.{time.time_ns()}.partial{ext}"
        self.still: np.ndarray | None = None
        self.container = self.stream = None

    def add(self, frame: np.ndarray) -> None:
        if self.count == 1:
            self.still = frame
            return
        import av
        from fractions import Fraction

        if self.container is None:
            self.container = av.open(str(self.tmp), "w", format="matroska")
            self.stream = self.container.add_stream("ffv1", rate=Fraction(self.fps).limit_denominator(1001))
            self.stream.width, self.stream.height = frame.shape[1], frame.shape[0]
            self.stream.pix_fmt = "bgr0"   # gbrp/rgb24 do not open with FFV1 here
        for p in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")
                                    .reformat(format="bgr0")):
            self.container.mux(p)

    def finish(self, path: Path) -> None:
        import cv2

        try:
            if self.count == 1:
                if self.still is None or not cv2.imwrite(str(self.tmp),
                                                         cv2.cvtColor(self.still, cv2.COLOR_RGB2BGR)):
                    raise ServiceError("cannot write the uploaded still", path=str(self.tmp))
            else:
                for p in self.stream.encode():
                    self.container.mux(p)
                self.container.close()
                self.container = None
            os.replace(self.tmp, path)
        finally:
            self.abort()

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        self.tmp.unlink(missing_ok=True)


def _write_lossless(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """What an upload of ``frames`` becomes on disk (tests compare against it)."""
    w = _LosslessWriter(path.parent, len(frames), fps)
    for f in frames:
        w.add(f)
    w.finish(path)


# --------------------------------------------------------------------------------- the server
class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        server: Server = self.server  # type: ignore[assignment]
        sock.settimeout(IO_TIMEOUT)
        with server.active_lock:
            server.active += 1
        try:
            hello = recv_message(sock)
            version = hello.get("protocol")
            if hello.get("op") != "hello" or version != server.protocol:
                send_message(sock, {"ok": False, "protocol": server.protocol, "error": (
                    f"protocol version {version!r} is not supported: this reenact-fx service "
                    f"speaks version {server.protocol}; install matching versions of the plugin "
                    f"and of reenact-fx")})
                return
            send_message(sock, {"ok": True, "protocol": server.protocol, "pid": os.getpid(),
                                "server": f"reenact-fx {_version()}"})
            while True:
                try:
                    req = recv_message(sock)
                except (ConnectionError, socket.timeout, struct.error):
                    return
                # a long analysis or render must not be cut off by the idle read timeout
                sock.settimeout(None)
                resp = server.service.handle(req)
                sock.settimeout(IO_TIMEOUT)
                send_message(sock, resp)
        except (ConnectionError, socket.timeout, OSError, ValueError, ServiceError):
            return   # the client went away or spoke garbage; nothing to answer
        finally:
            with server.active_lock:
                server.active -= 1
            server.service.last_request = time.monotonic()


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str, service: RenderService, protocol: int = PROTOCOL):
        self.service, self.protocol = service, protocol
        self.active, self.active_lock = 0, threading.Lock()
        super().__init__(path, _Handler)


def _version() -> str:
    from .. import __version__

    return __version__


def serve(socket_path: str | None = None, *, idle_timeout: float = 600.0,
          cache_dir: str | None = None, protocol: int = PROTOCOL, log=sys.stderr) -> int:
    """Run the service until idle for ``idle_timeout`` seconds (0: forever).  Returns an exit code:
    0, or 0 at once when another service already answers on the socket."""
    path = socket_path or default_socket_path()
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    # one service per socket: a lock file decides who binds; a stale socket is replaced
    import fcntl

    lock = open(path + ".lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"reenact-fx serve: another service owns {path}", file=log)
        return 0
    if os.path.exists(path):
        os.unlink(path)
    service = RenderService(cache_dir)
    server = Server(path, service, protocol)
    os.chmod(path, 0o600)
    print(f"reenact-fx serve: listening on {path} (protocol {protocol}, pid {os.getpid()})",
          file=log, flush=True)
    # import the effect's heavy modules now, while no one waits for them
    threading.Thread(target=lambda: __import__("reenact_fx.pipeline.effect"), daemon=True).start()

    def watchdog():
        while idle_timeout > 0:
            time.sleep(min(5.0, idle_timeout / 4))
            with server.active_lock:
                busy = server.active
            if not busy and time.monotonic() - service.last_request > idle_timeout:
                print(f"reenact-fx serve: idle for {idle_timeout:g}s, exiting", file=log, flush=True)
                server.shutdown()
                return

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)
        service.close()
        lock.close()
    return 0


# --------------------------------------------------------------------------------- the client
class Client:
    """A Python client of the service (tests, benchmarks, scripts); the C plugins speak the same."""

    def __init__(self, socket_path: str | None = None, timeout: float = IO_TIMEOUT,
                 protocol: int = PROTOCOL):
        self.path = socket_path or default_socket_path()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except OSError as exc:
            self.sock.close()
            raise ServiceError(f"no reenact-fx service answers ({exc.strerror})",
                               path=self.path) from None
        self.hello = self.request({"op": "hello", "protocol": protocol})
        self._shm: dict[int, tuple[str, int]] = {}

    def request(self, req: Mapping[str, Any]) -> dict:
        send_message(self.sock, req)
        resp = recv_message(self.sock)
        if not resp.get("ok"):
            raise ServiceError(resp.get("error", "request failed"))
        return resp

    def _shm_file(self, size: int) -> str:
        name = f"reenactfx-py-{os.getpid()}-{threading.get_ident()}-{id(self)}"
        path = os.path.join(SHM_DIR, name)
        with open(path, "wb") as f:
            f.truncate(size)
        return name

    def render(self, spec: Mapping, frame: int, source: np.ndarray | None = None,
               size: tuple[int, int] | None = None, wait: float = DEFAULT_WAIT) -> np.ndarray:
        """Frame ``frame`` as RGB uint8; ``source`` (H, W, 3) is the host's target frame."""
        w, h = (source.shape[1], source.shape[0]) if source is not None else size
        name = self._shm_file(w * h * 3)
        path = os.path.join(SHM_DIR, name)
        try:
            with open(path, "r+b") as f, mmap.mmap(f.fileno(), w * h * 3) as m:
                buf = np.ndarray((h, w, 3), np.uint8, buffer=m)
                if source is not None:
                    buf[...] = source
                self.request({"op": "render", "spec": spec, "frame": int(frame), "shm": name,
                              "width": w, "height": h, "source": source is not None,
                              "wait": wait})
                out = buf.copy()
                del buf
            return out
        finally:
            os.unlink(path)

    def upload(self, frames: list[np.ndarray], fps: float = 25.0) -> str:
        h, w = frames[0].shape[:2]
        uid = self.request({"op": "upload_begin", "width": w, "height": h, "fps": fps,
                            "count": len(frames)})["upload"]
        name = self._shm_file(w * h * 3)
        path = os.path.join(SHM_DIR, name)
        try:
            with open(path, "r+b") as f, mmap.mmap(f.fileno(), w * h * 3) as m:
                for fr in frames:
                    m[:] = np.ascontiguousarray(fr, np.uint8).tobytes()
                    self.request({"op": "upload_frames", "upload": uid, "shm": name, "count": 1})
        finally:
            os.unlink(path)
        return self.request({"op": "upload_end", "upload": uid})["media"]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------- the parameter page
def param_page(registry=None) -> str:
    """The host parameter page as tab-separated lines, generated from the components' schemas (the
    one source of truth) and written into the OFX bundle by its build:

        component  KIND  DEFAULT  NAME|NAME...
        param      OWNER  NAME  TYPE  DEFAULT  MIN  MAX  CHOICE|CHOICE...  HELP
        control    NAME  LO  HI  HELP
    """
    from ..face.controls import CONTROLS
    from ..pipeline.registry import DEFAULTS, default_registry
    from ..face.tracking import TRACKING
    from ..pipeline.effect import EFFECT

    reg = registry or default_registry()

    def clean(s: Any) -> str:
        return "" if s is None else str(s).replace("\t", " ").replace("\n", " ")

    lines = []
    kinds = ("converter", "generator", "smoother", "mixer")
    for kind in kinds:
        lines.append("\t".join(["component", kind, DEFAULTS[kind], "|".join(reg.names(kind))]))
    schemas = [TRACKING, EFFECT] + [reg.get(k, n).schema() for k in kinds for n in reg.names(k)]
    for s in schemas:
        for p in s.params:
            default = (("1" if p.default else "0") if p.type == "bool" else clean(p.default))
            lines.append("\t".join(["param", s.owner, p.name, p.type, default, clean(p.min),
                                    clean(p.max), "|".join(p.choices), clean(p.help)]))
    for c in CONTROLS:
        lines.append("\t".join(["control", c.name, clean(c.lo), clean(c.hi),
                                clean(f"{c.help} ({c.unit})")]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # python -m reenact_fx.host.service params  (used by the bridge's build)
    if sys.argv[1:] == ["params"]:
        sys.stdout.write(param_page())
        sys.exit(0)
    print("usage: python -m reenact_fx.host.service params", file=sys.stderr)
    sys.exit(2)
