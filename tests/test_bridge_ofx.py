"""The OFX plugin, loaded through the C ABI by the project's ctypes test host: describe, the
parameter page, pixel equality with Effect.render_frame (any order, several threads, 8/16/float,
odd row layouts), both contexts, and the failure cases (no service program, another protocol
version, a service that hangs or is killed mid-render) -> passthrough and a host message."""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ofx_bridge" / "testhost"))
import bridge  # noqa: E402
from ofxhost import Clip, Host  # noqa: E402

FRAMES = (40, 3, 77, 12)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    why = bridge.build()
    if why:
        pytest.skip(why)
    mp = pytest.MonkeyPatch()
    sock = tmp_path_factory.mktemp("ofx") / "serve.sock"
    mp.setenv("REENACT_FX_SOCKET", str(sock))
    mp.setenv("REENACT_FX_SERVE", bridge.serve_program())
    h = Host(str(bridge.BUNDLE))
    yield h
    from reenact_fx.host.client import Client
    from reenact_fx.host.protocol import ServiceError

    try:   # the service the plugin started: stop it
        with Client(str(sock)) as c:
            os.kill(c.hello["pid"], signal.SIGTERM)
    except (ServiceError, OSError):
        pass
    mp.undo()


@pytest.fixture(scope="module")
def media(faces):
    from reenact_fx import Effect
    from reenact_fx.media import read_still

    target, driver = str(faces / "source/s9.jpg"), str(faces / "driving/d0.mp4")
    with Effect() as fx:
        fx.analyze(target, driver)
        expected = {t: fx.render_frame(t) for t in FRAMES}
    return {"target": target, "driver": driver, "source": read_still(target), "expected": expected}


def still_instance(host, media, context="filter", **clip):
    inst = host.instance(context, source=Clip([media["source"]] * 78, fps=25, **clip))
    inst.set("driverFile", media["driver"])
    inst.set("targetMode", "still")
    return inst


def test_describe_and_page(host):
    from reenact_fx.face.controls import CONTROLS
    from reenact_fx.pipeline.registry import default_registry

    assert set(host.supported_contexts()) == {"OfxImageEffectContextFilter",
                                              "OfxImageEffectContextGeneral"}
    filt, gen = host.describe_in_context("filter"), host.describe_in_context("general")
    assert list(filt.clips) == ["Source", "Output"]
    assert list(gen.clips) == ["Source", "Output", "Driver"]
    assert gen.clips["Driver"].props.get("OfxImageClipPropOptional") == 1
    page = filt.params.params
    reg = default_registry()
    for kind in ("converter", "generator", "smoother", "mixer"):
        options = page[f"method_{kind}"].props.values["OfxParamPropChoiceOption"]
        assert options == ["auto"] + reg.names(kind)
        for name in reg.names(kind):
            for p in reg.get(kind, name).params:   # every schema parameter, with its default
                ofx = page[f"p_{name}_{p.name}".replace(".", "_")]
                if p.type == "float":
                    assert ofx.props.get("OfxParamPropDefault") == pytest.approx(p.default)
                    help_text = p.help.replace("\t", " ").replace("\n", " ")
                    assert ofx.props.get("OfxParamPropHint") == help_text[:1023]
    for c in CONTROLS:
        ctl = page[f"ctl_{c.name}"]
        assert ctl.type == "OfxParamTypeDouble" and ctl.props.get("OfxParamPropAnimates") == 1
        assert (ctl.props.get("OfxParamPropMin"), ctl.props.get("OfxParamPropMax")) == (c.lo, c.hi)
    assert page["driverFile"].props.get("OfxParamPropStringMode") == "OfxParamStringIsFilePath"


def test_frames_equal_render_frame_out_of_order_and_threaded(host, media):
    inst = still_instance(host, media)
    before = len(host.messages)
    for t in FRAMES:
        assert np.array_equal(inst.render(t), media["expected"][t]), t
    jobs = [t for t in FRAMES for _ in range(3)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(inst.render, jobs))
    for t, out in zip(jobs, outs):
        assert np.array_equal(out, media["expected"][t]), t
    assert len(host.messages) == before, host.messages[before:]


@pytest.mark.parametrize("depth,layout", [("OfxBitDepthShort", "padded"),
                                          ("OfxBitDepthFloat", "negative"),
                                          ("OfxBitDepthByte", "negative")])
def test_depths_and_row_layouts(host, media, depth, layout):
    inst = still_instance(host, media, depth=depth, layout=layout)
    raw = inst.render_raw(40)
    from ofxhost import from_ofx, to_ofx

    assert np.array_equal(from_ofx(raw), media["expected"][40])
    src = to_ofx(media["source"], depth, "OfxImageComponentRGBA")
    assert np.array_equal(raw[..., 3], src[..., 3])          # alpha kept
    untouched = (media["expected"][40] == media["source"]).all(2)[::-1]
    assert np.array_equal(raw[untouched], src[untouched])     # exact where the face did not move


def test_float_precision_kept_outside_the_face(host, media):
    """Deep pixels the effect does not change keep their exact values (not 8-bit ones)."""
    from ofxhost import to_ofx

    offset = np.float32(0.3 / 255)   # between two 8-bit steps
    inst = still_instance(host, media, depth="OfxBitDepthFloat", offset=float(offset))
    raw = inst.render_raw(12)
    exact = to_ofx(media["source"], "OfxBitDepthFloat", "OfxImageComponentRGBA")
    exact[..., :3] += offset
    changed = (media["expected"][12] != media["source"])[::-1]     # per channel
    rgb, want = raw[..., :3], exact[..., :3]
    assert changed.sum() > 1000 and np.array_equal(rgb[~changed], want[~changed])
    face = rgb[changed]
    assert np.allclose(face * 255, np.round(face * 255), atol=1e-4)   # the new face: 8-bit steps
    assert np.array_equal(raw[..., 3], exact[..., 3])


def test_parameters_and_controls_reach_the_effect(host, media):
    from reenact_fx import Effect

    inst = still_instance(host, media)
    inst.set("p_delta_expression", 1.6)
    inst.set("ctl_smile", 0.0, keys={0.0: 0.0, 77.0: 0.8})   # keyframed by the host
    with Effect(params={"delta": {"expression": 1.6}},
                controls={"mode": "add", "interpolation": "linear",
                          "keys": {"smile": [[t / 25, float(np.interp(t, [0, 77], [0, 0.8])),
                                              "linear"] for t in range(78)]}}
                ) as fx:
        fx.analyze(media["target"], media["driver"])
        want = fx.render_frame(60)
    got = inst.render(60)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, still_instance(host, media).render(60))


def test_general_context_with_a_driver_clip(host, media, tmp_path):
    from reenact_fx import Effect
    from reenact_fx.media import MediaReader
    from reenact_fx.host.uploads import write_upload

    with MediaReader(media["driver"]) as r:
        frames = [f for _, f in zip(range(30), (f for _, f in r.frames()))]
    prefix = tmp_path / "prefix.mkv"
    write_upload(prefix, frames, 25.0)   # what the service makes of the uploaded clip
    with Effect() as fx:
        fx.analyze(media["target"], str(prefix))
        want = {t: fx.render_frame(t) for t in (20, 5)}
    inst = host.instance("general", source=Clip([media["source"]] * 30, fps=25),
                         driver=Clip(frames, fps=25))
    inst.set("targetMode", "still")
    for t in (20, 5):
        assert np.array_equal(inst.render(t), want[t]), t


# ----------------------------------------------------------------------------- failures
def passthrough_with_message(host, inst, media, t, words):
    before = len(host.messages)
    out = inst.render(t)
    assert np.array_equal(out, media["source"])
    new = host.messages[before:]
    assert new and new[-1][0] == "OfxMessageError" and words in new[-1][1], new
    return new[-1][1]


def test_no_service_program(host, media, tmp_path, monkeypatch):
    monkeypatch.setenv("REENACT_FX_SOCKET", str(tmp_path / "none.sock"))
    monkeypatch.setenv("REENACT_FX_SERVE", str(tmp_path / "missing" / "reenact-fx"))
    inst = still_instance(host, media)
    passthrough_with_message(host, inst, media, 3, "REENACT_FX_SERVE")
    monkeypatch.delenv("REENACT_FX_SERVE")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    passthrough_with_message(host, inst, media, 4, "not found on PATH")


def fake_service(path, answer):
    """A socket that answers the handshake with ``answer`` (or never, when None)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(8)
    conns = []

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conns.append(conn)
            if answer is not None:
                data = json.dumps(answer).encode()
                conn.sendall(struct.pack(">I", len(data)) + data)
    threading.Thread(target=loop, daemon=True).start()
    return srv, conns


def test_another_protocol_version(host, media, tmp_path, monkeypatch):
    sock = tmp_path / "old.sock"
    srv, _ = fake_service(sock, {"ok": False, "protocol": 99,
                                 "error": "protocol version 1 is not supported"})
    monkeypatch.setenv("REENACT_FX_SOCKET", str(sock))
    try:
        inst = still_instance(host, media)
        passthrough_with_message(host, inst, media, 3, "another protocol version")
    finally:
        srv.close()


def test_service_that_never_answers(host, media, tmp_path, monkeypatch):
    sock = tmp_path / "hung.sock"
    srv, _ = fake_service(sock, None)
    monkeypatch.setenv("REENACT_FX_SOCKET", str(sock))
    monkeypatch.setenv("REENACT_FX_TIMEOUT", "1")
    try:
        inst = still_instance(host, media)
        t0 = time.monotonic()
        passthrough_with_message(host, inst, media, 3, "did not answer within 1s")
        assert time.monotonic() - t0 < 10
    finally:
        srv.close()


def test_service_killed_mid_render(host, media, tmp_path, monkeypatch):
    from reenact_fx.host.client import Client

    monkeypatch.setenv("REENACT_FX_SOCKET", str(tmp_path / "kill.sock"))
    inst = still_instance(host, media)
    assert np.array_equal(inst.render(12), media["expected"][12])   # starts its own service
    with Client(str(tmp_path / "kill.sock")) as c:
        pid = c.hello["pid"]
    # a setting that needs tracking again keeps the service busy for seconds: kill it then
    inst.set("p_tracking_max_gap", 0.37)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("out", inst.render(40)))
    before = len(host.messages)
    worker.start()
    with Client(str(tmp_path / "kill.sock")) as c:   # kill it while it analyses for that render
        deadline = time.monotonic() + 60
        while not c.request({"op": "stats"})["analysing"] and time.monotonic() < deadline:
            time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    worker.join(60)
    assert not worker.is_alive()
    assert np.array_equal(result["out"], media["source"])
    assert any("went away" in m for _, m in host.messages[before:]), host.messages[before:]
    # the next frame starts a new service and renders again
    inst.set("p_tracking_max_gap", 0.5)
    assert np.array_equal(inst.render(12), media["expected"][12])
    with Client(str(tmp_path / "kill.sock")) as c:
        assert c.hello["pid"] != pid
        os.kill(c.hello["pid"], signal.SIGTERM)


def test_render_window_only(host, media):
    inst = still_instance(host, media)
    x1, y1, x2, y2 = 100, 300, 500, 900            # OFX coordinates: y up from the bottom
    raw = inst.render_raw(40, window=(x1, y1, x2, y2))
    from ofxhost import to_ofx

    want = to_ofx(media["expected"][40], "OfxBitDepthByte", "OfxImageComponentRGBA")
    inside = np.zeros(raw.shape[:2], bool)
    inside[y1:y2, x1:x2] = True
    assert np.array_equal(raw[inside], want[inside])
    assert not raw[~inside].any()                   # the host's untouched (blank) pixels


def test_non_square_pixels(host, media):
    """An anamorphic Source (pixel aspect 2, half as wide) is processed in square pixels: the result
    is the square-pixel result squeezed back."""
    import cv2

    h, w = media["source"].shape[:2]
    squeezed = cv2.resize(media["source"], (w // 2, h), interpolation=cv2.INTER_AREA)
    inst = host.instance("filter", source=Clip([squeezed] * 78, fps=25, pixel_aspect=2.0))
    inst.set("driverFile", media["driver"])
    inst.set("targetMode", "still")
    out = inst.render(40).astype(int)
    want = cv2.resize(media["expected"][40], (w // 2, h), interpolation=cv2.INTER_AREA).astype(int)
    face = (want != cv2.resize(media["source"], (w // 2, h),
                               interpolation=cv2.INTER_AREA).astype(int)).any(2)
    assert out.shape == want.shape and face.sum() > 500
    assert np.abs(out - want)[face].mean() < 0.3 * np.abs(squeezed.astype(int) - want)[face].mean()


def test_clip_target_is_the_default(host, media, faces, tmp_path):
    """Source is a clip (the default): every frame of Source is sent once, and the result equals the
    effect on that clip (the person keeps their own head motion)."""
    from reenact_fx import Effect
    from reenact_fx.media import MediaReader
    from reenact_fx.host.uploads import write_upload

    with MediaReader(str(faces / "driving/d3.mp4")) as r:
        frames = [f for _, f in zip(range(20), (f for _, f in r.frames()))]
        fps = float(r.info.fps)
    clip = tmp_path / "target.mkv"
    write_upload(clip, frames, fps)
    with Effect() as fx:
        fx.analyze(str(clip), media["driver"])
        want = {t: fx.render_frame(t) for t in (15, 2)}
    before = len(host.messages)
    inst = host.instance("filter", source=Clip(frames, fps=fps, start=100))   # host frames 100..119
    assert inst.param("targetMode").value_at(0) == 0                           # clip
    inst.set("driverFile", media["driver"])
    for t in (15, 2):
        assert np.array_equal(inst.render(100 + t), want[t]), t
    assert len(host.messages) == before, host.messages[before:]


def test_dropped_upload_is_sent_again(host, media):
    """The service keeps uploads in a bounded folder: when one it dropped is asked for, the plugin
    sends Source again within the same render."""
    inst = still_instance(host, media)
    assert np.array_equal(inst.render(12), media["expected"][12])
    uploads = Path(os.environ["REENACT_FX_CACHE"]) / "uploads"
    gone = list(uploads.glob("*.png"))
    assert gone
    for p in gone:
        p.unlink()
    before = len(host.messages)
    assert np.array_equal(inst.render(40), media["expected"][40])
    assert len(host.messages) == before and list(uploads.glob("*.png"))


V2_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from ofxhost import Clip, Host
from reenact_fx.media import read_still
source = read_still(sys.argv[2])
host = Host(sys.argv[4], message_v2=True)
inst = host.instance("filter", source=Clip([source] * 78, fps=25))
inst.set("driverFile", sys.argv[3])
inst.set("targetMode", "still")
serve = os.environ.pop("REENACT_FX_SERVE")
os.environ["REENACT_FX_SERVE"] = "/nonexistent/reenact-fx"
failed = np.array_equal(inst.render(5), source)
during = dict(host.persistent)
os.environ["REENACT_FX_SERVE"] = serve
worked = not np.array_equal(inst.render(5), source)
print(json.dumps({"failed": failed, "during": list(during.values()), "worked": worked,
                  "after": list(host.persistent.values())}))
"""


def test_persistent_message_with_message_suite_v2(host, media, tmp_path):
    """A host with OfxMessageSuiteV2 gets a persistent message (no dialog per frame), cleared once
    frames render again (own process: a plugin binary has one host at a time)."""
    import json
    import subprocess

    env = dict(os.environ, REENACT_FX_SOCKET=str(tmp_path / "v2.sock"))
    proc = subprocess.run([sys.executable, "-c", V2_SCRIPT, str(Path(bridge.__file__).parent),
                           media["target"], media["driver"], str(bridge.BUNDLE)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    from reenact_fx.host.client import Client

    with Client(str(tmp_path / "v2.sock")) as c:
        os.kill(c.hello["pid"], signal.SIGTERM)
    assert out["failed"] and out["worked"] and out["after"] == []
    assert out["during"][0][0] == "OfxMessageError" and "REENACT_FX_SERVE" in out["during"][0][1]


def test_pixel_equal_to_the_cli(host, media, tmp_path):
    """The bundle's frames equal the CLI's own render (lossless PNG frames) of the same pair."""
    import subprocess

    from conftest import read_video

    out = tmp_path / "cli"
    proc = subprocess.run([bridge.serve_program(), "render", "-t", media["target"], "-d",
                           media["driver"], "-o", str(out), "--codec", "png", "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    cli = read_video(out)
    inst = still_instance(host, media)
    assert len(cli) == 78
    for t in (77, 30, 1):
        assert np.array_equal(inst.render(t), cli[t]), t


def test_controls_replace_need_no_driver(host, media):
    from reenact_fx import Effect

    inst = host.instance("filter", source=Clip([media["source"]] * 78, fps=25))
    inst.set("targetMode", "still")
    inst.set("controlsMode", "replace")
    inst.set("ctl_smile", 0.8)
    inst.set("ctl_yaw", 10.0)
    before = len(host.messages)
    got = inst.render(0)
    assert len(host.messages) == before, host.messages[before:]
    with Effect(controls={"mode": "replace", "interpolation": "linear",
                          "keys": {"smile": [[0, 0.8]], "yaw": [[0, 10.0]]}}) as fx:
        fx.analyze(media["target"])
        assert np.array_equal(got, fx.render_frame(0))
    assert not np.array_equal(got, media["source"])


def test_no_shared_memory_left_behind(host):
    """Every frame file this process created in /dev/shm (plugin and client) was removed, on the
    failure paths above too."""
    import glob

    assert not glob.glob(f"/dev/shm/reenactfx-*-{os.getpid()}-*")
