"""A Python client of the render service (tests, benchmarks, scripts); the C plugins speak the same
protocol (:mod:`.protocol`)."""

from __future__ import annotations

import mmap
import os
import socket
import threading
from typing import Any, Mapping

import numpy as np

from .protocol import (DEFAULT_WAIT, IO_TIMEOUT, PROTOCOL, SHM_DIR, ServiceError,
                       default_socket_path, recv_message, send_message)


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
