"""The bad-input corpus: each case is a `reenact-fx render` command line on inputs that
``media.Media`` builds, and the outcomes it may have.

Outcome classes (``classify``):
- **error**: exit 2, one ``error:`` line naming the file (or option) and the problem, no traceback, at
  most 1000 characters, and nothing left in the output folder;
- **handled**: exit 0, an output that decodes with at least one frame, nothing partial left, and the
  notes the case asks for (e.g. the damaged frames named);
- **bad**: anything else (a traceback, a crash or kill, a hang, an output over a device, a partial
  left behind, a valid input refused, an error found only after tracking when it could be found
  before).

A case's ``expect`` says which of error/handled count as good for it ("either" for inputs where both a
refusal and a render with a note are reasonable)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .media import Media, bomb

MAX_ERROR_CHARS = 1000


@dataclass
class Ctx:
    """What a case's command line is built from: the corpus's media, the case's own folder."""
    media: Media
    work: Path          # the case's folder (outputs go to work/out/)
    cache: Path         # the analysis cache this case uses

    @property
    def out(self) -> Path:
        return self.work / "out"


@dataclass
class Case:
    name: str
    group: str
    argv: Callable[[Ctx], list[str]]    # after "render"; -q and --cache-dir are added
    expect: str = "either"              # "error", "render" or "either"
    words: Callable[[Ctx], list[str]] | None = None   # an error must name these (case-insensitive)
    output: Callable[[Ctx], Path] | None = None       # the path the case writes (default out/o.mp4)
    early: bool = False                 # an error that must come before any tracking (cache empty)
    check: Callable[[Ctx, int, str], str | None] | None = None   # extra check: None or a reason
    fault: str | None = None            # run as a subprocess with this fault (see test_faults)
    shared: str | None = None           # a file of the shared face material this case needs


def _o(c: Ctx) -> Path:
    return c.out / "o.mp4"


def render(target=None, driver=None, *extra, out=None):
    """argv builder: --target/--driver given as Media attribute names or callables."""
    def build(c: Ctx) -> list[str]:
        argv = []
        for flag, v in (("-t", target), ("-d", driver)):
            if v is None:
                continue
            argv += [flag, str(v(c) if callable(v) else getattr(c.media, v))]
        argv += ["-o", str(out(c) if out else _o(c))]
        return argv + [str(e(c) if callable(e) else e) for e in extra]
    return build


def name_of(attr: str):
    return lambda c: [getattr(c.media, attr).name]


def text_file(name: str, content):
    return lambda c: c.media.text(name, content(c) if callable(content) else content)


def _bomb_flow(levels=9, width=9) -> str:
    """A flow-style YAML list whose last item expands to width**levels strings."""
    items = ['&a0 ["lol"]'] + [f"&a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]"
                               for k in range(1, levels + 1)]
    return "[" + ", ".join(items) + "]"


def _no_partials(c: Ctx) -> str | None:
    left = [p.name for p in c.out.rglob("*") if "partial" in p.name] if c.out.exists() else []
    return f"partial files left: {left}" if left else None


def _is_char_device(c: Ctx, rc: int, err: str) -> str | None:
    p = c.out / "device"
    if not stat.S_ISCHR(os.lstat(p).st_mode):
        return "the device node was replaced"
    return None


def _make_device(c: Ctx) -> Path:
    p = c.out / "device"
    if not p.exists():
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))   # a /dev/null twin inside the case folder
    return p


def _make_fifo(c: Ctx) -> Path:
    p = c.out / "fifo.mp4"
    if not p.exists():
        os.mkfifo(p)
    return p


def _existing_dir(c: Ctx) -> Path:
    p = c.out / "folder.mp4"
    p.mkdir(exist_ok=True)
    return p


def _existing_file(c: Ctx) -> Path:
    p = c.out / "old.mp4"
    p.write_bytes(b"an old render")
    return p


def _png_dir_with_other_files(c: Ctx) -> Path:
    p = c.out / "frames"
    p.mkdir(exist_ok=True)
    (p / "notes.txt").write_text("keep me")
    return p


def _link_to_target(c: Ctx) -> Path:
    p = c.out / "link.png"
    if not p.exists():
        p.symlink_to(c.media.face)
    return p


def _warns(*words):
    def check(c, rc, err):
        low = err.lower()
        missing = [w for w in words if w.lower() not in low]
        return f"no warning with {missing}" if missing else None
    return check


def _file_exists(rel: str):
    def check(c, rc, err):
        return None if (c.out / rel).is_file() else f"{rel} was not written"
    return check


def _weights_of(plugin: str, file: str):
    def path(c: Ctx):
        import reenact_fx_plugins

        return Path(reenact_fx_plugins.__path__[0]) / plugin / "weights" / file
    return path


PRESET_HEAD = "version: 1\n"

CASES: list[Case] = [
    # ---------------------------------------------------------------- media
    Case("empty driver", "media", render("face", "empty"), "error", name_of("empty")),
    Case("text as video", "media", render("face", "notes"), "error", name_of("notes")),
    Case("missing driver", "media", render("face", lambda c: c.work / "nope.mp4"), "error",
         lambda c: ["nope.mp4", "not found"]),
    Case("folder as driver", "media", render("face", lambda c: c.media.root), "error",
         lambda c: [c.media.root.name, "directory"]),
    Case("garbage png target", "media", render("garbage_png", "driver"), "error",
         name_of("garbage_png")),
    Case("truncated png target", "media", render("truncated_png", "driver"), "either",
         name_of("truncated_png")),
    Case("truncated mp4, index at the end", "media", render("face", "truncated_moov_end"), "error",
         name_of("truncated_moov_end")),
    Case("truncated mp4, faststart", "media", render("face", "truncated_faststart"), "either",
         name_of("truncated_faststart"), check=_warns("cut-faststart.mp4")),
    Case("40-frame clip (the undamaged twin of the next case)", "media",
         render("long", "driver", "--audio", "none"), "render"),
    Case("4 KB damage in the middle of the target", "media",
         render("corrupt_middle", "driver", "--audio", "none"), "render",
         check=_warns("corrupt-middle.mp4", "frame")),
    Case("audio-only driver", "media", render("face", "audio_only"), "error",
         lambda c: ["audio-only.m4a", "no video"]),
    Case("one-frame driver", "media", render("face", "one_frame"), "either", name_of("one_frame")),
    Case("one-frame target clip", "media", render("one_frame", "driver"), "either"),
    Case("variable frame rate driver", "media", render("face", "vfr"), "render"),
    Case("odd-sized target", "media", render("odd", "driver"), "render",
         check=_warns("odd", "4:4:4")),
    Case("tiny target (16x16)", "media", render("tiny", "driver"), "error", name_of("tiny")),
    Case("10-bit driver", "media", render("face", "ten_bit"), "render"),
    Case("RGBA still target", "media", render("alpha_still", "driver"), "render",
         check=_warns("alpha")),
    Case("video with alpha as target", "media", render("alpha_video", "driver", "--codec",
                                                       "prores4444", out=lambda c: c.out / "o.mov"),
         "render", output=lambda c: c.out / "o.mov"),
    Case("rotated driver", "media", render("face", "rotated"), "render"),
    Case("grey still", "media", render("grey", "driver"), "render"),
    Case("CMYK JPEG", "media", render("cmyk", "driver"), "render"),
    Case("16-bit PNG", "media", render("sixteen_bit", "driver"), "render"),
    Case("target clip, driver", "media", render("clip", "driver"), "render"),
    Case("same file as target and driver", "media", render("driver", "driver"), "render"),

    # ---------------------------------------------------------------- faces
    Case("no face in the target", "faces", render("no_face", "driver"), "error",
         lambda c: ["coffee.png", "face"]),
    Case("no face in the driver", "faces", render("face", "no_face"), "error",
         lambda c: ["coffee.png", "face"]),
    Case("tiny face in a big frame", "faces", render("tiny_face", "driver"), "either",
         name_of("tiny_face")),
    Case("two faces", "faces", render("two_faces", "driver"), "render"),
    Case("face leaving the frame", "faces", render("face", "leaving"), "render",
         check=_warns("leaving.mp4")),
    Case("blurred face", "faces", render("blurred", "driver"), "either", name_of("blurred")),
    Case("rolled face (70 degrees)", "faces", render("rolled", "driver"), "either", name_of("rolled")),
    Case("animal target", "faces", render(lambda c: c.media.shared("source/s22.jpg"), "driver"), "error",
         lambda c: ["s22.jpg", "human"], shared="source/s22.jpg"),

    # ---------------------------------------------------------------- options
    Case("unknown parameter", "options", render("face", "driver", "--set", "delta.expresion=1"),
         "error", lambda c: ["expresion", "expression"], early=True),
    Case("non-numeric parameter", "options", render("face", "driver", "--set", "delta.expression=abc"),
         "error", lambda c: ["delta.expression", "abc"], early=True),
    Case("parameter out of range", "options", render("face", "driver", "--set", "delta.expression=1e9"),
         "error", lambda c: ["expression"], early=True),
    Case("unknown codec", "options", render("face", "driver", "--codec", "vp9"), "error",
         lambda c: ["vp9"], early=True),
    Case("unknown audio choice", "options", render("face", "driver", "--audio", "loud"), "error",
         lambda c: ["loud"], early=True),
    Case("--alpha with H.264", "options", render("face", "driver", "--alpha"), "error",
         lambda c: ["alpha", "h264"], early=True),
    Case("--codec prores into .mp4", "options", render("face", "driver", "--codec", "prores"), "error",
         lambda c: ["prores", ".mp4"], early=True),
    Case("--codec ffv1 into .mp4", "options", render("face", "driver", "--codec", "ffv1"), "error",
         lambda c: ["ffv1", ".mp4"], early=True),
    Case("-o without extension, --codec prores", "options",
         render("face", "driver", "--codec", "prores", out=lambda c: c.out / "noext"), "render",
         output=lambda c: c.out / "noext.mov"),
    Case("--audio target with a still", "options", render("face", "driver", "--audio", "target"),
         "render", check=_warns("audio", "face.png")),
    Case("silent driver", "options", render("face", "silent"), "render",
         check=_warns("silent.mp4", "no audio")),
    Case("broadcast preset on a silent driver", "options",
         render("face", "silent", "--preset", "broadcast", out=lambda c: c.out / "o.mov"), "render",
         output=lambda c: c.out / "o.mov", check=_warns("silent.mp4", "no audio")),
    Case("unknown converter", "options", render("face", "driver", "--converter", "nosuch"), "error",
         lambda c: ["nosuch"], early=True),
    Case("no driver and no controls", "options", render("face"), "error", lambda c: ["driver"],
         early=True),
    Case("reference frame past the end", "options",
         render("face", "driver", "--set", "effect.reference=frame", "--set",
                "effect.reference_frame=5000"), "either", lambda c: ["5000"]),
    Case("unknown preset name", "options", render("face", "driver", "--preset", "nosuch"), "error",
         lambda c: ["nosuch"], early=True),

    # ---------------------------------------------------------------- presets
    Case("preset: alias bomb in description", "presets",
         render("face", "driver", "--preset",
                text_file("bomb-desc.yaml", PRESET_HEAD + "description: " + _bomb_flow() + "\n")),
         "error", lambda c: ["bomb-desc.yaml"], early=True),
    Case("preset: alias bomb in a parameter", "presets",
         render("face", "driver", "--preset",
                text_file("bomb-param.yaml", PRESET_HEAD + "params:\n  delta:\n    expression: "
                          + _bomb_flow() + "\n")),
         "error", lambda c: ["bomb-param.yaml"], early=True),
    Case("preset: alias bomb in controls.keys", "presets",
         render("face", "driver", "--preset",
                text_file("bomb-keys.yaml", PRESET_HEAD + "controls:\n  keys:\n    smile: "
                          + _bomb_flow() + "\n")),
         "error", lambda c: ["bomb-keys.yaml"], early=True),
    Case("preset: block-style alias bomb", "presets",
         render("face", "driver", "--preset", text_file("bomb-block.yaml", bomb())),
         "error", lambda c: ["bomb-block.yaml"], early=True),
    Case("preset: deep nesting", "presets",
         render("face", "driver", "--preset",
                text_file("deep.yaml", PRESET_HEAD + "description: " + "[" * 20000 + "]" * 20000)),
         "error", lambda c: ["deep.yaml"], early=True),
    Case("preset: 20 MB", "presets",
         render("face", "driver", "--preset",
                text_file("huge.yaml", PRESET_HEAD + "description: '" + "x" * 20_000_000 + "'\n")),
         "error", lambda c: ["huge.yaml"], early=True),
    Case("preset: invalid YAML", "presets",
         render("face", "driver", "--preset", text_file("broken.yaml", "version: 1\nparams: {delta: [\n")),
         "error", lambda c: ["broken.yaml", "yaml"], early=True),
    Case("preset: a list", "presets",
         render("face", "driver", "--preset", text_file("list.yaml", "- 1\n- 2\n")),
         "error", lambda c: ["list.yaml"], early=True),
    Case("preset: empty file", "presets",
         render("face", "driver", "--preset", text_file("empty.yaml", "")),
         "error", lambda c: ["empty.yaml"], early=True),
    Case("preset: binary garbage", "presets",
         render("face", "driver", "--preset", text_file("garbage.yaml", bytes(range(256)) * 20)),
         "error", lambda c: ["garbage.yaml"], early=True),
    Case("preset: python object tag", "presets",
         render("face", "driver", "--preset",
                text_file("tag.yaml", PRESET_HEAD + "description: !!python/object/apply:os.system [id]\n")),
         "error", lambda c: ["tag.yaml"], early=True),
    Case("preset: version 99", "presets",
         render("face", "driver", "--preset", text_file("v99.yaml", "version: 99\n")),
         "error", lambda c: ["v99.yaml", "version"], early=True),
    Case("preset: unknown key", "presets",
         render("face", "driver", "--preset", text_file("typo.yaml", PRESET_HEAD + "parms: {}\n")),
         "error", lambda c: ["typo.yaml", "params"], early=True),
    Case("preset: a folder", "presets", render("face", "driver", "--preset", lambda c: c.work),
         "error", early=True),

    # ---------------------------------------------------------------- controls
    Case("controls: key at t = 100000 (replace)", "controls",
         render("face", None, "--controls",
                text_file("far.yaml", "mode: replace\nkeys: {smile: [[0, 0], [100000, 1]]}\n")),
         "error", lambda c: ["far.yaml", "100000"], early=True),
    Case("controls: key at t = 100000 (add)", "controls",
         render("face", "driver", "--controls",
                text_file("far-add.yaml", "mode: add\nkeys: {smile: [[0, 0], [100000, 1]]}\n")),
         "either", lambda c: ["far-add.yaml"]),
    Case("controls: infinite time", "controls",
         render("face", None, "--controls",
                text_file("inf.yaml", "mode: replace\nkeys: {smile: [[0, 0], [.inf, 1]]}\n")),
         "error", lambda c: ["inf.yaml"], early=True),
    Case("controls: NaN value", "controls",
         render("face", None, "--controls",
                text_file("nan.yaml", "mode: replace\nkeys: {smile: [[0, 0], [1, .nan]]}\n")),
         "error", lambda c: ["nan.yaml"], early=True),
    Case("controls: negative time", "controls",
         render("face", None, "--controls",
                text_file("neg.yaml", "mode: replace\nkeys: {smile: [[-5, 0], [0.3, 1]]}\n")),
         "either", lambda c: ["neg.yaml"]),
    Case("controls: unknown control", "controls",
         render("face", None, "--controls",
                text_file("smirk.yaml", "mode: replace\nkeys: {smirk: [[0, 0], [1, 1]]}\n")),
         "error", lambda c: ["smirk.yaml", "smile"], early=True),
    Case("controls: text value", "controls",
         render("face", None, "--controls",
                text_file("word.yaml", "mode: replace\nkeys: {smile: [[0, 0], [1, lots]]}\n")),
         "error", lambda c: ["word.yaml", "lots"], early=True),
    Case("controls: alias bomb", "controls",
         render("face", None, "--controls",
                text_file("bomb-controls.yaml", "mode: replace\nkeys:\n  smile: " + _bomb_flow() + "\n")),
         "error", lambda c: ["bomb-controls.yaml"], early=True),
    Case("controls: missing file", "controls",
         render("face", None, "--controls", lambda c: c.work / "none.yaml"),
         "error", lambda c: ["none.yaml"], early=True),
    Case("controls: replace mode with a driver", "controls",
         render("face", "driver", "--controls",
                text_file("replace.yaml", "mode: replace\nkeys: {smile: [[0, 0], [0.3, 1]]}\n")),
         "error", lambda c: ["replace"], early=True),
    Case("controls: short replace on a still", "controls",
         render("face", None, "--controls",
                text_file("ok.yaml", "mode: replace\nkeys: {smile: [[0, 0], [0.3, 1]]}\n")),
         "render"),

    # ---------------------------------------------------------------- weights
    Case("weights: missing file", "weights",
         render("face", "driver", "--converter", "freenet.ulc", "--set",
                lambda c: f"freenet.ulc.weights={c.work / 'none.onnx'}"),
         "error", lambda c: ["none.onnx"], early=True),
    Case("weights: a text file", "weights",
         render("face", "driver", "--converter", "freenet.ulc", "--set",
                lambda c: f"freenet.ulc.weights={text_file('w.onnx', 'not a network')(c)}"),
         "error", lambda c: ["w.onnx"]),
    Case("weights: another network's file", "weights",
         render("face", "driver", "--converter", "freenet.ulc", "--set",
                lambda c: f"freenet.ulc.weights={_weights_of('lsg', 'lsg.onnx')(c)}"),
         "error", lambda c: ["lsg.onnx"]),

    # ---------------------------------------------------------------- output paths
    Case("-o ''", "outputs", render("face", "driver", out=lambda c: ""), "error",
         lambda c: ["output"], early=True),
    Case("-o a character device", "outputs", render("face", "driver", out=_make_device), "error",
         lambda c: ["device"], early=True, check=_is_char_device),
    Case("-o a FIFO", "outputs", render("face", "driver", out=_make_fifo), "error",
         lambda c: ["fifo.mp4"], early=True),
    Case("-o the target", "outputs", render("face", "driver", "--codec", "png",
                                            out=lambda c: c.media.face), "error",
         lambda c: ["face.png"], early=True),
    Case("-o the driver", "outputs", render("face", "driver", out=lambda c: c.media.driver), "error",
         lambda c: ["driver.mp4", "input"], early=True),
    Case("-o a symlink to the target", "outputs",
         render("face", "driver", "--codec", "png", out=_link_to_target), "error",
         lambda c: ["link.png"], early=True),
    Case("-o in a missing folder", "outputs",
         render("face", "driver", out=lambda c: c.out / "missing" / "o.mp4"), "error",
         lambda c: ["missing"], early=True),
    Case("-o an existing folder", "outputs", render("face", "driver", out=_existing_dir), "error",
         lambda c: ["folder.mp4", "directory"], early=True),
    Case("-o an existing file", "outputs", render("face", "driver", out=_existing_file), "render",
         output=lambda c: c.out / "old.mp4"),
    Case("--codec png into a folder of other files", "outputs",
         render("face", "driver", "--codec", "png", out=_png_dir_with_other_files), "error",
         lambda c: ["frames"], early=True),
    Case("--preview over the target", "outputs",
         render("face", "driver", "--preview", lambda c: c.media.driver), "error",
         lambda c: ["driver.mp4"], early=True),

    # ---------------------------------------------------------------- faults (subprocesses)
    Case("SIGTERM mid-render", "faults", render("long", "driver", "--audio", "none"), "error",
         fault="sigterm"),
    Case("SIGKILL mid-render, then a rerun", "faults", render("long", "driver", "--audio", "none"),
         "render", fault="sigkill"),
    Case("two renders to one path", "faults", render("long", "driver"), "render", fault="concurrent"),
    Case("--codec png into a full disk", "faults",
         render("long", "driver", "--codec", "png", out=lambda c: c.work / "full" / "frames"),
         "error", lambda c: ["frames", "space"], fault="full_disk",
         output=lambda c: c.work / "full" / "frames"),
    Case("H.264 into a full disk", "faults",
         render("long", "driver", out=lambda c: c.work / "full" / "o.mp4"),
         "error", lambda c: ["o.mp4", "space"], fault="full_disk",
         output=lambda c: c.work / "full" / "o.mp4"),
]

def classify(case: Case, ctx: Ctx, rc, err: str) -> tuple[str, str]:
    """("error" | "handled" | "bad", why) for one finished case."""
    out = case.output(ctx) if case.output else _o(ctx)
    if "Traceback" in err or rc not in (0, 2):
        return "bad", f"exit {rc}" + (" with a traceback" if "Traceback" in err else "") + \
            f": {err.strip().splitlines()[-1][:200] if err.strip() else ''}"
    left = _no_partials(ctx)
    if left:
        return "bad", left
    extra = case.check(ctx, rc, err) if case.check else None
    words = [w.lower() for w in (case.words(ctx) if case.words else [])]
    low = err.lower()
    if rc == 2:
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        if not lines:
            return "bad", f"exit 2 without an error line: {err[:200]}"
        size = sum(len(ln) for ln in lines)
        if size > MAX_ERROR_CHARS:
            return "bad", f"error message of {size:,} characters"
        missing = [w for w in words if w not in low]
        if missing:
            return "bad", f"error does not name {missing}: {err.strip()[:300]}"
        if case.early and ctx.cache.exists() and any(ctx.cache.rglob("*.npz")):
            return "bad", "error found only after tracking"
        if extra:
            return "bad", extra
        if case.expect == "render":
            return "bad", f"refused: {err.strip()[:300]}"
        return "error", err.strip()[:300]
    # rc == 0
    if case.expect == "error":
        return "bad", f"rendered where an error was expected ({out})"
    why = _decodes(out)
    if why:
        return "bad", why
    if extra:
        return "bad", extra
    return "handled", str(out)


def _decodes(out: Path) -> str | None:
    out = Path(out)
    if out.is_dir():
        return None if any(out.glob("*.png")) else f"{out}: no frames"
    if not out.is_file() or out.stat().st_size == 0:
        return f"{out}: not written"
    import av

    try:
        with av.open(str(out)) as c:
            n = sum(1 for _ in c.decode(video=0))
    except Exception as exc:   # noqa: BLE001 - any failure to decode is the finding
        return f"{out}: does not decode ({exc})"
    return None if n else f"{out}: no frames"


def argv_of(case: Case, ctx: Ctx) -> list[str]:
    ctx.out.mkdir(parents=True, exist_ok=True)
    return ["render", *case.argv(ctx), "-q", "--cache-dir", str(ctx.cache)]
