"""The evaluation's plots: matplotlib figures on the Agg canvas (no pyplot, no global state), PNG.

- :func:`metric_bars`   one bar chart per metric, methods on x, one bar per pair;
- :func:`traces`        driver vs outputs: mouth opening, eye closure and head yaw over time;
- :func:`jitter`        per-frame landmark jitter of the driver before and after smoothing (the
                        default one-euro smoother), and of every output;
- :func:`contact_sheet` sampled frames, face-cropped: the driver, then each method's output;
- :func:`plot_traces`   the expression-control traces of one clip (`reenact-fx analyze`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import cv2
import numpy as np

from ..face.controls import BY_NAME, NAMES, measure
from ..face.track import LandmarkTrack
from . import metrics as M

PAIR_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")
METHOD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#17becf", "#bcbd22")
BASELINE_STYLE = {"baseline.still": ("0.55", ":"), "baseline.driver": ("0.35", "--")}
TITLES = {"csim": "csim ↑  identity vs target", "psim": "psim ↑  head pose vs driver",
          "ed": "ed ↓  expression distance", "lsim": "lsim ↑  landmark similarity",
          "ssim": "ssim ↑  vs real frames (self)", "jitter": "jitter ≈1  output / driver",
          "face_rate": "face_rate ↑", "fps": "fps ↑  render speed"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _method_style(i: int, name: str) -> tuple[str, str, float]:
    if name in BASELINE_STYLE:
        colour, ls = BASELINE_STYLE[name]
        return colour, ls, 1.0
    return METHOD_COLOURS[i % len(METHOD_COLOURS)], "-", 1.3


# ------------------------------------------------------------------------------------------ bars
def metric_bars(data: dict, path: str, metrics: Sequence[str] = tuple(TITLES)) -> str:
    rows = data["pairs"]
    pairs = list(dict.fromkeys(r["name"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    value = {(r["name"], r["method"]): r["metrics"] for r in rows}
    cols = 4
    nrows = -(-len(metrics) // cols)
    fig = _figure(4.2 * cols, 3.2 * nrows + 0.5)
    width = 0.8 / max(len(pairs), 1)
    x = np.arange(len(methods))
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(nrows, cols, k + 1)
        top = 0.0
        for j, pair in enumerate(pairs):
            for i, m in enumerate(methods):
                v = value.get((pair, m), {}).get(metric)
                if v is None:
                    continue
                xi = x[i] - 0.4 + width * (j + 0.5)
                base = m.startswith("baseline.")
                ax.bar(xi, v, width * 0.92, color=PAIR_COLOURS[j % len(PAIR_COLOURS)],
                       alpha=0.45 if base else 0.95, hatch="//" if base else None,
                       edgecolor="0.3", linewidth=0.5, label=pair if i == 0 or
                       not any(value.get((pair, mm), {}).get(metric) is not None
                               for mm in methods[:i]) else None)
                ax.text(xi, v, _label(v, metric), ha="center", va="bottom", fontsize=6,
                        rotation=90 if len(pairs) * len(methods) > 12 else 0)
                top = max(top, v)
        if metric == "jitter":
            ax.axhline(1.0, color="0.3", lw=0.8, ls="--", zorder=0)
        if metric in ("csim", "psim", "lsim", "ssim", "face_rate"):
            ax.set_ylim(0, 1.12)
        else:
            ax.set_ylim(0, top * 1.18 + 1e-9)
        ax.set_title(TITLES.get(metric, metric), fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels([m.replace("baseline.", "base.\n") for m in methods], fontsize=7,
                           rotation=0)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7, loc="lower left", title="pair", title_fontsize=7)
    fig.suptitle("Metrics per method (hatched: reference baselines)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _label(v: float, metric: str) -> str:
    return f"{v:.1f}" if metric == "fps" else f"{v:.2f}"


# ------------------------------------------------------------------------------------------ traces
def _relative(points: np.ndarray, valid: np.ndarray, ref: int | None) -> dict[str, np.ndarray]:
    n = len(points)
    out = {k: np.full(n, np.nan) for k in ("mouth", "eyes", "yaw")}
    if ref is None:
        return out
    m = measure(points[valid].astype(np.float64), points[ref].astype(np.float64))
    out["mouth"][valid] = m["jaw_open"]
    out["eyes"][valid] = 0.5 * (np.asarray(m["blink_left"]) + np.asarray(m["blink_right"]))
    out["yaw"][valid] = m["yaw"]
    return out


def _aligned(drv: LandmarkTrack, out: LandmarkTrack):
    idx = M.nearest_frames(drv.times, out.times)
    dval = (drv.valid & ~drv.filled)[idx]
    oval = out.valid & ~out.filled
    return drv.points[idx], dval, out.points, oval


def traces(drv: LandmarkTrack, outputs: Sequence, path: str, title: str = "") -> str:
    """Driver (black) and every output's mouth opening, eye closure and yaw, each relative to the
    first frame with a face in both (the metrics' reference)."""
    fig = _figure(11, 7)
    axes = [fig.add_subplot(3, 1, i + 1) for i in range(3)]
    labels = {"mouth": "mouth: jaw_open [0.4 IOD]", "eyes": "eyes: blink (mean of both) [closure]",
              "yaw": "head yaw [deg]"}
    drawn_driver = False
    for i, o in enumerate(outputs):
        dpts, dval, opts, oval = _aligned(drv, o.track)
        _, ref = M.common(oval, dval)
        t = o.track.times
        if not drawn_driver:
            d = _relative(dpts, dval, ref)
            for ax, k in zip(axes, labels):
                ax.plot(t, d[k], color="black", lw=2.4, alpha=0.8, label="driver")
            drawn_driver = True
        r = _relative(opts, oval, ref)
        colour, ls, lw = _method_style(i, o.method)
        for ax, k in zip(axes, labels):
            ax.plot(t, r[k], color=colour, ls=ls, lw=lw, label=o.method)
    for ax, k in zip(axes, labels):
        ax.set_ylabel(labels[k], fontsize=8)
        ax.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time [s]", fontsize=8)
    axes[0].legend(fontsize=7, ncol=min(6, len(outputs) + 1), loc="upper right")
    fig.suptitle(f"{title}: driver vs outputs (re-tracked), relative to the first frame", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# ------------------------------------------------------------------------------------------ jitter
def smoothed(track: LandmarkTrack, smoother: str = "one_euro", params: dict | None = None) -> np.ndarray:
    """The track's landmarks through a registered smoother (the default: one-euro, its defaults)."""
    from ..pipeline.registry import default_registry

    comp = default_registry().get("smoother", smoother)(params or {})
    valid = track.valid & ~track.filled
    fps = (len(track) - 1) / max(float(track.times[-1] - track.times[0]), 1e-9) if len(track) > 1 \
        else 25.0
    return np.asarray(comp.smooth(track.points, valid, fps), np.float64)


def jitter(drv: LandmarkTrack, outputs: Sequence, path: str, title: str = "") -> str:
    fig = _figure(11, 6)
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    dval = drv.valid & ~drv.filled
    raw = M.jitter_series(drv.points, dval)
    smooth = M.jitter_series(smoothed(drv), dval)
    t = drv.times
    top.plot(t, raw, color="0.5", lw=1.0, label=f"driver, raw tracking (mean {np.nanmean(raw):.4f})")
    top.plot(t, smooth, color="black", lw=1.4,
             label=f"driver, one-euro smoothed (mean {np.nanmean(smooth):.4f})")
    top.set_title("landmark jitter before and after smoothing", fontsize=9)
    bottom.plot(t, raw, color="0.5", lw=1.0, label="driver, raw")
    for i, o in enumerate(outputs):
        _, _, opts, oval = _aligned(drv, o.track)
        s = M.jitter_series(opts, oval)
        colour, ls, lw = _method_style(i, o.method)
        ratio = o.metrics.get("jitter")
        bottom.plot(o.track.times, s, color=colour, ls=ls, lw=lw,
                    label=f"{o.method} (÷driver {ratio:.2f})" if ratio is not None else o.method)
    bottom.set_title("outputs (re-tracked) vs the driver", fontsize=9)
    for ax in (top, bottom):
        ax.set_yscale("log")
        ax.set_ylabel("|2nd difference| [IOD]", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    bottom.set_xlabel("time [s]", fontsize=8)
    fig.suptitle(f"{title}: per-frame landmark jitter", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# ------------------------------------------------------------------------------------------ sheet
TILE = 150
LABEL_W = 150
HEADER_H = 24


def _face_tile(rgb: np.ndarray, pts: np.ndarray | None, fallback: np.ndarray | None) -> np.ndarray:
    box_pts = pts if pts is not None else fallback
    h, w = rgb.shape[:2]
    if box_pts is None:
        side, cx, cy = min(h, w), w / 2, h / 2
    else:
        xy = box_pts[:468, :2]
        lo, hi = xy.min(0), xy.max(0)
        side = float(max(hi - lo)) * 1.35
        cx, cy = (lo + hi) / 2
    s = TILE / max(side, 1.0)
    m = np.array([[s, 0, TILE / 2 - s * cx], [0, s, TILE / 2 - s * cy]])
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, (TILE, TILE),
                          flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float = 0.45) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def contact_sheet(drv: LandmarkTrack, drv_frames: dict, outputs: Sequence, path: str,
                  title: str = "") -> str:
    """Rows: the driver, then each output; columns: sampled frames; each tile a face crop."""
    idx = sorted(drv_frames)
    rows = [("driver", drv_frames, drv, None)] + [(o.method, o.frames, o.track, o) for o in outputs]
    sheet = np.full((HEADER_H + len(rows) * (TILE + 4), LABEL_W + len(idx) * (TILE + 4), 3), 255,
                    np.uint8)
    _text(sheet, title, 6, 17, 0.5)
    for c, i in enumerate(idx):
        _text(sheet, f"frame {i}", LABEL_W + c * (TILE + 4) + 40, 17)
    dval = drv.valid & ~drv.filled
    for r, (name, frames, track, o) in enumerate(rows):
        y = HEADER_H + r * (TILE + 4)
        _text(sheet, name, 6, y + TILE // 2)
        if o is not None and o.metrics.get("csim") is not None:
            _text(sheet, f"csim {o.metrics['csim']:.2f}", 6, y + TILE // 2 + 18, 0.4)
        for c, i in enumerate(idx):
            rgb = frames.get(i)
            if rgb is None:
                continue
            valid = track.valid & ~track.filled
            j = i if track is drv else min(i, len(track) - 1)
            pts = track.points[j] if valid[j] else None
            fallback = drv.points[i] if dval[i] and rgb.shape[:2] == (drv.size[1], drv.size[0]) \
                else None
            x = LABEL_W + c * (TILE + 4)
            sheet[y:y + TILE, x:x + TILE] = _face_tile(rgb, pts, fallback)
    cv2.imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def plot_traces(traces: Mapping[str, np.ndarray], times, path: str, title: str = "") -> str:
    """One small subplot per control (time on x), saved as a PNG at ``path``; returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [k for k in NAMES if k in traces] + [k for k in traces if k not in BY_NAME]
    cols = 4
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(3.0 * cols, 1.7 * rows + (0.4 if title else 0)), dpi=100)
    FigureCanvasAgg(fig)
    t = np.asarray(times, np.float64)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(t, np.asarray(traces[name], np.float64), lw=1.2)
        ctl = BY_NAME.get(name)
        ax.set_title(name if ctl is None else f"{name} [{ctl.unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
