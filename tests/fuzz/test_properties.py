"""Property-based tests (hypothesis) of the parsers users and hosts feed: YAML, presets, keyframed
controls, evaluation manifests, and the render service's message framing.  Each property: the parser
gives a value or a ReenactError naming the source, never another exception, never a hang.

The number of examples is bounded for CI (``REENACT_FX_FUZZ_EXAMPLES``, default 150 per property);
raise it for a longer local run:  REENACT_FX_FUZZ_EXAMPLES=5000 python -m pytest -q tests/fuzz"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import threading

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from reenact_fx.errors import ReenactError  # noqa: E402

EXAMPLES = int(os.environ.get("REENACT_FX_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=30)

CONTROL_NAMES = ["smile", "jaw_open", "blink_left", "yaw", "smirk", "", "keys"]
key_lists = st.lists(st.one_of(
    st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True)).map(list),
    st.tuples(st.integers(-5, 10**7), st.integers(-100, 100), st.sampled_from(["linear", "smooth", "x"]))
    .map(list),
    st.fixed_dictionaries({"t": scalars, "v": scalars}), scalars), max_size=6)
controls_data = st.one_of(values, st.fixed_dictionaries(
    {"keys": st.dictionaries(st.sampled_from(CONTROL_NAMES), st.one_of(key_lists, scalars), max_size=4)},
    optional={"mode": st.sampled_from(["add", "replace", "swap", 3]),
              "interpolation": st.sampled_from(["linear", "smooth", "cubic", None])}))


def yaml_like_text():
    """Text that is YAML-ish: fragments with anchors, aliases, flow and block collections."""
    frag = st.sampled_from(["a: 1\n", "- x\n", "[", "]", "{", "}", "&a ", "*a ", "&b [*a, *a]\n",
                            "version: 1\n", "keys: {smile: [[0, 0], [1, 1]]}\n", "!!python/name:os\n",
                            "'", '"', ": ", "\n  ", "---\n", "...\n", "%YAML 1.1\n", "\t", "\x00", "#"])
    return st.one_of(st.lists(frag, max_size=40).map("".join), st.text(max_size=200))


@FUZZ
@given(yaml_like_text())
def test_safeyaml_gives_data_or_a_named_error(text):
    from reenact_fx.config import safeyaml

    try:
        safeyaml.parse(text, "fuzz.yaml")
    except safeyaml.YamlError as exc:
        assert "fuzz.yaml" in str(exc) and len(str(exc)) < 1000


@FUZZ
@given(st.integers(2, 12), st.integers(2, 12))
def test_alias_chains_are_refused_before_they_expand(levels, width):
    from reenact_fx.config import safeyaml
    from corpus.media import bomb

    try:
        data = safeyaml.parse(bomb(levels, width), "b.yaml")
    except safeyaml.YamlError as exc:   # the count includes the lists and the keys of every level
        assert width ** levels > safeyaml.MAX_NODES / 10 and "alias" in str(exc)
    else:
        assert width ** levels <= safeyaml.MAX_NODES and data


@settings(FUZZ, deadline=None)   # the first call loads the plugin registry
@given(st.one_of(values, st.fixed_dictionaries({}, optional={
    "version": st.one_of(st.integers(-2, 3), scalars), "description": values,
    "components": st.dictionaries(st.sampled_from(["converter", "smoother", "mixer", "x"]),
                                  st.sampled_from(["delta", "one_euro", "feather", "nope", ""]), max_size=3),
    "params": st.dictionaries(st.sampled_from(["delta", "output", "tracking", "effect", "zz"]),
                              st.dictionaries(st.sampled_from(["expression", "codec", "max_gap", "q"]),
                                              scalars, max_size=3), max_size=3),
    "controls": controls_data})))
def test_preset_validation_gives_settings_or_a_named_error(data):
    from reenact_fx.config.presets import validate

    try:
        validate(data, "fuzz-preset.yaml")
    except ReenactError as exc:
        assert "fuzz-preset.yaml" in str(exc) and len(str(exc)) < 1000


@FUZZ
@given(controls_data)
def test_keyframes_parse_or_a_named_error_and_curves_are_finite(data):
    from reenact_fx.config.presets import validate_controls
    from reenact_fx.face.keyframes import Keyframes

    try:
        checked = validate_controls(data, "fuzz-keys.yaml")
    except ReenactError as exc:
        assert "fuzz-keys.yaml" in str(exc) and len(str(exc)) < 1000
        return
    kf = Keyframes.parse({k: v for k, v in checked.items() if k != "mode"}, source="fuzz")
    assert math.isfinite(kf.duration())
    curves = kf.at(np.linspace(0, 3, 7))
    assert all(np.isfinite(v).all() for v in curves.values())


@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(values, st.fixed_dictionaries({"pairs": st.lists(st.one_of(values, st.fixed_dictionaries(
    {}, optional={"name": scalars, "kind": st.sampled_from(["self", "cross", "x"]),
                  "driver": scalars, "target": scalars})), max_size=4)})))
def test_manifest_parse_gives_pairs_or_a_named_error(data, tmp_path_factory):
    from reenact_fx.evaluation.harness import ManifestError, parse_manifest

    try:
        parse_manifest(data, str(tmp_path_factory.getbasetemp() / "fuzz-manifest.yaml"))
    except ManifestError as exc:
        assert "fuzz-manifest.yaml" in str(exc) and len(str(exc)) < 1000


# ------------------------------------------------------------------------- the service's framing
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An in-process render service on a socket (no effect work: framing and refusals only)."""
    from reenact_fx.host.service import RenderService, Server

    path = str(tmp_path_factory.mktemp("fuzz-svc") / "s.sock")
    srv = Server(path, RenderService(tmp_path_factory.mktemp("fuzz-cache")))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield path, srv
    srv.shutdown()
    srv.server_close()


def _hello_works(path) -> bool:
    from reenact_fx.host.client import Client
    from reenact_fx.host.protocol import PROTOCOL

    with Client(path, timeout=10) as c:
        return c.hello["protocol"] == PROTOCOL and c.request({"op": "stats"})["ok"]


frames = st.one_of(
    st.binary(max_size=64),                                                    # garbage
    st.builds(lambda n, body: struct.pack(">I", n) + body, st.integers(0, 2**32 - 1),
              st.binary(max_size=32)),                                         # lying lengths
    st.builds(lambda obj: (lambda b: struct.pack(">I", len(b)) + b)(json.dumps(obj).encode()),
              values))                                                         # framed JSON of any shape


@settings(max_examples=max(20, EXAMPLES // 3), deadline=5000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=3), st.booleans())
def test_service_survives_any_bytes(server, chunks, hello_first):
    from reenact_fx.host.protocol import PROTOCOL

    path, _ = server
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    try:
        if hello_first:
            b = json.dumps({"op": "hello", "protocol": PROTOCOL}).encode()
            s.sendall(struct.pack(">I", len(b)) + b)
        try:
            for c in chunks:
                s.sendall(c)
            s.shutdown(socket.SHUT_WR)   # disconnect mid-frame (or after it)
            while s.recv(65536):
                pass
        except (socket.timeout, OSError):
            pass   # the service hung up on the garbage first: fine
    finally:
        s.close()
    assert _hello_works(path), "the service still answers after the garbage"


@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(req=st.dictionaries(st.sampled_from(["op", "spec", "frame", "time", "shm", "width", "height", "wait",
                                        "upload", "count", "session", "source"]),
                       st.one_of(values, st.sampled_from(["render", "analyze", "live", "upload_begin",
                                                          "upload_frames", "upload_end", "stats"])),
                       max_size=8))
def test_service_answers_any_request_with_a_message(tmp_path_factory, req):
    from reenact_fx.host.service import RenderService

    svc = _svc(tmp_path_factory)
    req.setdefault("wait", 0.01)
    if isinstance(req.get("wait"), (int, float)) and not isinstance(req["wait"], bool):
        req["wait"] = min(max(float(req["wait"]), 0.0), 0.01) if math.isfinite(req["wait"]) else 0.01
    resp = svc.handle(req)
    assert isinstance(resp, dict) and "ok" in resp
    json.dumps(resp)
    if not resp["ok"]:
        assert len(resp.get("error", "")) < 1000
    assert isinstance(svc, RenderService)


_SVC = {}


def _svc(tmp_path_factory):
    from reenact_fx.host.service import RenderService

    if "svc" not in _SVC:
        _SVC["svc"] = RenderService(tmp_path_factory.mktemp("fuzz-handle"))
    return _SVC["svc"]
