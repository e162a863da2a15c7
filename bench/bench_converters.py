#!/usr/bin/env python
"""Benchmark: landmark converters (delta and the learned ones) on the shared faces.

    python bench/bench_converters.py             # all measures (a few minutes; tracking is cached)
    python bench/bench_converters.py --frames 60 # drivers cut to 60 frames (quicker)
    python bench/bench_converters.py --no-speed  # accuracy only

Data: a landmark dataset built from ../shared/data/faces (or $REENACT_FX_SHARED) exactly as the shipped
weights' (``reenact-fx dataset build FACES``: seed 0, a quarter of the identities held out).  Only the
held-out ("val") identities are measured, so no converter has seen them.  Every error is in eye-corner
distances (the canonical frame's unit), on the full 478-point mesh.

1. self ACE     FReeNet's average coordinate error with the driver's own first frame as the (still)
                target: converted vs real landmarks.  Copying the driver is exact here (0), and so is
                delta; a learned converter shows what it loses on a face it has not seen.
2. synth ACE    a synthetic identity (dataset.synthetic_identity, fixed seeds) of each val clip's first
                frame is the target, the real clip drives it: the truth is the synthetic identity
                performing each frame.  Both directions (real driver -> synthetic target, synthetic
                driver -> real target); 3 identities each.
3. real pairs   val stills as targets x val clips as drivers (no truth): `oval` = mean distance of the
                FACE_OVAL points to the target's own (identity kept: lower is better; the jaw moves part
                of it legitimately), `expr` = L2 distance of the nine expression controls of the result
                (relative to the target) to the driver's (relative to its reference).
4. speed        onnxruntime: landmark sets/s in batches of 1024 (goal >= 87,800) and one frame including
                the call, median of 2000 (goal <= 0.1 ms), each the better of 1 and 2 intra-op
                threads, next to DESIGN.md's 956-256-956 MLP yardstick measured alike (the machine's
                load scales every number); lsg: frames/s (goal >= 1,500).
A benchmark reports; nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from reenact_fx.face import controls
from reenact_fx.face import geometry as g
from reenact_fx.components import ConvertInput
from reenact_fx.errors import ReenactError
from reenact_fx.face import canonical
from reenact_fx.learning import dataset
from reenact_fx.pipeline.registry import default_registry

SHARED = Path(os.environ.get("REENACT_FX_SHARED")
              or Path(__file__).resolve().parents[2] / "shared" / "data" / "faces")
GOAL_BATCH, GOAL_SINGLE_MS, GOAL_LSG = 87_800, 0.1, 1_500
OVAL = list(g.FACE_OVAL)


def convert_input(target: np.ndarray, driver: np.ndarray) -> ConvertInput:
    """A still target (478, 3) driven by a clip (T, 478, 3), both in pixels."""
    n = len(driver)
    return ConvertInput(driver=driver, driver_valid=np.ones(n, bool), driver_ref=driver[0],
                        target=np.repeat(target[None], n, 0), target_valid=np.ones(n, bool),
                        target_ref=target, target_is_still=True, fps=25.0)


def converters() -> dict:
    """Every registered converter whose weights load (the others are reported and left out)."""
    reg = default_registry()
    out = {"raw driver": None}
    for name in ["delta"] + [n for n in reg.names("converter") if n != "delta"]:
        conv = reg.get("converter", name)()
        try:
            if hasattr(conv, "session"):
                conv.session()
        except ReenactError as exc:
            print(f"skipped {name}: {exc}")
            continue
        out[name] = conv
    return out


def run(conv, x: ConvertInput) -> np.ndarray:
    return x.driver.astype(np.float32) if conv is None else conv.convert(x)


def ace(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean())


def accuracy(ds: dataset.LandmarkDataset, convs: dict, frames: int | None) -> dict:
    val = ds.subset("val")
    clips = [int(c) for c in np.unique(val.clip) if (val.clip == c).sum() > 1]
    stills = [int(c) for c in np.unique(val.clip) if (val.clip == c).sum() == 1]
    res = {name: {"self": [], "synth": [], "oval": [], "expr": []} for name in convs}
    for c in clips:
        rows = val.clip_rows(c)[:frames]
        pts, shapes = val.points[rows], val.shapes[rows]
        sims = canonical.fit(pts)
        x = convert_input(pts[0], pts)
        for name, conv in convs.items():                                   # 1. self
            res[name]["self"].append(ace(canonical.normalize(run(conv, x))[0], shapes))
        for k in range(3):                                                 # 2. synthetic
            syn = dataset.synthetic_identity(shapes, np.random.default_rng([c, k]))
            syn_px = canonical.denormalize(syn, sims)
            for tgt, drv, truth in ((syn_px[0], pts, syn), (pts[0], syn_px, shapes)):
                x = convert_input(tgt, drv)
                for name, conv in convs.items():
                    res[name]["synth"].append(ace(canonical.normalize(run(conv, x))[0], truth))
        for s in stills:                                                   # 3. real pairs
            tgt = val.points[val.clip_rows(s)[0]]
            t_shape = canonical.normalize(tgt)[0]
            x = convert_input(tgt, pts)
            want = controls.measure(pts, pts[0])
            for name, conv in convs.items():
                out = run(conv, x)
                res[name]["oval"].append(ace(canonical.normalize(out)[0][:, OVAL], t_shape[OVAL]))
                got = controls.measure(out, tgt)
                d = np.stack([got[k] - want[k] for k in controls.EXPRESSION], 1)
                res[name]["expr"].append(float(np.linalg.norm(d, axis=1).mean()))
    names = [val.clips[c] for c in clips]
    return {"clips": names, "stills": [val.clips[s] for s in stills],
            "table": {n: {k: float(np.mean(v)) if v else float("nan") for k, v in r.items()}
                      for n, r in res.items()}}


def _feed(sess, n: int, rng) -> dict:
    feed = {}
    for i in sess.get_inputs():
        shape = [n if not isinstance(d, int) else d for d in i.shape]
        feed[i.name] = rng.normal(0, 0.3, shape).astype(np.float32)
    return feed


def _rates(sess, rng) -> tuple[float, float]:
    """(batched landmark sets/s at 1024 a call, median ms of a one-frame call incl. the call)."""
    names = [o.name for o in sess.get_outputs()]
    big, one = _feed(sess, 1024, rng), _feed(sess, 1, rng)
    sess.run(names, big)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        sess.run(names, big)
        reps += 1
    rate = reps * 1024 / (time.perf_counter() - t0)
    for _ in range(200):
        sess.run(names, one)
    times = []
    for _ in range(2000):
        t = time.perf_counter()
        sess.run(names, one)
        times.append(time.perf_counter() - t)
    return rate, 1e3 * float(np.median(times))


def _session(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _reference_mlp(folder: str) -> str | None:
    """DESIGN.md's yardstick, a 956->256->956 MLP (random weights; needs the onnx package)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    w1, w2 = (rng.normal(0, 0.05, s).astype(np.float32) for s in ((956, 256), (256, 956)))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           ["N", 956])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 956])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = os.path.join(folder, "mlp956.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def speed(convs: dict) -> dict:
    """Each ONNX component at 1 and 2 intra-op threads (the better of the two counts: one thread
    wins on a busy machine, two on an idle one), plus the reference MLP measured alike."""
    import tempfile

    rng = np.random.default_rng(0)
    paths = {}
    for name, conv in convs.items():
        sess = conv.session() if conv is not None and hasattr(conv, "session") else None
        if sess is not None and getattr(sess, "_model_path", None):
            paths[name] = sess._model_path
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref = _reference_mlp(tmp)
        if ref:
            paths["(956-256-956 MLP)"] = ref
        for name, path in paths.items():
            r1, r2 = (_rates(_session(path, th), rng) for th in (1, 2))
            out[name] = {"batched_per_s": max(r1[0], r2[0]), "single_ms": min(r1[1], r2[1]),
                         "threads": 1 if r1[0] >= r2[0] else 2}
    return out


def smoothing(ds: dataset.LandmarkDataset, speed: bool) -> None:
    """lsg on the held-out clips: held-back gaps filled vs linear interpolation of the pixels, tracker
    jitter (plus 2 % noise) smoothed vs one_euro, and frames/s of ``smooth`` (goal >= 1,500)."""
    reg = default_registry()
    if "lsg" not in reg.names("smoother"):
        return
    lsg, one_euro = reg.get("smoother", "lsg")(), reg.get("smoother", "one_euro")()
    val = ds.subset("val")
    clips = [val.clip_rows(int(c)) for c in np.unique(val.clip) if (val.clip == c).sum() > 60]
    print("\nlsg on held-out clips (errors in eye-corner distances)")
    print(f"{'gap frames':<12}{'lsg':>9}{'linear':>9}{'ratio':>8}")
    for gap in (2, 4, 8, 12):
        e_l, e_lin = [], []
        for rows in clips:
            pts = val.points[rows]
            if not (np.diff(val.frame[rows]) == 1).all():
                continue
            valid = np.ones(len(pts), bool)
            starts = np.arange(3, len(pts) - gap - 3, gap + 6)
            for a in starts:
                valid[a:a + gap] = False
            out = lsg.__class__({"mode": "fill"}).smooth(pts, valid, 25.0)
            lin = pts.copy()
            for a in starts:
                u = (np.arange(1, gap + 1) / (gap + 1))[:, None, None]
                lin[a:a + gap] = pts[a - 1] + (pts[a + gap] - pts[a - 1]) * u
            size = np.array([g.face_size(p) for p in pts])[~valid, None]
            e_l.append(float((np.linalg.norm(out[~valid] - pts[~valid], axis=-1) / size).mean()))
            e_lin.append(float((np.linalg.norm(lin[~valid] - pts[~valid], axis=-1) / size).mean()))
        print(f"{gap:<12}{np.mean(e_l):>9.4f}{np.mean(e_lin):>9.4f}{np.mean(e_l) / np.mean(e_lin):>8.3f}")
    rng = np.random.default_rng(0)
    e = {"noisy": [], "lsg": [], "one_euro": []}
    for rows in clips:
        pts = val.points[rows]
        size = np.array([g.face_size(p) for p in pts])[:, None]
        noisy = (pts + rng.normal(0, 0.02, pts.shape) * size[:, :, None]).astype(np.float32)
        valid = np.ones(len(pts), bool)
        for name, out in (("noisy", noisy), ("lsg", lsg.smooth(noisy, valid, 25.0)),
                          ("one_euro", one_euro.smooth(noisy, valid, 25.0))):
            e[name].append(float((np.linalg.norm(out - pts, axis=-1) / size).mean()))
    print("tracked clips + 2 % noise, error to the tracked landmarks: "
          + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in e.items()))
    if speed:
        pts = val.points[clips[0]]
        valid = np.ones(len(pts), bool)
        lsg.smooth(pts, valid, 25.0)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 2.0:
            lsg.smooth(pts, valid, 25.0)
            reps += 1
        rate = reps * len(pts) / (time.perf_counter() - t0)
        print(f"lsg smooth(): {rate:,.0f} frames/s (goal >= {GOAL_LSG:,}: "
              f"{'PASS' if rate >= GOAL_LSG else 'MISS'})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, help="cut each driver clip to its first N frames")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--data", help="a dataset built from the shared faces (default: build it)")
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"shared faces not found at {SHARED} (set REENACT_FX_SHARED)", file=sys.stderr)
        return 1
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    ds = dataset.LandmarkDataset.load(args.data) if args.data else dataset.build([str(SHARED)])
    convs = converters()
    acc = accuracy(ds, convs, args.frames)
    print(f"held-out clips: {', '.join(os.path.basename(c) for c in acc['clips'])}; "
          f"stills: {', '.join(os.path.basename(c) for c in acc['stills'])}")
    print("errors in eye-corner distances (lower is better)")
    print(f"{'converter':<14}{'self ACE':>10}{'synth ACE':>11}{'oval':>9}{'expr':>9}")
    for name, r in acc["table"].items():
        print(f"{name:<14}{r['self']:>10.4f}{r['synth']:>11.4f}{r['oval']:>9.4f}{r['expr']:>9.3f}")
    if not args.no_speed:
        sp = speed(convs)
        print(f"\nonnxruntime ({'/'.join(sorted({p for c in convs.values() if c is not None and hasattr(c, 'session') for p in c.session().get_providers()}))})")
        print(f"{'component':<19}{'batched sets/s':>16}{'goal':>9}{'single ms':>11}{'goal':>8}")
        for name, r in sp.items():
            ok_b = "PASS" if r["batched_per_s"] >= GOAL_BATCH else "MISS"
            ok_s = "PASS" if r["single_ms"] <= GOAL_SINGLE_MS else "MISS"
            if name.startswith("("):
                ok_b = ok_s = ""
            print(f"{name:<19}{r['batched_per_s']:>16,.0f}{ok_b:>9}{r['single_ms']:>11.4f}{ok_s:>8}"
                  f"   ({r['threads']} thread{'s' if r['threads'] > 1 else ''})")
        if "(956-256-956 MLP)" in sp:
            print("(the reference MLP ran 300,000 sets/s batched on an idle machine, DESIGN.md: "
                  "scale by it when the machine is busy)")
    smoothing(ds, not args.no_speed)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
