"""Run an evaluation: every pair of a manifest with every method; results.json, summary.md, plots.

Manifest (YAML, read with the bounded ``safeyaml`` reader; paths relative to the manifest's folder)::

    pairs:
      - {name: d3-self, kind: self, driver: clips/d3.mp4}          # a clip drives its own first frame
      - {name: s9-d0, kind: cross, target: faces/s9.jpg, driver: clips/d0.mp4}

A method is ``default`` (the built-in settings), a preset name or a preset file, or one of the two
reference baselines, always evaluated too:

- ``baseline.still``  the target, unmoved, for the driver's length (identity perfect, motion none);
- ``baseline.driver`` the driver clip itself, scaled to fit the target's frame (aspect kept, centred,
  black bars): motion perfect, identity wrong.

Every output is rendered losslessly (FFV1, no audio) to a temporary file whatever the preset's output
settings, decoded again and re-tracked with the same tracker as the driver (mediapipe face mesh, no
human check, no cache), so the methods and baselines are measured alike, on the pixels; it is then kept
as H.264 (crf 18) under ``OUT/renders/PAIR/METHOD.mp4`` for viewing.  (Measuring the H.264 file would
make the results irreproducible: libx264's bytes vary from run to run under CPU load.)
A self pair's target is the clip's first frame (written as a PNG in a temporary folder); its ssim
compares output frame t with the clip's real frame t.  A cross pair's target may be a still or a clip:
a clip target sets the output's frame grid (the clip effect on a video), its identity is measured
against its own frames and head_tear/bg against its frame at each output time.  The whole manifest
(keys, files, readable media) is checked before anything is rendered.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import cv2
import numpy as np

from ..errors import brief, did_you_mean, FaceError, ReenactError
from ..media import MediaReader, MediaWriter
from ..pipeline.progress import Progress
from ..face.tracking import FaceTracker
from ..face import geometry as g
from ..face.track import N_LANDMARKS, LandmarkTrack
from . import headtear as H
from . import metrics as M

BASELINES = ("baseline.still", "baseline.driver")
KINDS = ("self", "cross")
PAIR_KEYS = ("name", "kind", "driver", "target")
METRICS = ("csim", "psim", "ed", "lsim", "ssim", "jitter", "face_rate", "head_tear", "mouth_r",
           "mouth_gain", "eye_r", "bg", "fps")
EXTRA_METRICS = ("pose_deg", "eye_gain")
CSIM_FRAMES = 32          # output frames embedded per pair and method (evenly spaced)
SHEET_FRAMES = 6          # columns of the contact sheet
TRACKING = {"verify_human": False}
EVAL_OUTPUT = {"codec": "ffv1", "audio": "none", "alpha": False}   # measured losslessly
DIGITS = 6


class ManifestError(ReenactError):
    """A manifest that cannot be read or does not validate (names the file and the key path)."""


@dataclass(frozen=True)
class Pair:
    name: str
    kind: str                 # self | cross
    driver: str               # absolute path
    target: str | None        # absolute path (cross); None for self pairs (the driver's first frame)


@dataclass
class Method:
    name: str                 # as given: default, a preset name or path, or a baseline
    settings: Any = None      # presets.Settings for rendered methods

    @property
    def baseline(self) -> bool:
        return self.name in BASELINES

    @property
    def slug(self) -> str:
        stem = Path(self.name).stem if self.name.endswith((".yaml", ".yml")) else self.name
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)


# ------------------------------------------------------------------------------------------ manifest
def parse_manifest(data: Any, source: str, base: str | os.PathLike | None = None) -> list[Pair]:
    """Pairs from manifest data; ManifestError naming ``source`` and the key path at fault."""
    base = Path(base if base is not None else os.path.dirname(os.path.abspath(source)))
    if not isinstance(data, Mapping):
        raise ManifestError(f"expected a mapping with a 'pairs' list, found {type(data).__name__}",
                            path=source, key="(top level)")
    for key in data:
        if key != "pairs":
            raise ManifestError(f"unknown key{did_you_mean(key, ['pairs'])}; a manifest has: pairs",
                                path=source, key=str(key))
    items = data.get("pairs")
    if not isinstance(items, list) or not items:
        raise ManifestError(f"expected a non-empty list of pairs, found {brief(items)}", path=source,
                            key="pairs")
    pairs, names = [], set()
    for i, item in enumerate(items):
        where = f"pairs[{i}]"
        if not isinstance(item, Mapping):
            raise ManifestError(f"expected a mapping {{name, kind, driver, target}}, found {brief(item)}",
                                path=source, key=where)
        for key in item:
            if key not in PAIR_KEYS:
                raise ManifestError(f"unknown key{did_you_mean(key, PAIR_KEYS)}; a pair has: "
                                    f"{', '.join(PAIR_KEYS)}", path=source, key=f"{where}.{key}")
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ManifestError(f"expected a name of letters, digits, '-', '_' or '.', found {brief(name)}",
                                path=source, key=f"{where}.name")
        if name in names:
            raise ManifestError(f"the name '{name}' is used by an earlier pair", path=source,
                                key=f"{where}.name")
        names.add(name)
        kind = item.get("kind")
        if kind not in KINDS:
            raise ManifestError(f"expected one of {', '.join(KINDS)}, found {brief(kind)}"
                                f"{did_you_mean(kind, KINDS)}", path=source, key=f"{where}.kind")
        paths = {}
        wanted = ("driver",) if kind == "self" else ("driver", "target")
        if kind == "self" and "target" in item:
            raise ManifestError("a self pair has no target (the clip drives its own first frame); "
                                "use kind: cross", path=source, key=f"{where}.target")
        for key in wanted:
            value = item.get(key)
            if not isinstance(value, str) or not value:
                raise ManifestError(f"expected a file path, found {brief(value)}", path=source,
                                    key=f"{where}.{key}")
            p = Path(os.path.expanduser(value))
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise ManifestError(f"file not found: {p}", path=source, key=f"{where}.{key}")
            paths[key] = str(p.resolve())
        pairs.append(Pair(name, kind, paths["driver"], paths.get("target")))
    return pairs


def load_manifest(path: str | os.PathLike) -> list[Pair]:
    from ..config import safeyaml

    path = str(path)
    try:
        data = safeyaml.read(path, "manifest")
    except safeyaml.YamlError as exc:
        raise ManifestError(exc.message, path=path) from None
    return parse_manifest(data, path)


def resolve_methods(spec: str | list[str]) -> list[Method]:
    """Methods from "default,NAME,..." (preset names or paths), then both baselines (once each)."""
    from ..config.presets import Settings, load

    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    out: list[Method] = []
    for name in names + [b for b in BASELINES if b not in names]:
        if any(m.name == name for m in out):
            continue
        if name in BASELINES:
            out.append(Method(name))
        elif name == "default":
            out.append(Method(name, Settings()))
        elif name.startswith("baseline."):
            raise ReenactError(f"unknown baseline '{name}'{did_you_mean(name, BASELINES)}; baselines: "
                               f"{', '.join(BASELINES)}", key="methods")
        else:
            out.append(Method(name, load(name)))
    slugs = [m.slug for m in out]
    for m in out:
        if slugs.count(m.slug) > 1:
            raise ReenactError(f"two methods would write the same render file ({m.slug}.mp4)",
                               key="methods")
    return out


# ------------------------------------------------------------------------------------------ media
def _track(path: str, progress: Callable[[int, int], None] | None = None) -> LandmarkTrack:
    with FaceTracker(TRACKING) as tracker, MediaReader(path) as reader:
        return tracker.track_media(reader, progress=progress)


def _track_output(path: str, progress=None) -> LandmarkTrack:
    """An output's track; one where no face is found at all scores face_rate 0, not an error."""
    try:
        return _track(path, progress)
    except FaceError:
        with MediaReader(path) as r:
            info = r.info
        n = len(info.times)
        return LandmarkTrack(path=path, size=(info.width, info.height),
                             points=np.zeros((n, N_LANDMARKS, 3), np.float32),
                             valid=np.zeros(n, bool), times=np.asarray(info.times, np.float64),
                             notes=["no face found in the output"])


def _raw(track: LandmarkTrack) -> np.ndarray:
    """Frames where a face was really tracked (interpolated ones excluded)."""
    return track.valid & ~track.filled


def _trim(src: str, dst: str, frames: int) -> str:
    """The first ``frames`` frames of a clip, losslessly (FFV1), at its own rate.  In an MP4 container:
    Matroska rounds timestamps to milliseconds, which would shift frames in time-based mapping."""
    with MediaReader(src) as r:
        info = r.info
        with MediaWriter(dst, info.width, info.height, info.fps, codec="ffv1", protect=[src]) as w:
            for i, rgb in r.frames():
                if i >= frames:
                    break
                w.write(rgb)
    return dst


def _first_frame_png(src: str, dst: str) -> str:
    with MediaReader(src) as r:
        rgb = r.frame_at(0)
    if not cv2.imwrite(dst, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ReenactError("cannot write the self pair's target frame", path=dst)
    return dst


def _transcode(src: str, dst: str) -> str:
    """The lossless measured output as H.264 (crf 18), to look at."""
    with MediaReader(src) as r:
        info = r.info
        with MediaWriter(dst, info.width, info.height, info.fps, protect=[src]) as w:
            for _, rgb in r.frames():
                w.write(rgb)
    return dst


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` scaled to fit (width, height), aspect kept, centred on black."""
    h, w = rgb.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    if (nw, nh) == (w, h):
        scaled = rgb
    else:
        scaled = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    if (nw, nh) == (width, height):
        return scaled
    canvas = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = scaled
    return canvas


def _write_baseline(method: str, target: str, driver: str, out: str,
                    progress: Callable[[int, int], None] | None) -> int:
    with MediaReader(target) as t:
        still = t.frame_at(0)
        if not t.info.is_still:   # a video target: the clip itself (still) or the driver in it
            return _write_video_baseline(method, t, driver, out, progress)
    h, w = still.shape[:2]
    with MediaReader(driver) as d:
        n, fps = d.info.frame_count, d.info.fps
        with MediaWriter(out, w, h, fps, codec="ffv1", protect=[target, driver]) as writer:
            if method == "baseline.still":
                for i in range(n):
                    writer.write(still)
                    if progress:
                        progress(i + 1, n)
                return n
            done = 0
            for _, rgb in d.frames():
                writer.write(_fit(rgb, w, h))
                done += 1
                if progress:
                    progress(done, n)
            return done


def _write_video_baseline(method: str, t: MediaReader, driver: str, out: str, progress) -> int:
    """Baselines of a video target, on its frame grid: its own frames, or the driver's frame at
    each of its times fitted into its frame."""
    info = t.info
    n = info.frame_count
    with MediaReader(driver) as d, MediaWriter(out, info.width, info.height, info.fps,
                                               codec="ffv1", protect=[t.path, driver]) as writer:
        di = d.info
        for i, rgb in t.frames():
            if method == "baseline.driver":
                j = min(int(round(i / float(info.fps) * float(di.fps))), di.frame_count - 1)
                rgb = _fit(d.frame_at(j), info.width, info.height)
            writer.write(rgb)
            if progress:
                progress(i + 1, n)
    return n


def _render(method: Method, target: str, driver: str, out: str,
            bar: Callable[[str, int], Progress | None]) -> tuple[int, float]:
    """Render with the method's settings (no cache, so tracking counts in the speed): frames, fps."""
    from ..pipeline.effect import Effect

    settings = method.settings.overridden(params={"output": dict(EVAL_OUTPUT)})
    bars: dict[str, Progress | None] = {}

    def on_stage(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = bar(stage, total)
        if bars[stage] is not None:
            bars[stage](done, total)

    t0 = time.perf_counter()
    with Effect(**settings.effect_kwargs(), cache=False) as fx:
        a = fx.analyze(target, driver, progress=on_stage)
        fx.render(out, progress=lambda d, n: on_stage("render", d, n), players=False)  # FFV1 in MP4
    seconds = time.perf_counter() - t0
    return a.frame_count, a.frame_count / seconds


# ------------------------------------------------------------------------------------------ per output
@dataclass
class Output:
    """One rendered output, re-tracked, and what the plots need of it."""

    method: str
    path: str
    track: LandmarkTrack
    metrics: dict[str, float | None]
    frames: dict[int, np.ndarray] = field(default_factory=dict)   # sampled frames (contact sheet)


def _sample(n: int, k: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist())) if n else []


def _clean(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), DIGITS)


def measure_output(pair: Pair, out_path: str, out_track: LandmarkTrack, drv: LandmarkTrack,
                   target_embedding: np.ndarray, sheet_idx: list[int],
                   reference: Callable[[int], tuple[np.ndarray, np.ndarray] | None] | None = None,
                   per_frame: dict | None = None
                   ) -> tuple[dict[str, float | None], dict[int, np.ndarray]]:
    """Every metric of one output (but fps), and its frames at ``sheet_idx``.

    ``reference(i)`` gives the target's picture and landmarks that output frame i started from (the
    still, or a video target's frame), for head_tear and bg; ``per_frame`` (a dict) receives the
    per-frame head_tear errors, for finding the worst frames."""
    from .identity import embed

    n = len(out_track)
    d_idx = M.nearest_frames(drv.times, out_track.times)
    dpts, dval = drv.points[d_idx], _raw(drv)[d_idx]
    opts, oval = out_track.points, _raw(out_track)
    res: dict[str, float | None] = {
        "psim": M.psim(opts, dpts, oval, dval),
        "pose_deg": M.pose_deg(opts, dpts, oval, dval),
        "ed": M.ed(opts, dpts, oval, dval),
        "lsim": M.lsim(opts, dpts, oval, dval),
        "jitter": M.jitter_ratio(opts, dpts, oval, dval),
        "face_rate": M.face_rate(out_track.valid, out_track.filled),
    }
    both = oval & dval
    res["mouth_r"], res["mouth_gain"] = H.follow(g.mouth_opening(opts[both]),
                                                 g.mouth_opening(dpts[both]))
    res["eye_r"], res["eye_gain"] = H.follow(g.eye_opening(opts[both]), g.eye_opening(dpts[both]))
    tears, bgs = [], []
    csim_idx = set(i for i in _sample(n, CSIM_FRAMES) if oval[i])
    embeddings, ssims, sheet = [], [], {}
    self_pair = pair.kind == "self"
    real = MediaReader(drv.path) if self_pair else None
    try:
        real_frames = real.frames() if real else None
        with MediaReader(out_path) as r:
            for i, rgb in r.frames():
                if i in csim_idx:
                    embeddings.append(embed(rgb, opts[i]))
                if i in sheet_idx:
                    sheet[i] = rgb
                ref = reference(i) if reference is not None and oval[i] else None
                if ref is not None:
                    tears.append(H.head_tear_errors(ref[0], ref[1], rgb, opts[i]))
                    bgs.append(H.background_error(ref[0], ref[1], rgb, opts[i]))
                    e = tears[-1]
                    if per_frame is not None and e is not None:
                        score = e[0] / max(e[1], 1e-6)
                        per_frame[i] = score
                        if score > per_frame.get("worst", (None, -1.0, None))[1]:
                            per_frame["worst"] = (i, score, rgb)
                if real_frames is not None:
                    j, real_rgb = next(real_frames, (None, None))
                    if j is not None and i > 0 and dval[i] and d_idx[i] == j \
                            and real_rgb.shape == rgb.shape:
                        ssims.append(M.ssim_face(rgb, real_rgb, dpts[i]))
    finally:
        if real:
            real.close()
    res["csim"] = M.csim(embeddings, target_embedding)
    res["head_tear"] = H.head_tear(tears)
    bgs = [b for b in bgs if b is not None]
    res["bg"] = float(np.mean(bgs)) if bgs else None
    res["ssim"] = float(np.nanmean(ssims)) if ssims and np.isfinite(ssims).any() else None
    return res, sheet


# ------------------------------------------------------------------------------------------ run
def run(manifest: str | os.PathLike, methods: str | list[str] = "default",
        out: str | os.PathLike = "eval", *, frames: int | None = None, stream=None,
        quiet: bool = False, plots: bool = True) -> dict:
    """Evaluate every pair of ``manifest`` with every method (plus the baselines) into ``out``.

    ``frames`` caps each driver's length (its first N frames), for quick runs.  Returns the results
    (what results.json holds)."""
    stream = stream or sys.stderr
    pairs = load_manifest(manifest)
    chosen = resolve_methods(methods)
    if frames is not None and frames < 3:
        raise ReenactError(f"expected at least 3 frames, found {frames}", key="frames")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=stream, flush=True)

    def bar(stage: str, total: int):
        return None if quiet else Progress(stage, total, stream=stream)

    _check_media(pairs, str(manifest))   # the whole manifest, before anything is rendered
    results: list[dict] = []
    per_pair: dict[str, dict] = {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reenact-fx-eval-") as tmp:
        for pi, pair in enumerate(pairs, 1):
            say(f"[{pi}/{len(pairs)}] {pair.name} ({pair.kind}): driver {pair.driver}"
                + (f", target {pair.target}" if pair.target else ""))
            driver = pair.driver
            if frames is not None:
                with MediaReader(driver) as r:
                    if r.info.frame_count > frames:
                        driver = _trim(driver, os.path.join(tmp, f"{pair.name}.driver.mp4"), frames)
            target = pair.target
            if pair.kind == "self":
                target = _first_frame_png(driver, os.path.join(tmp, f"{pair.name}.target.png"))
            with MediaReader(target) as r:
                target_still = r.info.is_still
            if not target_still and frames is not None:
                with MediaReader(target) as r:
                    if r.info.frame_count > frames:
                        target = _trim(target, os.path.join(tmp, f"{pair.name}.target.mp4"), frames)
            b = bar(f"{pair.name} track driver", 0)
            drv = _track(driver, b)
            tgt = _track(target)
            target_embedding = _target_embedding(target, tgt)
            folder = out / "renders" / pair.name
            folder.mkdir(parents=True, exist_ok=True)
            outputs: list[Output] = []
            sheet_idx = _sample(len(drv) if target_still else len(tgt), SHEET_FRAMES)
            worst: dict[str, tuple] = {}
            for m in chosen:
                path = os.path.join(tmp, f"{pair.name}.{m.slug}.ffv1.mp4")   # measured, then dropped
                view = str(folder / f"{m.slug}.mp4")                        # kept, for people
                if m.baseline:
                    n = _write_baseline(m.name, target, driver, path,
                                        bar(f"{pair.name} {m.name} write", 0))
                    fps = None
                else:
                    n, fps = _render(m, target, driver, path,
                                     lambda stage, total: bar(f"{pair.name} {m.name} {stage}",
                                                              total))
                b = bar(f"{pair.name} {m.name} re-track", n)
                track = _track_output(path, b)
                per_frame: dict = {}
                with _References(target, tgt, track) as ref:
                    values, sheet = measure_output(pair, path, track, drv, target_embedding,
                                                   sheet_idx, ref, per_frame)
                if "worst" in per_frame:
                    worst[m.name] = per_frame["worst"]
                values["fps"] = fps
                metrics = {k: _clean(values.get(k)) for k in METRICS + EXTRA_METRICS}
                _transcode(path, view)
                os.remove(path)
                results.append({"name": pair.name, "kind": pair.kind, "method": m.name,
                                "target": "still" if target_still else "video",
                                "frames": n, "output": os.path.relpath(view, out),
                                "worst_frame": worst[m.name][0] if m.name in worst else None,
                                "metrics": metrics})
                outputs.append(Output(m.name, view, track, metrics, sheet))
                say(f"  {m.name:<16} " + "  ".join(
                    f"{k} {_fmt(metrics[k])}" for k in METRICS if metrics[k] is not None))
            per_pair[pair.name] = {"pair": pair, "driver": drv, "outputs": outputs,
                                   "driver_frames": _frames_at(driver, sheet_idx),
                                   "worst": worst, "target": target}

    data = {"version": 1, "methods": [m.name for m in chosen], "frames_cap": frames,
            "pairs": results}
    _write_json(out / "results.json", data)
    (out / "summary.md").write_text(summary_markdown(data, plots=plots), encoding="utf-8")
    if plots:
        from . import plots as P
        pdir = out / "plots"
        pdir.mkdir(exist_ok=True)
        P.metric_bars(data, str(pdir / "metrics.png"))
        for name, info in per_pair.items():
            P.traces(info["driver"], info["outputs"], str(pdir / f"{name}.traces.png"), title=name)
            P.jitter(info["driver"], info["outputs"], str(pdir / f"{name}.jitter.png"), title=name)
            P.contact_sheet(info["driver"], info["driver_frames"], info["outputs"],
                            str(pdir / f"{name}.sheet.png"), title=name)
            if info["worst"]:
                P.worst_frames(info["worst"], str(pdir / f"{name}.worst.png"), title=name)
    say(f"wrote {out / 'results.json'}, {out / 'summary.md'}"
        + (f" and plots in {out / 'plots'}" if plots else "")
        + f" ({time.perf_counter() - t_start:.0f}s)")
    return data


def _check_media(pairs: list[Pair], source: str) -> None:
    """Open every pair's media before any rendering: a bad pair fails the run at once, naming it."""
    for i, pair in enumerate(pairs):
        for key in ("driver", "target"):
            path = getattr(pair, key)
            if path is None:
                continue
            try:
                with MediaReader(path) as r:
                    r.frame_at(0)
                    if key == "driver" and r.info.is_still:
                        raise ManifestError("the driver must be a clip, found a still image",
                                            path=source, key=f"pairs[{i}].driver")
            except ManifestError:
                raise
            except ReenactError as exc:
                raise ManifestError(f"cannot read {path}: {exc}", path=source,
                                    key=f"pairs[{i}].{key}") from None


def _target_embedding(target: str, tgt: LandmarkTrack, k: int = 8) -> np.ndarray:
    """The target's identity embedding: the still's, or the mean over ``k`` frames of a clip
    (identity is measured against the target's own frames)."""
    from .identity import embed

    raw = _raw(tgt)
    idx = [i for i in _sample(len(tgt), k) if raw[i]] or [int(np.argmax(raw))]
    with MediaReader(target) as r:
        vecs = [embed(r.frame_at(i), tgt.points[i]) for i in idx]
    vecs = [v / (np.linalg.norm(v) + 1e-12) for v in vecs]
    return np.mean(vecs, 0)


class _References:
    """reference(i): the target picture and landmarks output frame i started from: the still, or
    the video target's frame at output frame i's time (frames read forward, as measured)."""

    def __init__(self, target: str, tgt: LandmarkTrack, out: LandmarkTrack):
        self.reader = MediaReader(target)
        self.still = self.reader.info.is_still
        self.raw = _raw(tgt)
        self.tgt = tgt
        self.index = M.nearest_frames(tgt.times, out.times) if not self.still else None
        self.first = int(np.argmax(self.raw))

    def __call__(self, i: int):
        j = self.first if self.still else int(self.index[min(i, len(self.index) - 1)])
        if not self.raw[j]:
            return None
        return self.reader.frame_at(j), self.tgt.points[j]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reader.close()


def _frames_at(path: str, idx: list[int]) -> dict[int, np.ndarray]:
    want, got = set(idx), {}
    with MediaReader(path) as r:
        for i, rgb in r.frames():
            if i in want:
                got[i] = rgb
            if len(got) == len(want):
                break
    return got


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ summary
def _fmt(v: float | None, key: str = "") -> str:
    if v is None:
        return "–"
    if key == "fps":
        return f"{v:.1f}"
    return f"{v:.3f}"


ARROWS = {"csim": "↑", "psim": "↑", "ed": "↓", "lsim": "↑", "ssim": "↑", "jitter": "≈1",
          "face_rate": "↑", "fps": "↑", "head_tear": "↓", "mouth_r": "↑", "mouth_gain": "≈1",
          "eye_r": "↑", "bg": "↓"}
BASELINE_NOTE = ("`baseline.still`: the target unmoved (identity perfect, motion none); "
                 "`baseline.driver`: the driver clip itself, fitted into the target's frame "
                 "(motion perfect, identity wrong).")


def summary_markdown(data: dict, plots: bool = True) -> str:
    """Tables like the papers': one per pair (methods x metrics) and the mean over pairs; the best
    non-baseline value of each column in bold."""
    rows = data["pairs"]
    names = list(dict.fromkeys(r["name"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["# Evaluation", "",
             "Metrics (↑ higher is better, ↓ lower; jitter is the output's landmark jitter over the "
             "driver's, 1 = as steady): csim identity vs the target (dlib ResNet), psim head pose vs "
             "the driver, ed expression-control distance vs the driver, lsim landmark similarity "
             "(FACEGAN), ssim vs the real frames (self pairs), face_rate, fps (render speed, "
             "analysis included). Definitions: `reenact_fx/evaluation/metrics.py`.", "",
             BASELINE_NOTE, ""]

    def table(title: str, values: dict[str, dict[str, float | None]], cols: list[str]) -> None:
        lines.append(f"## {title}")
        lines.append("")
        lines.append("| method | " + " | ".join(f"{c} {ARROWS.get(c, '')}".strip() for c in cols)
                     + " |")
        lines.append("|---|" + "---:|" * len(cols))
        best = {}
        for c in cols:
            vals = [(m, values[m].get(c)) for m in methods if m not in BASELINES
                    and values[m].get(c) is not None]
            hib = M.HIGHER_IS_BETTER.get(c)
            if len(vals) > 1 and hib is not None:
                key = (lambda mv: mv[1]) if hib else (lambda mv: -mv[1])
                best[c] = max(vals, key=key)[1]
            elif len(vals) > 1:
                best[c] = min(vals, key=lambda mv: abs(mv[1] - 1))[1]
        for m in methods:
            cells = []
            for c in cols:
                v = values[m].get(c)
                s = _fmt(v, c)
                if v is not None and c in best and v == best[c] and m not in BASELINES:
                    s = f"**{s}**"
                cells.append(s)
            label = f"*{m}*" if m in BASELINES else m
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")

    for name in names:
        sel = {r["method"]: r["metrics"] for r in rows if r["name"] == name}
        kind = next(r["kind"] for r in rows if r["name"] == name)
        frames = next(r["frames"] for r in rows if r["name"] == name)
        cols = [c for c in METRICS if not (c == "ssim" and kind != "self")]
        table(f"{name} ({kind}, {frames} frames)", sel, cols)
    if len(names) > 1:
        mean = {}
        for m in methods:
            mean[m] = {}
            for c in METRICS:
                vals = [r["metrics"][c] for r in rows if r["method"] == m
                        and r["metrics"][c] is not None]
                mean[m][c] = round(float(np.mean(vals)), DIGITS) if vals else None
        table(f"mean over {len(names)} pairs (ssim: self pairs only)", mean, list(METRICS))
    if plots:
        lines += ["## Plots", "", "- `plots/metrics.png`: one bar chart per metric across methods",
                  *[f"- `plots/{n}.traces.png`, `plots/{n}.jitter.png`, `plots/{n}.sheet.png`"
                    for n in names], ""]
    return "\n".join(lines)
