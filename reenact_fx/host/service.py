"""The render service behind the host bridges (OFX, frei0r): ``reenact-fx serve``.

A host plugin connects over a Unix domain socket and speaks the protocol of :mod:`.protocol`; frames
travel through shared memory.  The service keeps analysed clips (:class:`Clip`, an :class:`Effect`
each, least recently used dropped), clips the host uploads (:mod:`.uploads`) and live sessions
(:mod:`.live`).  Frame t rendered here is :meth:`Effect.render_frame` (t) of the same settings, pixel
for pixel.
"""

from __future__ import annotations

import hashlib
import json
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

from ..errors import ReenactError, brief, clip
from ..params import parse_assignments
from ..pipeline.schemas import CORE_SCHEMAS
from .live import LiveSession
from .protocol import (DEFAULT_WAIT, IO_TIMEOUT, PROTOCOL, SharedFrame, ServiceError,
                       default_socket_path, recv_message, send_message)
from .uploads import UploadWriter

MAX_CLIPS = 4                   # analysed clips kept in memory (least recently used dropped)
UPLOADS_MAX_BYTES = 4 << 30     # host-decoded clips kept on disk (oldest dropped)
MAX_CLIENTS = 64                # connections served at once (each is a thread)


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

    def render(self, t: int, source: np.ndarray | None) -> np.ndarray:
        return self.fx.render_frame(t, source=source)


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
        if not isinstance(op, str) or op not in ops:   # (an op that is a list: found by fuzzing)
            return {"ok": False, "error": f"unknown op {brief(op)}; known: {', '.join(sorted(ops))}"}
        try:
            return ops[op](req)
        except _Pending as p:
            return {"ok": False, "pending": True, "error": clip(str(p))}
        except ReenactError as exc:
            return {"ok": False, "error": clip(str(exc))}
        except (TypeError, ValueError, KeyError, AttributeError) as exc:   # a malformed field
            return {"ok": False, "error": clip(f"malformed '{op}' request: {type(exc).__name__}: {exc}")}
        except Exception as exc:  # a bug must reach the host as a message, not kill the service
            return {"ok": False, "error": clip(f"internal error: {type(exc).__name__}: {exc}")}

    def stats_now(self) -> dict:
        with self.lock:
            running = sum(not c.done.done() for c in self.clips.values())
            return {"ok": True, **self.stats, "clips": len(self.clips), "analysing": running}

    def analyze(self, req) -> dict:
        wait = float(req.get("wait", DEFAULT_WAIT))
        clip = self._clip(req.get("spec"), wait)
        self._planned(clip, None, wait)   # every frame tracked: the notes are complete
        a = clip.fx.analysis
        return {"ok": True, "key": clip.key, "frames": a.frame_count, "fps": float(a.fps),
                "width": a.size[0], "height": a.size[1], "notes": "\n".join(a.notes)}

    def render(self, req) -> dict:
        wait = float(req.get("wait", DEFAULT_WAIT))
        clip = self._clip(req.get("spec"), wait)
        a = clip.fx.analysis
        n = a.frame_count
        if "frame" in req:
            t = int(req["frame"])
        elif "time" in req:
            t = int(round(float(req["time"]) * float(a.fps)))
        else:
            raise ServiceError("a render needs 'frame' or 'time'", key="frame")
        t_clamped = min(max(t, 0), n - 1)   # a host clip may be longer than the driver
        self._planned(clip, t_clamped, wait)   # streamed: tracked far enough for frame t?
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
                                 "writer": UploadWriter(self.uploads_dir, count, fps),
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

    def _planned(self, clip: Clip, t: int | None, wait: float) -> None:
        """Frame t (None: every frame) of the clip's streamed analysis planned within ``wait``
        seconds, else pending; a tracking that failed drops the clip, so the next request
        analyses it again (the files may have changed)."""
        try:
            if clip.fx.planned(t, timeout=wait):
                return
        except ReenactError:
            with self.lock:
                if self.clips.get(clip.key) is clip:
                    del self.clips[clip.key]
            clip.fx.close()
            raise
        what = "the clip" if t is None else f"the clip up to frame {t}"
        raise _Pending(f"still tracking {what} (waited {wait:g}s); try again")

    def _analyse(self, clip: Clip, target: str, driver: str | None, settings) -> None:
        try:
            from ..pipeline.effect import Effect

            fx = Effect(**settings.effect_kwargs())
            # streamed: a host's first frames render while the rest of the clip is tracked
            fx.analyze(target, driver, stream=True)
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


class _Pending(Exception):
    pass


# --------------------------------------------------------------------------------- the server
class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        server: Server = self.server  # type: ignore[assignment]
        sock.settimeout(IO_TIMEOUT)
        with server.active_lock:
            server.active += 1
            crowded = server.active > MAX_CLIENTS
        try:
            if crowded:   # each client is a thread: refuse more than MAX_CLIENTS at once
                send_message(sock, {"ok": False, "error": f"the service serves {MAX_CLIENTS} "
                                    "connections at once; try again when one closes"})
                return
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
    request_queue_size = 128   # a burst of hosts connecting at once waits, not EAGAIN

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
    from .leftovers import sweep_shm, sweep_uploads

    sweep_shm()                          # frames of hosts that died since the last service
    sweep_uploads(service.uploads_dir)   # uploads a killed service left half-written
    server = Server(path, service, protocol)
    os.chmod(path, 0o600)
    print(f"reenact-fx serve: listening on {path} (protocol {protocol}, pid {os.getpid()})",
          file=log, flush=True)
    # import the effect's heavy modules now, while no one waits for them
    threading.Thread(target=lambda: __import__("reenact_fx.pipeline.effect"), daemon=True).start()

    def watchdog():
        while True:
            time.sleep(min(5.0, idle_timeout / 4) if idle_timeout > 0 else 5.0)
            sweep_shm()
            if idle_timeout <= 0:
                continue
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
