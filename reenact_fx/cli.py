"""``reenact-fx``: render, demo, plugins, presets, analyze, eval, dataset, train, export, serve,
batch."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import did_you_mean, ReenactError
from .native_logs import add_verbose_flag
from .params import parse_assignments

KIND_FLAGS = ("converter", "generator", "smoother", "mixer")
# the output schema's choices (pipeline.schemas.OUTPUT: importing it costs --help 0.6-2 s,
# tests/test_first_hour.py keeps the two equal)
CODEC_CHOICES = ("h264", "prores", "prores4444", "dnxhr", "ffv1", "png")
AUDIO_CHOICES = ("driver", "target", "none")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="reenact-fx", description="Face reenactment as a video effect.")
    p.add_argument("--version", action="version", version=f"reenact-fx {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="make the target perform the driver's expressions and motion")
    r.add_argument("--target", "-t", required=True, help="portrait still or clip of the person to animate")
    r.add_argument("--driver", "-d", help="clip whose expressions and head motion are used (not "
                   "needed when keyframed controls replace it)")
    r.add_argument("-o", "--output", required=True, help="output file (or folder for --codec png)")
    _add_look_args(r)
    r.add_argument("--preview", nargs="?", const="", metavar="PATH",
                   help="also write a side-by-side driver | target | result with landmarks "
                        "(default path: OUTPUT's name + .preview.mp4)")
    r.add_argument("--no-cache", action="store_true",
                   help="track again even if this media was tracked with these settings before")
    r.add_argument("--cache-dir", metavar="DIR", help="where tracking results are cached (default: "
                   "$REENACT_FX_CACHE, else $XDG_CACHE_HOME/reenact-fx, else ~/.cache/reenact-fx)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    r.add_argument("--watermark", nargs="?", const="SYNTHETIC", metavar="TEXT",
                   help="draw TEXT (default SYNTHETIC) in a corner of every frame")
    r.add_argument("--c2pa-key", metavar="KEY.pem", help="sign a C2PA manifest (synthetic media, "
                   "tool, settings and source hashes) into the output with this private key "
                   "(needs: pip install c2pa-python)")
    r.add_argument("--c2pa-cert", metavar="CHAIN.pem", help="the certificate chain of --c2pa-key "
                   "(signing certificate first); default: certificates in the key file")

    d = sub.add_parser("demo", help="animate scikit-image's astronaut portrait with a built-in "
                       "performance (no media or network needed)")
    d.add_argument("-o", "--output", default="reenact-fx-demo.mp4",
                   help="output video; a contact sheet is written beside it as .png")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    sub.add_parser("plugins", help="list every component with its parameters")

    an = sub.add_parser("analyze", help="measure the expression controls of a clip's face: print "
                        "their traces and save a plot")
    an.add_argument("media", help="clip or still")
    an.add_argument("--reference", default="first", help="frame the traces are relative to: "
                    "first, neutral, or a frame number")
    an.add_argument("--plot", metavar="PNG", help="where to save the plot (default: MEDIA's name + "
                    ".controls.png in the current folder)")
    an.add_argument("--csv", metavar="CSV", help="also write every frame's values")
    an.add_argument("--no-cache", action="store_true", help="track again")
    an.add_argument("--cache-dir", metavar="DIR", help="where tracking results are cached "
                    "(default as for render)")
    an.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    ev = sub.add_parser("eval", help="evaluate methods on a manifest of target/driver pairs: "
                        "results.json, summary.md (metric tables) and plots")
    ev.add_argument("--manifest", "-m", required=True, metavar="PAIRS.yaml",
                    help="YAML: pairs: [{name, kind: self|cross, driver, target}] (paths relative "
                    "to the manifest's folder)")
    ev.add_argument("--methods", default="default", metavar="default,NAME,...",
                    help="comma-separated: default, preset names or files; baseline.still and "
                    "baseline.driver are always added")
    ev.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    ev.add_argument("--frames", type=int, metavar="N", help="use only each driver's first N frames "
                    "(quick runs)")
    ev.add_argument("--no-plots", action="store_true", help="write results.json and summary.md only")
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    sv = sub.add_parser("serve", help="run the render service the OFX and frei0r plugins talk to "
                        "(started by them on demand)")
    sv.add_argument("--socket", metavar="PATH", help="Unix socket to listen on (default: "
                    "$REENACT_FX_SOCKET, else $XDG_RUNTIME_DIR/reenact-fx/serve.sock, else "
                    "/tmp/reenact-fx-UID/serve.sock)")
    sv.add_argument("--idle-timeout", type=float, default=600.0, metavar="S",
                    help="exit after this many seconds without a request (0: never)")
    sv.add_argument("--cache-dir", metavar="DIR", help="analysis cache and uploaded media "
                    "(default as for render)")

    dr = sub.add_parser("doctor", help="check the installation: face models, codecs, onnxruntime, "
                        "plugins, cache, render service (run this before filing a bug)")
    dr.add_argument("--cache-dir", metavar="DIR", help="the cache folder to check (default as for render)")
    dr.add_argument("--socket", metavar="PATH", help="the service socket to check (default as for serve)")
    vf = sub.add_parser("verify", help="show the provenance a render carries (metadata, C2PA manifest); "
                        "exit 1 when a file does not declare itself synthetic")
    vf.add_argument("files", nargs="+", metavar="FILE")

    ds = sub.add_parser("dataset", help="landmark datasets for training the learned components")
    dss = ds.add_subparsers(dest="action", required=True)
    db = dss.add_parser("build", help="track clips and stills into a landmark dataset (.npz)")
    db.add_argument("inputs", nargs="*", metavar="INPUT", help="media files or folders (searched "
                    "recursively); faceless or non-human media are skipped with a note")
    db.add_argument("-o", "--output", required=True, metavar="DS.npz", help="dataset file to write")
    db.add_argument("--manifest", metavar="M.yaml", help="YAML: identities: {name: [file, ...]} "
                    "(files of one person; paths relative to the manifest); default: one identity "
                    "per file")
    db.add_argument("--val-fraction", type=float, default=0.25, help="share of identities held "
                    "out for validation (default 0.25)")
    db.add_argument("--seed", type=int, default=0, help="seed of the identity split")
    db.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    dsh = dss.add_parser("show", help="summarise a landmark dataset")
    dsh.add_argument("path", metavar="DS.npz")

    tr = sub.add_parser("train", help="train a learned component on a landmark dataset (needs "
                        "torch: pip install \".[train]\")")
    tr.add_argument("method", help="component name, e.g. freenet.ulc")
    tr.add_argument("--data", required=True, metavar="DATA", help="landmark components: a dataset "
                    "from `dataset build`; image components (freenet.gag, facegan.reenactor, "
                    "facegan.bgmix): a clip, a folder of clips/stills or an image dataset .npz")
    tr.add_argument("--out", required=True, metavar="DIR", help="folder for the checkpoint and "
                    "the loss curves")
    tr.add_argument("--steps", type=int, help="optimisation steps (default: the method's own)")
    tr.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    tr.add_argument("--force", action="store_true", help="start a new run in a DIR that holds one "
                    "(its checkpoint.pt and best.pt are replaced)")
    tr.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the "
                    "batches (default 0; a run is deterministic given its seed)")
    tr.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    tr.add_argument("--size", type=int, choices=(64, 128, 256), help="image components: the "
                    "face crop size (default 128)")
    tr.add_argument("--init", metavar="WEIGHTS", help="image components: start from these "
                    "weights (\"shipped\", an ONNX file or a checkpoint): a person-specific "
                    "fine-tune")
    tr.add_argument("--max-frames", type=int, help="image components: frames kept per clip "
                    "(evenly spaced; default 120)")
    tr.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="image components: override a training setting (repeatable), e.g. "
                    "--config width=8 --config val_every=50")

    ex = sub.add_parser("export", help="export a trained checkpoint to ONNX (the weights a "
                        "component's `weights` parameter takes)")
    ex.add_argument("method", help="component name, e.g. freenet.ulc")
    ex.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint written by "
                    "`reenact-fx train` (DIR/best.pt: the best on held-out identities)")
    ex.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="ONNX file to write")

    ps = sub.add_parser("presets", help="list, show, validate and save YAML presets")
    pss = ps.add_subparsers(dest="action", required=True)
    pss.add_parser("list", help="presets on the search path")
    show = pss.add_parser("show", help="print a preset's effective settings")
    show.add_argument("name", help="preset name or file")
    val = pss.add_parser("validate", help="check a preset file")
    val.add_argument("path", metavar="FILE", help="preset YAML file (or name) to check against the "
                     "components' parameter schemas")
    save = pss.add_parser("save", help="write the effective settings of these options as a preset")
    save.add_argument("path", metavar="FILE", help="YAML file to write")
    save.add_argument("--description", default="", help="what the look is for")
    _add_look_args(save)
    _batch_parser(sub)
    add_verbose_flag(p)
    return p


def _batch_parser(sub) -> None:
    from .batch.cli import add_arguments

    add_arguments(sub.add_parser("batch", help="render the reenact-fx clips of an OpenTimelineIO "
                                 "timeline headless (resumable; local pool or Ray); annotate clips"))


def _add_look_args(p: argparse.ArgumentParser) -> None:
    """The options that choose a look: a preset, components, parameters."""
    p.add_argument("--preset", "-p", metavar="NAME|PATH",
                   help="start from a preset (see `reenact-fx presets list`); options below override it")
    for kind in KIND_FLAGS:
        p.add_argument(f"--{kind}", help=f"{kind} component (see `reenact-fx plugins`)")
    p.add_argument("--set", "-s", action="append", default=[], metavar="COMPONENT.PARAM=VALUE",
                   help="set a parameter (repeatable), e.g. delta.expression=1.2, tracking.max_gap=1")
    p.add_argument("--codec", choices=CODEC_CHOICES, help="video codec (shortcut for --set "
                   "output.codec=...): h264 (default), prores (422 HQ), prores4444, dnxhr, ffv1, "
                   "png (a folder of frames)")
    p.add_argument("--audio", choices=AUDIO_CHOICES, help="audio track (shortcut for --set "
                   "output.audio=...): the driver's (default), the target's, or none")
    p.add_argument("--alpha", action="store_true", help="write the face matte as alpha "
                   "(with --codec prores4444 or png)")
    p.add_argument("--controls", metavar="FILE", help="keyframed expression controls (YAML: mode "
                   "add|replace, interpolation, keys: {smile: [[t, v], ...]}); overrides the preset's")


def _settings(args):
    """The effective settings of a command line: its preset, overridden by its options."""
    from .config.presets import Settings, load, load_controls

    params = parse_assignments(args.set)
    for flag in ("codec", "audio"):
        if getattr(args, flag):
            params.setdefault("output", {})[flag] = getattr(args, flag)
    if args.alpha:
        params.setdefault("output", {})["alpha"] = "true"
    base = load(args.preset) if args.preset else Settings()
    out = base.overridden({k: getattr(args, k) for k in KIND_FLAGS}, params)
    if args.controls:
        out.controls = load_controls(args.controls)
    return out


def _render(args) -> int:
    from .pipeline.effect import Effect
    from .pipeline.progress import Progress

    settings = _settings(args)
    fx = Effect(**settings.effect_kwargs(),
                cache=False if args.no_cache else (args.cache_dir or True))
    bars: dict[str, Progress] = {}

    def on_stage(stage, done, total):
        if args.quiet:
            return
        bar = bars.get(stage) or bars.setdefault(stage, Progress(stage, total))
        bar(done, total)

    t0 = time.perf_counter()
    with fx:
        # every output decision is checked before any frame is decoded; warnings as they are known
        fx.on_warning = lambda text: print(f"warning: {text}", file=sys.stderr)
        preview = args.preview
        if preview == "":
            preview = os.path.splitext(args.output)[0] + ".preview.mp4"
        fx.plan_output(args.output, preview=preview, target=args.target, driver=args.driver)
        c2pa = (args.c2pa_key, args.c2pa_cert) if args.c2pa_key else None
        if c2pa:
            from .provenance import check_signing

            check_signing(*c2pa)
        # streamed: the render starts once the first frames are tracked, the rest is tracked
        # while it runs (the notes known then are printed now, the trackers' own at the end)
        a = fx.analyze(args.target, args.driver, progress=on_stage, stream=True)
        said = set(a.notes)
        for note in a.notes:
            print(f"note: {note}", file=sys.stderr)
        bar = None if args.quiet else Progress("render", a.frame_count)
        path = fx.render(args.output, progress=bar, preview=preview, watermark=args.watermark,
                         c2pa=c2pa)
        if bar:
            bar.finish()
        for note in fx.analysis.notes:
            if note not in said:
                print(f"note: {note}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {path} ({a.frame_count} frames, {a.size[0]}x{a.size[1]} @ {float(a.fps):g} fps"
              f", {time.perf_counter() - t0:.1f}s)" + (f"; preview {preview}" if preview else ""),
              file=sys.stderr)
    return 0


def _demo(args) -> int:
    import tempfile

    import cv2
    import numpy as np

    from .demo import PERFORMANCE, astronaut_path
    from .pipeline.effect import Effect
    from .pipeline.progress import Progress

    with tempfile.TemporaryDirectory() as tmp, Effect(controls=PERFORMANCE) as fx:
        a = fx.analyze(astronaut_path(tmp))
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
    from .pipeline.schemas import CORE_SCHEMAS
    from .pipeline.registry import default_registry

    reg = default_registry()
    for kind in KIND_FLAGS:
        print(f"{kind}s:")
        for name in reg.names(kind):
            cls = reg.get(kind, name)
            mark = " (default)" if reg.default(kind) == name else ""
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


def _analyze(args) -> int:
    import numpy as np

    from .evaluation.plots import plot_traces
    from .face import control_report, controls
    from .pipeline.effect import Effect
    from .face.tracking import reference_index
    from .pipeline.progress import Progress

    bar = None if args.quiet else Progress("track", 0)
    with Effect(cache=False if args.no_cache else (args.cache_dir or True)) as fx:
        track = fx.track(args.media, progress=(lambda _s, d, n: bar(d, n)) if bar else None)
    if bar:
        bar.finish()
    ref = reference_index(track, args.reference)
    valid = track.valid
    if len(track) == 1:
        print(f"{args.media}: a still, a face in it")
        print("\n".join(control_report.still_table(track)))
        for note in track.notes:
            print(f"note: {note}", file=sys.stderr)
        return 0
    traces = controls.traces(track.points, track.points[ref])
    print(f"{args.media}: {len(track)} frames, a face in {int(valid.sum())}; relative to frame {ref}")
    print("\n".join(control_report.trace_table(track, traces)))
    plot = args.plot or os.path.splitext(os.path.basename(args.media))[0] + ".controls.png"
    plot_traces({k: np.where(valid, v, np.nan) for k, v in traces.items()}, track.times,
                plot, title=f"{os.path.basename(args.media)} (relative to frame {ref})")
    print(f"plot: {plot}")
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as f:
            f.write("time,face," + ",".join(controls.NAMES) + "\n")
            for i in range(len(track)):
                f.write(f"{track.times[i]:.4f},{int(valid[i])},"
                        + ",".join(f"{traces[n][i]:.5f}" for n in controls.NAMES) + "\n")
        print(f"csv: {args.csv}")
    for note in track.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _eval(args) -> int:
    from .evaluation.harness import run

    run(args.manifest, args.methods, args.out, frames=args.frames, quiet=args.quiet,
        plots=not args.no_plots)
    if not args.quiet:
        print((open(os.path.join(args.out, "summary.md"), encoding="utf-8").read()))
    return 0


def _dataset(args) -> int:
    from .learning import dataset
    from .pipeline.progress import Progress

    if args.action == "show":
        print(dataset.LandmarkDataset.load(args.path).summary())
        return 0
    if not args.inputs and not args.manifest:
        raise ReenactError("give media files or folders, or a --manifest", key="inputs")
    bars: dict[str, Progress] = {}

    def on_file(name, done, total):
        bar = bars.get(name) or bars.setdefault(name, Progress(name[:8], total))
        bar(done, total)

    ds = dataset.build(args.inputs, args.output, manifest=args.manifest,
                       val_fraction=args.val_fraction, seed=args.seed,
                       progress=None if args.quiet else on_file)
    print(ds.summary())
    print(f"wrote {args.output if args.output.endswith('.npz') else args.output + '.npz'}",
          file=sys.stderr)
    return 0


def _learned(method: str):
    """The learned component named ``method`` (any kind); torch must be importable."""
    from .components import trainable
    from .errors import PluginError
    from .pipeline.registry import default_registry

    reg = default_registry()
    found = [c for c in reg.all() if c.name == method]
    if not found:
        
        names = sorted({c.name for c in reg.all() if trainable(c)})
        hint = did_you_mean(method, [c.name for c in reg.all()])
        raise PluginError(f"no component named '{method}'{hint}; learned components: "
                          f"{', '.join(names) or 'none'}", key="method")
    cls = found[0]
    if not trainable(cls):
        raise PluginError(f"{cls.kind} '{method}' is not a learned component (nothing to train)",
                          key="method")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ReenactError("training and export need torch: pip install \".[train]\"") from None
    return cls


def _train(args) -> int:
    from .pipeline.progress import Progress

    import inspect

    from .learning.run_folder import check_run_folder

    check_run_folder(args.out, resume=args.resume, force=args.force)
    cls = _learned(args.method)
    options = {k: v for k, v in (("size", args.size), ("init", args.init),
                                 ("max_frames", args.max_frames),
                                 ("config", _config_pairs(args.config))) if v}
    accepted = inspect.signature(cls.training().train).parameters
    for k in options:
        if k not in accepted:
            raise ReenactError(f"{args.method} takes no --{k.replace('_', '-')} (it trains on a "
                               "landmark dataset)", key=k)
    bar = None if args.quiet else Progress("train", args.steps or 1, unit="steps/s")

    def show(stage, d, n):
        # a new kind of work (tracking, cropping, training) restarts the rate and the ETA
        if stage.split(" ", 1)[0] != bar.stage.split(" ", 1)[0] or n != bar.total:
            bar.restart(n)
        bar.stage = stage
        bar(d, n)

    path = cls.train(args.data, args.out, steps=args.steps, resume=args.resume, seed=args.seed,
                     progress=show if bar else None, **options)
    if bar:
        bar.finish()
    print(f"wrote {path} (loss curves: {os.path.join(os.path.dirname(path), 'losses.png')}); "
          f"export with: reenact-fx export {args.method} --checkpoint {path} -o OUT.onnx",
          file=sys.stderr)
    return 0


def _config_pairs(items: list[str]) -> dict:
    """``KEY=VALUE`` strings as a dict, values read as YAML scalars (numbers, booleans, text)."""
    from .config import safeyaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReenactError(f"expected KEY=VALUE, found {item!r}", key="config")
        out[key.strip()] = safeyaml.parse(value, f"--config {key.strip()}") if value.strip() else ""
    return out


def _export(args) -> int:
    cls = _learned(args.method)
    path = cls.export(args.checkpoint, args.output)
    print(f"wrote {path}; use it with --set {cls.name}.weights={path}", file=sys.stderr)
    return 0


def _presets(args) -> int:
    from .config import presets

    if args.action == "list":
        names = presets.available()
        width = max((len(n) for n in names), default=0)
        for name, path in names.items():
            try:
                desc = presets.load(str(path)).description
            except ReenactError as exc:
                desc = f"(invalid: {exc})"
            print(f"{name:<{width}}  {desc}  [{path}]")
        return 0
    if args.action == "show":
        print(presets.load(args.name).to_yaml(), end="")
        return 0
    if args.action == "validate":
        s = presets.load(args.path)
        print(f"{args.path}: valid ({', '.join(f'{k} {v}' for k, v in s.components.items())})")
        return 0
    settings = _settings(args)
    settings.description = args.description or settings.description
    from .pipeline.effect import Effect

    Effect(**settings.effect_kwargs())   # the same validation a render would do
    print(f"wrote {presets.save(settings, args.path)}", file=sys.stderr)
    return 0


def _doctor(args) -> int:
    from . import doctor

    return doctor.run(cache_dir=args.cache_dir, socket_path=args.socket)


def _verify(args) -> int:
    from . import provenance

    worst = 0
    for path in args.files:
        text, synthetic = provenance.summary(provenance.read(path))
        print(text)
        worst = max(worst, 0 if synthetic else 1)
    return worst


def _serve(args) -> int:
    from .host.service import serve

    return serve(args.socket, idle_timeout=args.idle_timeout, cache_dir=args.cache_dir)


def _batch(args) -> int:
    from .batch.cli import main as batch

    return batch(args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import interrupts

    if argv is None:    # run as the program (not called in-process): native log lines filtered
        from .native_logs import silence

        silence(verbose=args.verbose)
    try:
        with interrupts.handled():   # SIGTERM/SIGHUP stop a render as cleanly as Ctrl-C
            return {"render": _render, "demo": _demo, "plugins": _plugins, "presets": _presets,
                    "analyze": _analyze, "eval": _eval, "dataset": _dataset, "train": _train,
                    "export": _export, "serve": _serve, "batch": _batch, "doctor": _doctor,
                    "verify": _verify}[args.command](args)
    except ReenactError as exc:
        print(f"reenact-fx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        why = f" ({exc.args[0]})" if exc.args else ""
        print(f"reenact-fx: interrupted{why}; no output was left behind", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `reenact-fx plugins | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())      # nothing more to flush at exit either
        return 141


if __name__ == "__main__":
    sys.exit(main())
