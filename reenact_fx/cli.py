"""``reenact-fx``: render, list plugins."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import ReenactError
from .params import parse_assignments

KIND_FLAGS = ("converter", "generator", "smoother", "mixer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reenact-fx", description="Face reenactment as a video effect.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="make the target perform the driver's expressions and motion")
    r.add_argument("--target", "-t", required=True, help="portrait still or clip of the person to animate")
    r.add_argument("--driver", "-d", required=True, help="clip whose expressions and head motion are used")
    r.add_argument("-o", "--output", required=True, help="output file (or folder for --codec png)")
    for kind in KIND_FLAGS:
        r.add_argument(f"--{kind}", help=f"{kind} component (see `reenact-fx plugins`)")
    r.add_argument("--set", "-s", action="append", default=[], metavar="COMPONENT.PARAM=VALUE",
                   help="set a parameter (repeatable), e.g. delta.expression=1.2, tracking.max_gap=1")
    r.add_argument("--codec", help="shortcut for --set output.codec=...")
    r.add_argument("--audio", help="shortcut for --set output.audio=... (driver, target, none)")
    r.add_argument("--alpha", action="store_true", help="write the face matte as alpha "
                   "(with --codec prores4444 or png)")
    r.add_argument("--preview", nargs="?", const="", metavar="PATH",
                   help="also write a side-by-side driver | target | result with landmarks "
                        "(default path: OUTPUT's name + .preview.mp4)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    d = sub.add_parser("demo", help="animate scikit-image's astronaut portrait with a built-in "
                       "performance (no media or network needed)")
    d.add_argument("-o", "--output", default="reenact-fx-demo.mp4",
                   help="output video; a contact sheet is written beside it as .png")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    sub.add_parser("plugins", help="list every component with its parameters")
    return p


def _render(args) -> int:
    from .effect import Effect
    from .progress import Progress

    params = parse_assignments(args.set)
    for flag in ("codec", "audio"):
        if getattr(args, flag):
            params.setdefault("output", {})[flag] = getattr(args, flag)
    if args.alpha:
        params.setdefault("output", {})["alpha"] = "true"
    fx = Effect(**{k: getattr(args, k) for k in KIND_FLAGS}, params=params)
    bars: dict[str, Progress] = {}

    def on_stage(stage, done, total):
        if args.quiet:
            return
        bar = bars.get(stage) or bars.setdefault(stage, Progress(stage, total))
        bar(done, total)

    t0 = time.perf_counter()
    with fx:
        a = fx.analyze(args.target, args.driver, progress=on_stage)
        for note in a.notes:
            print(f"note: {note}", file=sys.stderr)
        preview = args.preview
        if preview == "":
            preview = os.path.splitext(args.output)[0] + ".preview.mp4"
        bar = None if args.quiet else Progress("render", a.frame_count)
        path = fx.render(args.output, progress=bar, preview=preview)
        if bar:
            bar.finish()
    if not args.quiet:
        print(f"wrote {path} ({a.frame_count} frames, {a.size[0]}x{a.size[1]} @ {float(a.fps):g} fps"
              f", {time.perf_counter() - t0:.1f}s)" + (f"; preview {preview}" if preview else ""),
              file=sys.stderr)
    return 0


def _demo(args) -> int:
    import tempfile

    import cv2
    import numpy as np

    from .demo import astronaut_path, performance
    from .effect import Effect
    from .progress import Progress

    with tempfile.TemporaryDirectory() as tmp, Effect() as fx:
        a = fx.analyze(astronaut_path(tmp),
                       lambda target: performance(target.points[0], target.size))
        bar = None if args.quiet else Progress("render", a.frame_count)
        path = fx.render(args.output, progress=bar)
        if bar:
            bar.finish()
        picks = np.linspace(0, a.frame_count - 1, 8).round().astype(int)
        pts = a.dst[:, :468, :2].reshape(-1, 2)      # one crop around the face for every tile
        (cx, cy), half = (pts.min(0) + pts.max(0)) / 2, (pts.max(0) - pts.min(0)).max() * 0.8
        x0, y0 = max(int(cx - half), 0), max(int(cy - half), 0)
        x1, y1 = int(cx + half), int(cy + half)
        tiles = [cv2.resize(fx.render_frame(int(t))[y0:y1, x0:x1], (256, 256),
                            interpolation=cv2.INTER_AREA) for t in picks]
        sheet = np.vstack([np.hstack(tiles[:4]), np.hstack(tiles[4:])])
        sheet_path = os.path.splitext(path)[0] + ".png"
        cv2.imwrite(sheet_path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not args.quiet:
        print(f"wrote {path} and contact sheet {sheet_path}", file=sys.stderr)
    return 0


def _plugins(args) -> int:
    from .effect import CORE_SCHEMAS
    from .registry import DEFAULTS, default_registry

    reg = default_registry()
    for kind in KIND_FLAGS:
        print(f"{kind}s:")
        for name in reg.names(kind):
            cls = reg.get(kind, name)
            mark = " (default)" if DEFAULTS[kind] == name else ""
            print(f"  {name} {cls.version}{mark} — {cls.summary}  [plugin: {reg.origin(cls)}]")
            for prm in cls.params:
                print(f"      {prm.describe()}")
    print("core stages:")
    for name, schema in CORE_SCHEMAS.items():
        print(f"  {name}")
        for prm in schema.params:
            print(f"      {prm.describe()}")
    for problem in reg.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"render": _render, "demo": _demo, "plugins": _plugins}[args.command](args)
    except ReenactError as exc:
        print(f"reenact-fx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reenact-fx: interrupted; no output was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
