"""Per-frame latency through the compositor bridge next to the in-process ``Effect.render_frame``.

    python bench/bench_bridge.py [--frames N] [--threads K]

A still portrait (source/s9.jpg) driven by driving/d0.mp4 from ../shared/data/faces (or
$REENACT_FX_SHARED), 720x1280.  After one analysis (not timed: it is cached for every later frame),
N frames in scrambled order (a host scrubbing: the driver decoder seeks) and N in sequence (playback)
are rendered
  1. in process:           Effect.render_frame(t)
  2. through the service:  the Python client, the host's frame sent through /dev/shm
  3. through the OFX plugin: the ctypes test host -> ReenactFX.ofx -> service (8-bit RGBA, the
     host's image handed over as a host does; the bundle is built first with make -C ofx_bridge)
and the mean / median milliseconds per frame and the bridge/in-process ratios are printed, plus the
OFX frame rate with K host threads rendering at once.  Measured, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ofx_bridge" / "testhost"))


def timed(fn, frames):
    out = []
    for t in frames:
        t0 = time.perf_counter()
        fn(t)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    shared = Path(os.environ.get("REENACT_FX_SHARED") or ROOT.parent / "shared/data/faces")
    target, driver = shared / "source/s9.jpg", shared / "driving/d0.mp4"
    if not target.exists():
        print(f"shared faces not found at {shared} (set REENACT_FX_SHARED)")
        return 2

    import bridge
    from ofxhost import Clip, Host
    from reenact_fx import Effect
    from reenact_fx.media import read_still
    from reenact_fx.host.client import Client

    why = bridge.build()
    if why:
        print(why)
        return 2
    tmp = tempfile.mkdtemp(prefix="bench-bridge-")
    os.environ["REENACT_FX_SOCKET"] = os.path.join(tmp, "serve.sock")
    os.environ["REENACT_FX_SERVE"] = bridge.serve_program()
    source = read_still(str(target))

    with Effect() as fx:
        fx.analyze(str(target), str(driver))
        n = fx.analysis.frame_count
        rng = np.random.default_rng(0)
        frames = [int(t) for t in rng.permutation(n)[:args.frames]]
        sequential = list(range(min(n, args.frames)))
        fx.render_frame(frames[0])
        inproc = timed(fx.render_frame, frames)
        inproc_seq = timed(fx.render_frame, sequential)

    host = Host(str(bridge.BUNDLE))
    inst = host.instance("filter", source=Clip([source] * n, fps=float(fx.analysis.fps)))
    inst.set("driverFile", str(driver))
    inst.set("targetMode", "still")
    t0 = time.perf_counter()
    inst.render(frames[0])   # starts the service, uploads the portrait, analyses
    first = time.perf_counter() - t0
    for t in frames:         # the host's images converted once, as a host has them at hand
        inst.clips["Source"].image(t)
    ofx = timed(inst.render, frames)
    ofx_seq = timed(inst.render, sequential)
    with ThreadPoolExecutor(args.threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(inst.render, frames))
        threaded_fps = len(frames) / (time.perf_counter() - t0)

    spec = {"target": {"path": str(target)}, "driver": {"path": str(driver)}}
    with Client() as c:
        c.render(spec, frames[0], source)
        service = timed(lambda t: c.render(spec, t, source), frames)
        service_seq = timed(lambda t: c.render(spec, t, source), sequential)
        pid = c.hello["pid"]
    os.kill(pid, 15)
    if host.messages:
        print("host messages:", host.messages)

    print(f"{len(frames)} frames of {source.shape[1]}x{source.shape[0]}; first OFX frame (service "
          f"start + upload + analysis): {first:.1f} s")
    for order, rows in (("scrambled", (inproc, service, ofx)),
                        ("sequential", (inproc_seq, service_seq, ofx_seq))):
        base = statistics.mean(rows[0])
        print(f"{order + ' order':<34}{'mean ms':>9}{'median ms':>11}{'x in-process':>14}")
        for name, ms in zip(("in-process Effect.render_frame", "service (Python client, shm)",
                             "OFX plugin via ctypes host"), rows):
            print(f"  {name:<32}{statistics.mean(ms):9.1f}{statistics.median(ms):11.1f}"
                  f"{statistics.mean(ms) / base:14.2f}")
    print(f"OFX with {args.threads} host threads: {threaded_fps:.1f} fps "
          f"(single thread {1000 / statistics.mean(ofx):.1f} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
