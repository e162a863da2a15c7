"""Every output decision of a render, checked before any frame is decoded.

``plan_output`` turns the user's output path and ``output`` settings into an ``OutputPlan`` (the final
path, with the codec's extension added when the name has none) or raises a ``MediaError`` naming the
path and the problem: an empty name, a device or FIFO, a folder where a file is needed, an input of
the render, a missing or unwritable folder, a codec the container cannot hold, alpha with a codec
that has none.  ``OutputPlan.check_media`` adds, once the inputs are opened (headers only), the
writer's decisions a user should hear about: an odd size written as H.264 High 4:4:4, no audio
because its source has none.  Nothing here decodes a frame or writes an output file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass, field

from ..errors import MediaError
from ..media.writer import CODECS, is_png_sequence, overwritten_input

# codec -> containers (by extension) that hold it; the first is what a name without one gets
CONTAINERS = {
    "h264": (".mp4", ".mov", ".mkv"),
    "prores": (".mov", ".mkv"),
    "prores4444": (".mov", ".mkv"),
    "dnxhr": (".mov", ".mkv"),
    "ffv1": (".mkv",),
    "png": ("",),           # a folder of frame_000000.png ...
}
ALPHA_CODECS = tuple(name for name, (_, _, _, alpha) in CODECS.items() if alpha)


@dataclass
class OutputPlan:
    path: str                       # the file (or PNG folder) that will be written
    codec: str
    alpha: bool
    audio: str                      # driver | target | none, as asked
    warnings: list[str] = field(default_factory=list)
    requested: str = ""             # the path as the user gave it

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def check_media(self, width: int, height: int, audio_from: str | None, audio_is_still: bool = False,
                    audio_has_stream: bool | None = None) -> None:
        """The decisions that depend on the inputs (their headers only): size and audio;
        ``audio_from`` is the file the audio would come from (None: there is no driver clip)."""
        if self.codec == "h264" and (width % 2 or height % 2):
            self.warn(f"{self.path}: odd frame size {width}x{height}: H.264 written as yuv444p (High "
                      "4:4:4), which some players cannot play; use an even-sized target, or "
                      "--codec prores/ffv1")
        if self.audio == "none":
            return
        if self.codec == "png":
            self.warn(f"{self.path}: a PNG sequence has no audio; the {self.audio}'s audio is not written")
        elif audio_from is None:
            self.warn(f"{self.path}: no audio: there is no driver clip (keyframed controls replace it)")
        elif audio_is_still:
            self.warn(f"{self.path}: no audio: the {self.audio} ({audio_from}) is a still image")
        elif audio_has_stream is False:
            self.warn(f"{self.path}: no audio: the {self.audio} ({audio_from}) has no audio stream")


def _kind(mode: int) -> str | None:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None


def _not_special(path: str, what: str = "output"):
    """The stat of what is at ``path`` (None: nothing), refusing devices, FIFOs and sockets."""
    try:
        st = os.stat(path)             # follows a symlink: what would really be replaced
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MediaError(f"cannot look at the {what} path ({exc.strerror or exc})", path=path) from None
    kind = _kind(st.st_mode)
    if kind:
        raise MediaError(f"is {kind}, not a file; refusing to write a render over it", path=path)
    return st


def _writable_folder(folder: str, path: str) -> None:
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise MediaError(f"the output folder {folder} {what}", path=path)
    try:  # the one honest test (permissions, read-only mounts, root): create and remove a file
        fd, probe = tempfile.mkstemp(prefix=".reenact-fx-probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise MediaError(f"cannot write into the output folder {folder} ({exc.strerror or exc})",
                         path=path) from None


def plan_output(path, codec: str, *, alpha: bool = False, audio: str = "driver",
                inputs=(), what: str = "output", players: bool = True) -> OutputPlan:
    """The checked output of a render (see the module's doc); ``inputs`` are never written over.
    ``players=False`` lets a container take any codec FFmpeg writes into it (an internal file,
    e.g. the evaluation's FFV1 in MP4 for its exact timestamps), not only what players read."""
    path = os.fspath(path) if path is not None else ""
    if not str(path).strip():
        raise MediaError(f"the {what} path is empty; give a file name, e.g. -o out.mp4", key=what)
    if codec not in CONTAINERS:
        raise MediaError(f"unknown codec '{codec}'; choose one of: {', '.join(CONTAINERS)}", path=path)
    if alpha and codec not in ALPHA_CODECS:
        raise MediaError(f"codec '{codec}' cannot store alpha (--alpha); use --codec "
                         f"{' or '.join(ALPHA_CODECS)}", path=path)
    _not_special(path)                   # a device named without an extension is still a device
    stem, ext = os.path.splitext(path.rstrip(os.sep))
    derived = False
    ext = ext.lower()
    allowed = CONTAINERS[codec]
    if codec == "png":
        if ext in {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mxf"}:
            raise MediaError(f"--codec png writes a folder of PNG frames, not a '{ext}' file; give a "
                             "folder name", path=path)
    elif not ext:
        path = path.rstrip(os.sep) + allowed[0]          # the codec's own container
        derived = True
    elif ext not in allowed and players:
        fits = [c for c, exts in CONTAINERS.items() if ext in exts]
        raise MediaError(f"a '{ext}' file cannot hold codec '{codec}'; use "
                         f"{' or '.join(allowed)}" + (f" (a '{ext}' file takes: {', '.join(fits)})"
                                                       if fits else ""), path=path)
    plan = OutputPlan(path, codec, bool(alpha), audio)
    if derived:
        plan.warn(f"{path}: no extension given; writing a '{allowed[0]}' file for codec '{codec}'")

    # what is at the path now
    st = _not_special(path, what)
    if st is not None:
        if stat.S_ISDIR(st.st_mode) and codec != "png":
            raise MediaError("is a directory; a video file name is needed", path=path)
        if codec == "png" and not is_png_sequence(path):
            raise MediaError("exists and is not a PNG sequence written by reenact-fx; refusing to "
                             "replace it", path=path)
    hit = overwritten_input(path, inputs, codec)
    if hit:
        raise MediaError(f"refusing to overwrite an input ({hit})", path=path)
    if os.path.islink(path) and not os.path.exists(path):
        raise MediaError("is a dangling symbolic link", path=path)
    _writable_folder(os.path.dirname(os.path.abspath(path)), path)
    return plan
