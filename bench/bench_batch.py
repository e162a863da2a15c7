#!/usr/bin/env python
"""Benchmark: one timeline rendered by ``reenact-fx batch`` with the local executor on 1 and 2
workers and with Ray on 1 and 2 workers, in one run; wall times and ratios to local x1.

    python bench/bench_batch.py                 # 4 clips of 48 frames (512 px) on two tracks
    python bench/bench_batch.py --frames 24 --clips 2

The timeline is built in a temporary folder from the shared faces (../shared/data/faces or
$REENACT_FX_SHARED): targets are the first frames of driving/d0, d3, d11, d12 (stamped with their
frame number, as in the tests), the driver driving/d9.  An untimed warm-up run fills the analysis
cache first, so the four timed runs measure rendering and scheduling (process or Ray start-up
included: each run is a fresh ``reenact-fx batch`` process, as a farm job would be).  Ray runs on a
local cluster with one task per clip.  A benchmark reports; nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def shared_dir() -> Path:
    env = os.environ.get("REENACT_FX_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def build(folder: Path, frames: int, clips: int) -> Path:
    import opentimelineio as otio

    from batch_media import stamped_clip

    faces = shared_dir() / "driving"
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    driver = stamped_clip(faces / "d9.mp4", folder / "driver.mp4", frames + 10, 30, size=512)
    tl = otio.schema.Timeline("bench", global_start_time=rt(0, 30))
    tracks = [otio.schema.Track(f"V{i + 1}", kind=otio.schema.TrackKind.Video) for i in range(2)]
    for i, name in enumerate(["d0", "d3", "d11", "d12"][:clips]):
        fps = 25 if name in ("d0", "d11", "d12") else 30
        target = stamped_clip(faces / f"{name}.mp4", folder / f"{name}.mp4", frames + 10, fps,
                              size=512)
        clip = otio.schema.Clip(name, media_reference=otio.schema.ExternalReference(
            target_url=otio.url_utils.url_from_filepath(str(target)),
            available_range=tr(rt(0, fps), rt(frames + 10, fps))),
            source_range=tr(rt(5, fps), rt(frames * fps // 30, fps)))
        clip.effects.append(otio.schema.Effect(effect_name="reenact_fx", metadata={
            "reenact_fx": {"version": 1, "driver": str(driver)}}))
        tracks[i % 2].append(clip)
    tl.tracks.extend(tracks)
    path = folder / "bench.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def run(timeline: Path, out: Path, cache: Path, executor: str, workers: int
        ) -> tuple[float, float]:
    """(wall seconds of the whole command, seconds the tasks worked, summed from report.json)."""
    cmd = [sys.executable, "-m", "reenact_fx.cli", "batch", str(timeline), "--out", str(out),
           "--executor", executor, "--workers", str(workers), "--cache-dir", str(cache), "--quiet"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    import json

    report = json.loads((out / "report.json").read_text())
    work = sum(t["seconds"] or 0 for j in report["jobs"] for t in j["tasks"])
    return wall, work


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48, help="frames per clip (at 30 fps)")
    ap.add_argument("--clips", type=int, default=4, choices=range(1, 5))
    args = ap.parse_args()
    if not shared_dir().is_dir():
        sys.exit(f"shared faces not found at {shared_dir()} (set REENACT_FX_SHARED)")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        timeline = build(tmp, args.frames, args.clips)
        cache = tmp / "cache"
        load0 = os.getloadavg()
        run(timeline, tmp / "warm", cache, "local", 2)       # fills the analysis cache
        rows = []
        for executor, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            wall, work = run(timeline, tmp / f"{executor}{workers}", cache, executor, workers)
            rows.append((executor, workers, wall, work))
        load1 = os.getloadavg()
    total = args.frames * args.clips
    base = rows[0][2]
    print(f"timeline: {args.clips} clips x {args.frames} frames (512x512, 30 fps) = {total} frames;"
          f" warm analysis cache; {os.cpu_count()} CPUs; load average {load0[0]:.1f} -> "
          f"{load1[0]:.1f}")
    print(f"{'executor':<10}{'workers':>8}{'wall s':>9}{'task s':>9}{'frames/s':>10}"
          f"{'vs local x1':>13}")
    for executor, workers, wall, work in rows:
        print(f"{executor:<10}{workers:>8}{wall:>9.1f}{work:>9.1f}{total / wall:>10.2f}"
              f"{base / wall:>12.2f}x")
    print("(task s: the seconds the tasks worked, summed over workers; the rest of wall is start-up"
          " of the processes or the Ray cluster, and scheduling)")
    lo2, ray1, ray2 = rows[1][2], rows[2][2], rows[3][2]
    print(f"ratios: local 2/1 workers speed-up {base / lo2:.2f}x; ray 2/1 {ray1 / ray2:.2f}x; "
          f"ray/local wall at 1 worker {ray1 / base:.2f}, at 2 workers {ray2 / lo2:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
