"""The render service under faults: garbage, lying and oversized frames, clients that disconnect
mid-frame, more clients than it serves at once, a client killed with its shared memory open, the
service killed and restarted.  It must not crash, must leave no /dev/shm file of a dead peer, and
its memory must stay bounded (measured from /proc)."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from reenact_fx.host.protocol import MAX_MESSAGE, PROTOCOL
from reenact_fx.host.client import Client
from reenact_fx.host.service import MAX_CLIENTS
from test_bridge_service import start_service

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self") or not os.path.isdir("/dev/shm"),
                                reason="needs Linux /proc and /dev/shm")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def framed(obj) -> bytes:
    b = json.dumps(obj).encode()
    return struct.pack(">I", len(b)) + b


def raw(path, data: bytes, hello: bool = True, read: bool = True) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    got = b""
    try:
        if hello:
            s.sendall(framed({"op": "hello", "protocol": PROTOCOL}))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while read:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    finally:
        s.close()
    return got


def answers(path, within: float = 30.0) -> bool:
    """The service at ``path`` answers a request (retried while it is starting)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with Client(path, timeout=20) as c:
                return c.request({"op": "stats"})["ok"]
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture()
def service(tmp_path):
    sock = tmp_path / "serve.sock"
    proc = start_service(sock, "--cache-dir", str(tmp_path / "cache"))
    yield proc, str(sock), tmp_path
    if proc.poll() is None:
        proc.terminate()
        proc.wait(20)


def test_garbage_lies_and_disconnects_do_not_hurt_it(service):
    proc, path, _ = service
    assert answers(path)
    base = rss_mb(proc.pid)
    cases = [
        b"\x00" * 3,                                          # a cut length
        os.urandom(200),                                      # noise
        struct.pack(">I", 2**32 - 1) + b"x",                  # a 4 GB frame announced
        struct.pack(">I", MAX_MESSAGE) + b"{" * 1000,         # a large frame, cut mid-way
        struct.pack(">I", 50) + b"\xff" * 50,                 # not UTF-8
        framed([1, 2, 3]),                                    # JSON, not an object
        framed({"op": ["render"]}),                           # an op of the wrong type
        framed({"op": "render", "spec": 7, "frame": "x"}),    # fields of the wrong types
        framed({"op": "upload_begin", "width": 1e12, "height": -1, "count": "many"}),
        framed({"op": "upload_frames", "upload": None, "shm": "../../etc/passwd"}),
    ]
    for data in cases:
        for hello in (True, False):
            raw(path, data, hello=hello)
    # oversized frames, really sent: the service reads and drops them, one at a time per client
    big = struct.pack(">I", MAX_MESSAGE) + b" " * MAX_MESSAGE
    for _ in range(3):
        raw(path, big)
    assert proc.poll() is None, proc.stderr.read()
    assert answers(path)
    time.sleep(0.5)
    grown = rss_mb(proc.pid) - base
    peak = rss_mb(proc.pid, "VmHWM")
    print(f"service RSS {base:.0f} MB -> +{grown:.0f} MB after the garbage; peak {peak:.0f} MB")
    assert grown < 120, f"memory grew by {grown:.0f} MB"


def test_more_clients_than_it_serves_at_once(service):
    proc, path, _ = service
    base = rss_mb(proc.pid)
    socks = []
    try:
        for _ in range(MAX_CLIENTS + 16):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(path)
            socks.append(s)
        time.sleep(1.0)
        refused = 0
        for s in socks[-16:]:           # the last ones are told at once to come back later
            n = struct.unpack(">I", s.recv(4))[0]
            msg = json.loads(s.recv(n))
            refused += not msg["ok"] and "connections at once" in msg["error"]
        assert refused >= 8, refused
        held = rss_mb(proc.pid) - base
    finally:
        for s in socks:
            s.close()
    time.sleep(1.0)
    assert proc.poll() is None
    assert answers(path), "the service answers once the crowd has gone"
    print(f"{MAX_CLIENTS + 16} idle clients held {held:.0f} MB")
    assert held < 200


def test_dead_clients_shared_memory_is_removed_and_a_killed_service_restarts(service, tmp_path):
    proc, path, work = service
    # a host process that dies with its frame buffer still in /dev/shm
    child = subprocess.run([sys.executable, "-c",
                            "import os; n=f'/dev/shm/reenactfx-py-{os.getpid()}-1-1';"
                            "open(n,'wb').truncate(4096); print(n)"], capture_output=True, text=True)
    leaked = child.stdout.strip()
    assert os.path.exists(leaked)
    proc.send_signal(signal.SIGKILL)     # the service killed: its socket file stays behind
    proc.wait(10)
    assert os.path.exists(path)
    again = start_service(path, "--cache-dir", str(work / "cache"))
    try:
        assert answers(path), "a new service replaces the stale socket"
        assert not os.path.exists(leaked), "the dead client's shared memory was removed"
        again.send_signal(signal.SIGTERM)    # SIGTERM: a clean exit that removes the socket
        assert again.wait(20) == 0
        assert not os.path.exists(path)
    finally:
        if again.poll() is None:
            again.kill()
            again.wait(10)
