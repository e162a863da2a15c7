"""The render-service protocol (``reenact-fx serve``): framing, shared-memory frames, socket path.

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

import json
import mmap
import os
import re
import socket
import struct
from typing import Any, Mapping

import numpy as np

from ..errors import ReenactError

PROTOCOL = 1
MAX_MESSAGE = 16 << 20          # a spec with per-frame control keys stays far below this
SHM_DIR = "/dev/shm"
SHM_NAME = re.compile(r"^reenactfx-[A-Za-z0-9_.-]{1,100}$")
IO_TIMEOUT = 30.0               # seconds a peer may take to send or read one message
DEFAULT_WAIT = 300.0            # seconds a render waits for its clip's analysis


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
