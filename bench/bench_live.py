"""Work per frame of a live session (the frei0r mixer: the driver arrives as frames), early and late.

    python bench/bench_live.py [--frames N]

A still portrait (source/s9.jpg) driven frame by frame by driving/d0.mp4 played forwards and
backwards until N frames (default 1000) have arrived, through ``reenact_fx.host.live.LiveSession``
(what the render service runs for a live request).  Prints the mean milliseconds per frame around
frame 10, 100 and N-10 and their ratio to frame 10's: a session that re-planned everything seen so far
would grow linearly; a bounded one stays flat.  Measured, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1000)
    args = ap.parse_args()
    shared = Path(os.environ.get("REENACT_FX_SHARED") or ROOT.parent / "shared/data/faces")
    target, driver = shared / "source/s9.jpg", shared / "driving/d0.mp4"
    if not target.exists():
        print(f"shared faces not found at {shared} (set REENACT_FX_SHARED)")
        return 2

    from reenact_fx.config.presets import Settings
    from reenact_fx.host.live import LiveSession
    from reenact_fx.media import MediaReader, read_still

    source = read_still(str(target))
    with MediaReader(str(driver)) as r:
        clip = [f for _, f in r.frames()]
    loop = clip + clip[-2:0:-1]
    session = LiveSession(str(target), Settings())
    ms = []
    try:
        for t in range(args.frames):
            t0 = time.perf_counter()
            session.render(t / 25, source, loop[t % len(loop)])
            ms.append((time.perf_counter() - t0) * 1000)
    finally:
        session.close()
    marks = [m for m in (10, 100, args.frames - 10) if 5 <= m <= args.frames - 5]
    base = statistics.mean(ms[marks[0] - 5:marks[0] + 5])
    print(f"live session, {args.frames} driver frames of {loop[0].shape[1]}x{loop[0].shape[0]} "
          f"onto a {source.shape[1]}x{source.shape[0]} still (tracking each driver frame included)")
    print(f"{'around frame':<14}{'mean ms':>9}{'x frame ' + str(marks[0]):>14}")
    for m in marks:
        mean = statistics.mean(ms[m - 5:m + 5])
        print(f"{m:<14}{mean:9.1f}{mean / base:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
