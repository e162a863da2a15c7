#!/usr/bin/env python
"""Benchmark: plain transcode vs. the effect, fps per stage, and peak memory vs. clip length.

    python bench/bench_render.py            # SHORT (90 frames) and LONG (10x) 720p clips, 1080p and
                                            # 2160p SHORT clips, the still target, the turning head
    python bench/bench_render.py --quick    # SHORT 720p and the still only (smoke run)
    python bench/bench_render.py --frames 60
    python bench/bench_render.py --full-analysis   # track everything before rendering (no streaming)

Clips are built in a temporary folder from the shared face material (../shared/data/faces, or
$REENACT_FX_SHARED):
  TARGET  1280x720, 30 fps: frames of driving/d3.mp4 (512x512) centred on a blurred, enlarged copy of
          the same frame; d3 is played forward then backward ("ping-pong") so the face stays continuous
          for any length.  Written as H.264 crf 12 (near lossless) with MediaWriter.
  DRIVER  512x512: frames of driving/d0.mp4 (25 fps), ping-ponged likewise to the target's frame count
          and RE-TIMED to 30 fps (each d0 frame shown once, i.e. 1.2x speed), so driver and target have
          the same frame count and duration and every driver frame drives exactly one output frame.
  STILL   source/s9.jpg (720x1280 portrait) driven by the SHORT driver.

Every effect run happens in its own subprocess, so its peak resident set (ru_maxrss / VmHWM) is its own.
The plain transcode (the baseline) runs in this process: MediaReader decodes the target and the driver
(decoding in a worker thread, as Effect.render does) and MediaWriter encodes the target-size frames with
the same H.264 settings as the effect's output.  A benchmark reports; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np

# Goals on the reference machine (2 CPU cores), issue 13.
GOAL_FPS = 30.0          # end to end, 720p target
GOAL_RATIO = 1.5         # effect time / plain transcode time
GOAL_MEM_RATIO = 1.3     # peak RSS, LONG / SHORT
GOAL_FIRST_S = 1.0       # still target: analyze() called -> first frame encoded
SIZES = {"1080p": (1920, 1080), "2160p": (3840, 2160)}   # SHORT clips at these sizes too

TARGET_SIZE = (1280, 720)
FPS = Fraction(30)


def shared_dir() -> Path:
    env = os.environ.get("REENACT_FX_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def peak_rss_mb() -> tuple[float, float | None]:
    """(ru_maxrss, VmHWM) of this process in MB (ru_maxrss is KiB on Linux).

    VmHWM is preferred: on Linux ru_maxrss survives fork+exec, so a child's ru_maxrss is at least the
    parent's resident set when it forked (here the parent held the decoded source clips)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    hwm = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return ru, hwm


def load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_now_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


# ------------------------------------------------------------------------------------------ clips
def pingpong(n_src: int, n: int) -> list[int]:
    """Indices 0,1,..,n_src-1,n_src-2,..,1,0,1,.. of length n (no frame repeated at the turns)."""
    if n_src == 1:
        return [0] * n
    period = list(range(n_src)) + list(range(n_src - 2, 0, -1))
    return [period[i % len(period)] for i in range(n)]


def read_all(path: Path) -> list[np.ndarray]:
    from reenact_fx.media import MediaReader

    with MediaReader(str(path)) as r:
        return [rgb for _, rgb in r.frames()]


@contextmanager
def h264_crf(crf: int):
    """Make MediaWriter's H.264 use ``crf`` while the clips are written (this process only; the
    project's file is not touched).  Falls back to the writer's default if its options moved."""
    from reenact_fx import media

    opts = getattr(media.writer, "_CODEC_OPTIONS", {}).get("h264")
    if not isinstance(opts, dict) or "crf" not in opts:
        print(f"  note: cannot set crf {crf}; clips use MediaWriter's default H.264 quality")
        yield
        return
    saved = dict(opts)
    opts["crf"] = str(crf)
    try:
        yield
    finally:
        opts.clear()
        opts.update(saved)


def compose_720p(face: np.ndarray, size: tuple[int, int] = TARGET_SIZE) -> np.ndarray:
    """The 512x512 frame centred on a 1280x720 (or ``size``) canvas filled with a blurred,
    enlarged copy of it (the face keeps its size: a larger frame shows more background)."""
    import cv2

    W, H = size
    h, w = face.shape[:2]
    s = max(W / w, H / h)
    big = cv2.resize(face, (int(np.ceil(w * s)), int(np.ceil(h * s))), interpolation=cv2.INTER_LINEAR)
    y0, x0 = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
    bg = big[y0:y0 + H, x0:x0 + W]
    small = cv2.resize(bg, (W // 8, H // 8), interpolation=cv2.INTER_AREA)
    bg = cv2.resize(cv2.GaussianBlur(small, (0, 0), 3), (W, H), interpolation=cv2.INTER_LINEAR)
    fy, fx = (H - h) // 2, (W - w) // 2
    bg[fy:fy + h, fx:fx + w] = face
    return bg


def write_clip(path: Path, frames, size: tuple[int, int]) -> None:
    from reenact_fx.media import MediaWriter

    with h264_crf(12):
        writer = MediaWriter(str(path), size[0], size[1], FPS, codec="h264")
    with writer:
        for f in frames:
            writer.write(f)


def build_clips(faces: Path, work: Path, lengths: dict[str, tuple[int, tuple[int, int]]]
                ) -> dict[str, dict[str, Path]]:
    d3 = read_all(faces / "driving" / "d3.mp4")
    d0 = read_all(faces / "driving" / "d0.mp4")
    clips = {}
    for name, (n, size) in lengths.items():
        t0 = time.perf_counter()
        tgt, drv = work / f"target_{name}.mp4", work / f"driver_{name}.mp4"
        write_clip(tgt, (compose_720p(d3[i], size) for i in pingpong(len(d3), n)), size)
        write_clip(drv, (d0[i] for i in pingpong(len(d0), n)), d0[0].shape[1::-1])
        clips[name] = {"target": tgt, "driver": drv}
        print(f"  {name}: {n} frames, target {size[0]}x{size[1]} + driver "
              f"{d0[0].shape[1]}x{d0[0].shape[0]} @ {FPS} fps, built in {time.perf_counter() - t0:.1f} s")
    del d3, d0
    return clips


# ------------------------------------------------------------------------------------------ baseline
def plain_transcode(target: Path, driver: Path, out: Path) -> dict:
    """Decode target and driver with MediaReader, encode the target-size frames with MediaWriter
    (H.264, the effect's output settings), decoding in a worker thread like Effect.render."""
    from reenact_fx.media import MediaReader, MediaWriter
    from reenact_fx.sequences import Stopwatch, prefetch

    sw = Stopwatch()
    t0 = time.perf_counter()
    tr, dr = MediaReader(str(target)), MediaReader(str(driver))
    try:
        ti, di = tr.info, dr.info
        n, fps = (di.frame_count, di.fps) if ti.is_still else (ti.frame_count, ti.fps)

        def frames():
            dgen = dr.frames()
            tgen = None if ti.is_still else tr.frames()
            still = tr.frame_at(0) if ti.is_still else None
            for _ in range(n):
                with sw("decode"):
                    next(dgen, None)  # the driver is decoded too, as the effect must
                    rgb = still if tgen is None else next(tgen)[1]
                yield rgb

        writer = MediaWriter(str(out), ti.width, ti.height, fps, codec="h264", protect=[str(target)])
        with writer:
            for rgb in prefetch(frames()):
                with sw("encode"):
                    writer.write(rgb)
    finally:
        tr.close()
        dr.close()
    secs = time.perf_counter() - t0
    return {"seconds": secs, "frames": n, "fps": n / secs, "decode_s": sw.seconds["decode"],
            "encode_s": sw.seconds["encode"]}


# ------------------------------------------------------------------------------------------ effect (child)
def landmark_mb(obj, seen=None) -> float:
    """MB held by numpy arrays reachable from an Analysis (landmarks, indices, masks)."""
    seen = set() if seen is None else seen
    total = 0
    for v in vars(obj).values():
        if isinstance(v, np.ndarray) and id(v) not in seen:
            seen.add(id(v))
            total += v.nbytes
        elif hasattr(v, "__dict__") and type(v).__module__.startswith("reenact_fx"):
            total += int(landmark_mb(v, seen) * 2 ** 20)
    return total / 2 ** 20


def child(target: str, driver: str, out: str) -> None:
    from reenact_fx import Effect

    extra = json.loads(os.environ.get("REENACT_BENCH_PARAMS", "{}"))
    stream = os.environ.get("REENACT_BENCH_STREAM", "1") == "1"
    with Effect(params={"output": {"audio": "none"}, **extra}, cache=False) as fx:   # measure tracking
        rss0 = rss_now_mb()
        first = []

        def on_frame(done, total):
            if not first:
                first.append(time.perf_counter())

        c0, t0 = cpu_s(), time.perf_counter()
        a = fx.analyze(target, driver, stream=stream)   # as reenact-fx render does
        t1 = time.perf_counter()
        fx.render(out, progress=on_frame)
        t2, c2 = time.perf_counter(), cpu_s()
        a = fx.analysis
        ru, hwm = peak_rss_mb()
        result = {
            "frames": a.frame_count, "size": list(a.size), "still": bool(a.target.is_still),
            "target_frames": len(a.target_track), "driver_frames": len(a.driver_track),
            "analyze_s": t1 - t0, "render_s": t2 - t1, "cpu_s": c2 - c0,
            "first_frame_s": first[0] - t0, "stream": stream,
            "stages": {k: [fx.timings.seconds[k], fx.timings.calls[k]] for k in fx.timings.seconds},
            "maxrss_mb": ru, "vmhwm_mb": hwm, "peak_mb": hwm if hwm else ru,
            "peak_src": "VmHWM" if hwm else "ru_maxrss", "rss_start_mb": rss0, "landmark_mb": landmark_mb(a),
            "notes": list(a.notes),
        }
    print("RESULT " + json.dumps(result))


def run_child(target: Path, driver: Path, out: Path, params: dict | None = None,
              stream: bool = True) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(target), str(driver), str(out)]
    env = dict(os.environ, REENACT_BENCH_PARAMS=json.dumps(params or {}),
               REENACT_BENCH_STREAM="1" if stream else "0")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"effect run failed for {target.name} + {driver.name} (exit {p.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------------------------------ report
ORDER = ["decode+track target", "decode+track driver", "convert", "smooth", "decode target",
         "decode driver", "generate", "mix", "encode", "finalize (flush, audio, rename)"]


def stage_frames(name: str, secs_calls, r: dict) -> int | None:
    """Frames a stage handled (its fps denominator)."""
    if name == "decode+track target":
        return r["target_frames"]
    if name == "decode+track driver":
        return r["driver_frames"]
    if name in ("convert", "smooth"):
        return r["frames"]
    if name.startswith("finalize"):
        return None
    return secs_calls[1]


def table(label: str, r: dict, base: dict) -> None:
    w, h = r["size"]
    T = r["frames"]
    e2e = r["analyze_s"] + r["render_s"]
    print(f"\n== {label}: {w}x{h} {'still' if r['still'] else 'video'} target, {T} output frames ==")
    print(f"  {'stage':<34}{'seconds':>9}{'frames':>8}{'fps':>9}")
    names = [n for n in ORDER if n in r["stages"]] + sorted(set(r["stages"]) - set(ORDER))
    for n in names:
        s, c = r["stages"][n]
        k = stage_frames(n, (s, c), r)
        fps = f"{k / s:9.1f}" if k and s > 0 else f"{'':>9}"
        note = " (cached still: 1 decode)" if n == "decode target" and r["still"] else ""
        print(f"  {n:<34}{s:9.2f}{(k if k else ''):>8}{fps}{note}")
    print(f"  {'-- analyze (wall)':<34}{r['analyze_s']:9.2f}{T:>8}{T / r['analyze_s']:9.1f}"
          + ("   (streamed: returns once the first frames are planned)" if r["stream"] else ""))
    print(f"  {'-- first frame encoded after':<34}{r['first_frame_s']:9.2f}")
    print(f"  {'-- render (wall)':<34}{r['render_s']:9.2f}{T:>8}{T / r['render_s']:9.1f}")
    print(f"  {'== effect end to end':<34}{e2e:9.2f}{T:>8}{T / e2e:9.1f}   "
          f"(CPU {r['cpu_s']:.1f} s = {r['cpu_s'] / e2e:.2f} cores busy)")
    nb = base["frames"]
    print(f"  {'== plain transcode':<34}{base['seconds']:9.2f}{nb:>8}{base['fps']:9.1f}")
    print(f"  {'   of which decode tgt+drv (worker)':<34}{base['decode_s']:9.2f}{nb:>8}{nb / base['decode_s']:9.1f}")
    print(f"  {'   of which encode (main thread)':<34}{base['encode_s']:9.2f}{nb:>8}{nb / base['encode_s']:9.1f}")
    print(f"  effect / plain transcode = {e2e / base['seconds']:.2f}x;  peak RSS {r['peak_mb']:.0f} MB "
          f"({r['peak_src']}; landmark arrays {r['landmark_mb']:.1f} MB)")
    print("  decode+track target includes loading the face models once (about the still's whole "
          "decode+track time)")
    for note in r["notes"]:
        print(f"  note: {note}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the SHORT clips (smoke run)")
    ap.add_argument("--frames", type=int, default=90, help="SHORT length in frames (LONG is 10x)")
    ap.add_argument("--full-analysis", action="store_true",
                    help="track both media to the end before rendering (analyze without stream)")
    ap.add_argument("--only", default="", help="comma-separated words: run the scenarios whose "
                    "label holds one of them (e.g. SHORT,STILL)")
    ap.add_argument("--child", nargs=3, metavar=("TARGET", "DRIVER", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.frames < 2:
        ap.error("--frames must be at least 2")

    faces = shared_dir()
    needed = [faces / "driving" / "d3.mp4", faces / "driving" / "d0.mp4", faces / "source" / "s9.jpg"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(f"shared face material not found: {', '.join(missing)}\n"
                         f"(expected at {faces}; set REENACT_FX_SHARED to the folder holding "
                         "driving/ and source/)")

    t_start = time.perf_counter()
    busy_at_start = os.getloadavg()[0] > 1.0
    lengths = {"SHORT": (args.frames, TARGET_SIZE)}
    if not args.quick:
        lengths["LONG"] = (10 * args.frames, TARGET_SIZE)
        lengths.update({f"SHORT {k}": (args.frames, v) for k, v in SIZES.items()})
    if args.only:   # build only the clips asked for (SHORT's driver also drives the still)
        lengths = {k: v for k, v in lengths.items()
                   if k == "SHORT" or any(w.strip() in k for w in args.only.split(",") if w.strip())}
    print(f"reenact-fx render benchmark  ({os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"load average {load()} at start)")
    print("driver: d0.mp4 (25 fps) ping-ponged and re-timed to 30 fps (each frame once, 1.2x speed)")
    with tempfile.TemporaryDirectory(prefix="reenact-bench-") as tmp:
        work = Path(tmp)
        print("building clips ...")
        clips = build_clips(faces, work, lengths)
        scenarios = [(f"{name} video" if " " in name else f"{name} 720p video", c["target"],
                      c["driver"], None) for name, c in clips.items()]
        scenarios.append(("STILL s9.jpg", needed[2], clips["SHORT"]["driver"], None))
        # the head moving most (d12): meshwarp 2.x's whole head against 1.x's fixed ring
        turning = faces / "driving" / "d12.mp4"
        if turning.is_file() and (faces / "source" / "s4.jpg").is_file() and not args.quick:
            for label, mode in (("TURN s4+d12 head", "head"), ("TURN s4+d12 ring", "ring")):
                scenarios.append((label, faces / "source" / "s4.jpg", turning,
                                  {"meshwarp": {"anchoring": mode}}))

        if args.only:
            words = [w.strip() for w in args.only.split(",") if w.strip()]
            scenarios = [sc for sc in scenarios if any(w in sc[0] for w in words)]
        results = {}
        for label, target, driver, params in scenarios:
            print(f"running {label}: plain transcode ...", flush=True)
            base = plain_transcode(target, driver, work / "plain.mp4")
            print(f"running {label}: effect (subprocess) ...", flush=True)
            r = run_child(target, driver, work / "effect.mp4", params, not args.full_analysis)
            results[label] = (r, base)
            for f in ("plain.mp4", "effect.mp4"):
                (work / f).unlink(missing_ok=True)

    for label, (r, base) in results.items():
        table(label, r, base)

    print("\n== summary (goals on a 2-core machine) ==")
    for label, (r, base) in results.items():
        e2e = r["analyze_s"] + r["render_s"]
        fps, ratio = r["frames"] / e2e, e2e / base["seconds"]
        print(f"  {label:<18} effect {e2e:7.2f} s  plain transcode {base['seconds']:6.2f} s  "
              f"ratio {ratio:5.2f}x  end to end {fps:5.1f} fps")
    for label, (r, base) in results.items():
        if "TURN" in label or label.startswith("SHORT ") and "720p" not in label:
            continue
        e2e = r["analyze_s"] + r["render_s"]
        fps, ratio = r["frames"] / e2e, e2e / base["seconds"]
        if not r["still"]:
            print(f"  goal end to end >= {GOAL_FPS:g} fps (720p), {label:<16}: {fps:6.1f} fps   "
                  f"{verdict(fps >= GOAL_FPS)}")
        print(f"  goal effect <= {GOAL_RATIO:g}x plain transcode,  {label:<16}: {ratio:6.2f}x       "
              f"{verdict(ratio <= GOAL_RATIO)}")
        if r["still"]:
            print(f"  goal first frame < {GOAL_FIRST_S:g} s (still target), {label:<10}: "
                  f"{r['first_frame_s']:6.2f} s     {verdict(r['first_frame_s'] < GOAL_FIRST_S)}")
    if "SHORT 720p video" in results and all(f"SHORT {k} video" in results for k in SIZES):
        r0, b0 = results["SHORT 720p video"]
        extra0 = r0["analyze_s"] + r0["render_s"] - b0["seconds"]
        for k, (w, h) in SIZES.items():
            r, b = results[f"SHORT {k} video"]
            extra = r["analyze_s"] + r["render_s"] - b["seconds"]
            px = w * h / (TARGET_SIZE[0] * TARGET_SIZE[1])
            print(f"  goal effect's cost beyond the transcode grows less than the pixels, {k}: "
                  f"{extra:.2f} s vs {extra0:.2f} s at 720p = {extra / max(extra0, 1e-9):.2f}x for "
                  f"{px:.2f}x the pixels   {verdict(extra / max(extra0, 1e-9) < px)}")
    if "TURN s4+d12 head" in results and "TURN s4+d12 ring" in results:
        def gen_fps(label):
            sec, calls = results[label][0]["stages"]["generate"]
            return calls / sec
        head, ring = gen_fps("TURN s4+d12 head"), gen_fps("TURN s4+d12 ring")
        print(f"  generate stage, head moving (s4+d12): whole head {head:.1f} fps, 1.x ring {ring:.1f} "
              f"fps: {head / ring:.2f}x  {verdict(head >= ring)}")
    if "LONG 720p video" in results:
        s, l = results["SHORT 720p video"][0], results["LONG 720p video"][0]
        mr = l["peak_mb"] / s["peak_mb"]
        lm = (l["landmark_mb"] - s["landmark_mb"]) / (l["frames"] - s["frames"]) * 1000
        one = 478 * 3 * 4 * 1000 / 2 ** 20
        print(f"  peak RSS ({s['peak_src']}) SHORT ({s['frames']} frames) {s['peak_mb']:.0f} MB, LONG "
              f"({l['frames']} frames) {l['peak_mb']:.0f} MB, +{l['peak_mb'] - s['peak_mb']:.0f} MB; "
              f"RSS after imports {s['rss_start_mb']:.0f} MB")
        print(f"  landmark arrays kept by the analysis grow {lm:.1f} MB per 1000 frames (~{lm / one:.1f} "
              f"copies of 478x3 float32 = {one:.1f} MB/1000 frames each); expected: a few MB per 1000 "
              f"frames per copy, the rest flat")
        print(f"  goal memory LONG/SHORT <= {GOAL_MEM_RATIO:g}: {mr:6.2f}            {verdict(mr <= GOAL_MEM_RATIO)}")
    else:
        print(f"  goal memory LONG/SHORT <= {GOAL_MEM_RATIO:g}: n/a (--quick runs SHORT only)")
    print("  (stages overlap: the target and the driver are tracked in two threads; in render one thread "
          "decodes, two compose (generate + mix) and the main thread encodes, so stage seconds are busy "
          "time per thread and add up to more than the wall time)")
    print(f"total benchmark time {time.perf_counter() - t_start:.0f} s; load average {load()} at the end "
          "(this benchmark alone keeps it near 2)")
    if busy_at_start:
        print("  warning: the machine was busy with other work when the benchmark started (1-min load > 1); "
              "times above are pessimistic")


if __name__ == "__main__":
    main()
