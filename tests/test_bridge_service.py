"""The render service behind the host bridges, through its Python client: handshake, pixel equality
with Effect.render_frame, the analysis cache, concurrency, uploads and error messages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from reenact_fx.host.client import Client
from reenact_fx.host.protocol import PROTOCOL, ServiceError

FRAMES = (12, 3, 40, 0, 77)   # out of order, both ends


def start_service(socket_path, *extra) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "reenact_fx.cli", "serve", "--socket",
                             str(socket_path), "--idle-timeout", "300", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(socket_path):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("service did not start within 30 s")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    sock = tmp_path_factory.mktemp("svc") / "serve.sock"
    proc = start_service(sock)
    yield str(sock)
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def pair(faces):
    from reenact_fx import Effect
    from reenact_fx.media import read_still

    target, driver = str(faces / "source/s9.jpg"), str(faces / "driving/d0.mp4")
    with Effect() as fx:
        fx.analyze(target, driver)
        expected = {t: fx.render_frame(t) for t in FRAMES}
    spec = {"target": {"path": target}, "driver": {"path": driver}}
    return spec, read_still(target), expected


def test_handshake_refuses_another_version(service):
    with Client(service) as c:
        assert c.hello["protocol"] == PROTOCOL
    with pytest.raises(ServiceError, match=f"version {PROTOCOL + 1}.*speaks version {PROTOCOL}"):
        Client(service, protocol=PROTOCOL + 1)


def test_frames_equal_render_frame_in_any_order(service, pair):
    spec, source, expected = pair
    with Client(service) as c:
        for t in FRAMES:
            with_source = c.render(spec, t, source)
            decoded = c.render(spec, t, size=(source.shape[1], source.shape[0]))
            assert np.array_equal(with_source, expected[t]), t
            assert np.array_equal(decoded, expected[t]), t
        assert not np.array_equal(expected[40], source)   # the face did move


def test_analysis_cached_by_settings(service, pair):
    spec, source, expected = pair
    with Client(service) as c:
        c.request({"op": "analyze", "spec": spec})
        before = c.request({"op": "stats"})
        c.render(spec, 12, source)
        # a parameter of a component this effect does not use changes nothing
        c.render({**spec, "params": {"savgol": {"window": 0.5}}}, 12, source)
        same = c.request({"op": "stats"})
        assert same["analyses"] == before["analyses"]
        assert same["analysis_hits"] >= before["analysis_hits"] + 2
        c.render(spec, 13, source)
        changed = c.render({**spec, "params": {"delta": {"expression": 1.5}}}, 40, source)
        after = c.request({"op": "stats"})
    assert after["analyses"] == before["analyses"] + 1
    assert not np.array_equal(changed, expected[40])


def test_concurrent_renders(service, pair):
    spec, source, expected = pair
    jobs = [t for t in FRAMES for _ in range(2)]

    def one(t):
        with Client(service) as c:
            return t, c.render(spec, t, source)

    with ThreadPoolExecutor(4) as pool:
        for t, out in pool.map(one, jobs):
            assert np.array_equal(out, expected[t]), t


def test_uploaded_still_is_the_same_target(service, pair):
    spec, source, expected = pair
    with Client(service) as c:
        media = c.upload([source])
        up = {**spec, "target": {"upload": media}}
        assert np.array_equal(c.render(up, 40, source), expected[40])
        assert c.upload([source]) == media   # content-keyed


def test_errors_are_messages(service, pair, tmp_path):
    spec, source, _ = pair
    with Client(service) as c:
        missing = str(tmp_path / "nope.mp4")
        with pytest.raises(ServiceError, match="nope.mp4.*not found"):
            c.render({**spec, "driver": {"path": missing}}, 0, source)
        with pytest.raises(ServiceError, match="host frame is 100x80"):
            c.render(spec, 0, np.zeros((80, 100, 3), np.uint8))
        with pytest.raises(ServiceError, match="shm name"):
            c.request({"op": "render", "spec": spec, "frame": 0, "shm": "../etc/passwd",
                       "width": 4, "height": 4})
        with pytest.raises(ServiceError, match="delta.expresion.*did you mean 'expression'"):
            c.render({**spec, "params": {"delta": {"expresion": 2}}}, 0, source)
        with pytest.raises(ServiceError, match="unknown op"):
            c.request({"op": "explode"})
        # a new analysis not finished within the wait is reported as pending, not waited for
        slow = {**spec, "params": {"tracking": {"max_gap": 0.31}}}
        with pytest.raises(ServiceError, match="still analysing"):
            c.request({"op": "analyze", "spec": slow, "wait": 0})
        assert c.request({"op": "stats"})["ok"]   # the connection survived every error


def test_one_service_per_socket(service):
    proc = subprocess.run([sys.executable, "-m", "reenact_fx.cli", "serve", "--socket", service],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "another service owns" in proc.stderr
    with Client(service) as c:   # the first one still answers
        assert c.request({"op": "stats"})["ok"]


def test_live_session_passes_through_until_the_driver_shows_a_face(service, pair, tmp_path):
    """The live op (a frei0r mixer's driver input): no face in the driver yet -> the target frame
    comes back unchanged; once a face arrives, frame t moves the target's face."""
    import mmap
    from reenact_fx.host.protocol import SHM_DIR
    from reenact_fx.media import MediaReader

    spec, source, _ = pair
    live = {"target": spec["target"]}
    h, w = source.shape[:2]
    with MediaReader(spec["driver"]["path"]) as r:
        driver = [f for _, f in zip(range(6), (f for _, f in r.frames()))]
    name = f"reenactfx-test-{os.getpid()}"
    path = os.path.join(SHM_DIR, name)
    with open(path, "wb") as f:
        f.truncate(2 * w * h * 3)

    def frame(t, drv):
        canvas = np.zeros((h, w, 3), np.uint8)
        canvas[:drv.shape[0], :drv.shape[1]] = drv
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 2 * w * h * 3) as m:
            buf = np.ndarray((2, h, w, 3), np.uint8, buffer=m)
            buf[0], buf[1] = source, canvas
            c.request({"op": "live", "session": "t", "spec": live, "time": t / 25, "shm": name,
                       "width": w, "height": h})
            out = buf[0].copy()
            del buf
        return out

    try:
        with Client(service) as c:
            assert np.array_equal(frame(0, np.zeros((8, 8, 3), np.uint8)), source)
            outs = [frame(t, driver[t]) for t in range(1, 6)]
    finally:
        os.unlink(path)
    assert (outs[-1] != source).any(2).sum() > 500


def test_live_session_work_per_frame_is_bounded(faces):
    """A live session plans each frame from a bounded window of the driver frames before it, with
    one rest face: frame 70 is planned from as many frames as frame 55 (not from all 71), the
    target is analysed once, and the face follows the driver (its mouth opens when the driver's
    does)."""
    import math

    from reenact_fx.config.presets import Settings
    from reenact_fx.face import geometry as g
    from reenact_fx.host.live import WINDOW_S, LiveSession
    from reenact_fx.media import MediaReader, read_still

    target = str(faces / "source/s9.jpg")
    source = read_still(target)
    session = LiveSession(target, Settings())
    with MediaReader(str(faces / "driving/d0.mp4")) as r:
        driver = [f for _, f in zip(range(71), (f for _, f in r.frames()))]
    sizes, fx_ids, opening = {}, set(), {}
    try:
        for t, frame in enumerate(driver):
            out, k = session.render(t / 25, source, frame)
            assert k == t and out.shape == source.shape
            sizes[t] = session.fx.analysis.frame_count
            fx_ids.add(id(session.fx))
            a = session.fx.analysis
            opening[t] = float(g.mouth_opening(a.dst[-1]))
    finally:
        session.close()
    window = math.ceil(WINDOW_S * 25)
    assert sizes[10] == 11 and sizes[55] == sizes[70] == window
    assert len(fx_ids) == 1
    drv = {t: float(g.mouth_opening(p)) for t, p in session.points.items()
           if p is not None}
    ts = sorted(drv)
    assert np.corrcoef([drv[t] for t in ts], [opening[t] for t in ts])[0, 1] > 0.8
