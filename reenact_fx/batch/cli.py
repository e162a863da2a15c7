"""``reenact-fx batch TIMELINE --out DIR`` and ``reenact-fx batch annotate TIMELINE ...``."""

from __future__ import annotations

import argparse
import os
import sys
from fractions import Fraction

from . import BatchError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Render the reenact-fx effects of an OpenTimelineIO timeline (any format the installed "
        "adapters read: .otio, FCP XML, CMX 3600 EDL...) into DIR: the rendered media, a relinked "
        "timeline (the input's format and .otio) and report.json.  Rerunning the same command "
        "resumes: finished clips are skipped.  `reenact-fx batch annotate TIMELINE --clip NAME "
        "--driver D -o OUT.otio` adds an effect to a clip.")
    p.add_argument("items", nargs="+", metavar="TIMELINE", help="the timeline (or: annotate "
                   "TIMELINE)")
    r = p.add_argument_group("rendering")
    r.add_argument("--out", metavar="DIR", help="output folder (media/, the relinked timeline, "
                   "report.json, journal.jsonl)")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process pool (default); ray: Ray tasks")
    r.add_argument("--workers", "-j", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="parallel jobs (processes; for Ray the CPU slots of the local cluster)")
    r.add_argument("--address", help="Ray cluster to use instead of a local one (e.g. auto, "
                   "ray://head:10001)")
    r.add_argument("--chunk-frames", type=int, metavar="N", help="split clips longer than N frames "
                   "into chunks rendered by separate tasks (0: one task per clip; default 0 for "
                   "local, 200 for ray)")
    r.add_argument("--cpus-per-task", type=float, default=1.0, help="Ray: CPUs per task")
    r.add_argument("--gpus-per-task", type=float, default=0.0, help="Ray: GPUs per task")
    r.add_argument("--handles", type=int, default=0, metavar="FRAMES",
                   help="also render this many frames before and after each clip")
    r.add_argument("--rate", metavar="FPS", help="output frame rate (default: the timeline's, "
                   "else each clip's); also the rate an EDL is read at (default 24)")
    r.add_argument("--codec", help="output codec of every clip (h264, prores, prores4444, dnxhr, "
                   "ffv1, png), over each clip's look")
    r.add_argument("--formats", default="", metavar="SUFFIX,...", help="also write the relinked "
                   "timeline in these formats (e.g. edl,xml)")
    r.add_argument("--no-cache", action="store_true", help="track again (no analysis cache)")
    r.add_argument("--cache-dir", metavar="DIR", help="analysis cache shared by the workers "
                   "(default as for render; on a cluster: a shared folder)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    a = p.add_argument_group("annotate")
    a.add_argument("--clip", metavar="NAME", help="the clip: NAME, TRACK/NAME or TRACK#INDEX")
    a.add_argument("--driver", "-d", help="driver media")
    a.add_argument("--driver-in", type=float, default=0.0, metavar="S",
                   help="seconds into the driver at the clip's first frame")
    a.add_argument("--preset", "-p", metavar="NAME|PATH")
    a.add_argument("--set", "-s", action="append", default=[], metavar="COMPONENT.PARAM=VALUE")
    a.add_argument("--controls", metavar="FILE", help="keyframed expression controls")
    a.add_argument("--replace", action="store_true", help="replace the clip's reenact_fx effect")
    a.add_argument("-o", "--output", metavar="OUT", help="annotated timeline to write")


def _rate(text: str | None) -> Fraction | None:
    if not text:
        return None
    try:
        rate = Fraction(text) if "/" in text else Fraction(float(text)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise BatchError(f"expected a frame rate such as 25 or 30000/1001, found {text!r}",
                         key="rate") from None
    if rate <= 0:
        raise BatchError(f"expected a positive frame rate, found {text}", key="rate")
    return rate


def main(args) -> int:
    items = args.items
    if items[0] == "annotate":
        if len(items) != 2 or not args.clip or not args.output:
            raise BatchError("usage: reenact-fx batch annotate TIMELINE --clip NAME "
                             "(--driver D | --controls F) -o OUT")
        from .annotate import annotate

        sets = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise BatchError(f"expected component.param=value, found {item!r}", key="set")
            sets[key.strip()] = value
        path = annotate(items[1], args.output, args.clip, driver=args.driver,
                        driver_in=args.driver_in, preset=args.preset, sets=sets,
                        controls=args.controls, replace=args.replace, rate=_rate(args.rate))
        print(f"wrote {path}", file=sys.stderr)
        return 0
    if len(items) != 1 or not args.out:
        raise BatchError("usage: reenact-fx batch TIMELINE --out DIR")
    from .runner import Options, run

    chunk = args.chunk_frames if args.chunk_frames is not None else (
        200 if args.executor == "ray" else 0)
    opts = Options(executor=args.executor, workers=args.workers, address=args.address,
                   chunk_frames=max(0, chunk), handles=max(0, args.handles),
                   rate=_rate(args.rate),
                   cache=False if args.no_cache else (args.cache_dir or True),
                   formats=[f for f in args.formats.split(",") if f.strip()],
                   cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                   quiet=args.quiet, codec=args.codec)
    report = run(items[0], args.out, opts)
    return 1 if report["failed"] or report["timeline_errors"] else 0
