"""Writing media: RGB (+ alpha) frames to a video file or a PNG sequence, atomically.

Frames go to a hidden sibling of the target which replaces it only on close(); abort() or an error
leaves nothing behind, and a crash leaves a locked partial that the next writer into the folder
removes (:mod:`.partials`).  A write that fails for want of space is an error naming the file.  The writer converts with BT.709 and tags the stream BT.709 (readers pick the
YUV matrix by the tag); audio is cut from a source file and muxed by :mod:`.audio`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from fractions import Fraction
from typing import Any, Mapping

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from ..errors import MediaError
from . import audio
from .partials import Partial, sweep
from .reader import ffmpeg_reason

CODECS = {  # name -> (av codec, pix_fmt, default extension, supports_alpha)
    "h264": ("libx264", "yuv420p", ".mp4", False),
    "prores": ("prores_ks", "yuv422p10le", ".mov", False),
    "prores4444": ("prores_ks", "yuva444p10le", ".mov", True),
    "dnxhr": ("dnxhd", "yuv422p", ".mov", False),
    "ffv1": ("ffv1", "yuv444p", ".mkv", False),
    "png": ("png", "rgb24", "", True),  # a directory of frame_000000.png ...; rgba when alpha
}
_CODEC_OPTIONS = {
    "h264": {"crf": "18", "preset": "veryfast"},
    "prores": {"profile": "3"},       # 422 HQ
    "prores4444": {"profile": "4"},   # 4444
    "dnxhr": {"profile": "dnxhr_hq"},
    "ffv1": {},
    "png": {},
}
_MIN_SIZE = {"dnxhr": (256, 120)}  # FFmpeg's DNxHR encoder refuses smaller pictures
_BITEXACT = {"fflags": "+bitexact"}  # no random ids / version strings: same frames in, same bytes out
_PNG_NAME = re.compile(r"frame_\d{6}\.png")
PROVENANCE_FILE = "provenance.json"   # a PNG sequence's provenance record (beside its frames)
_METADATA_FLAGS = {".mp4": {"movflags": "use_metadata_tags"}, ".mov": {"movflags": "use_metadata_tags"}}


def _write_failure(exc: BaseException, path: str) -> str:
    """Why a write failed, in words a user can act on (a full disk above all)."""
    code = getattr(exc, "errno", None)
    reason = getattr(exc, "strerror", None) or str(exc)
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
        full = st.f_bavail * st.f_frsize < (8 << 20)
    except OSError:
        full = False
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or full:
        return f"no space left to write the output (the disk or quota is full: {reason})"
    return f"cannot write the output ({reason})"


def same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def overwritten_input(path: str, inputs, codec: str) -> str | None:
    """The first of ``inputs`` that writing ``path`` would replace (a PNG sequence: also anything
    inside its folder), else None."""
    for p in inputs:
        if p is None:
            continue
        p = os.fspath(p)
        if same_file(path, p) or (codec == "png" and
                                  os.path.realpath(p).startswith(os.path.realpath(path) + os.sep)):
            return p
    return None


def is_png_sequence(path: str) -> bool:
    """A folder holding only what reenact-fx writes as a PNG sequence (frames, provenance)."""
    return os.path.isdir(path) and all((_PNG_NAME.fullmatch(n) or n == PROVENANCE_FILE)
                                       and os.path.isfile(os.path.join(path, n))
                                       for n in os.listdir(path))


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class MediaWriter:
    """Writes RGB (and optionally alpha) frames as a constant-frame-rate video or a PNG sequence.

    Everything goes to a hidden temporary sibling of `path`, which replaces `path` on close() (atomic);
    abort() or an exception in a `with` block leaves no trace."""

    def __init__(self, path: str, width: int, height: int, fps: Fraction, *, codec: str = "h264",
                 alpha: bool = False, audio_from: str | None = None, audio_start: float = 0.0,
                 protect: list[str] = (), provenance: Mapping[str, Any] | None = None):
        self.path = path = os.fspath(path)
        self.warnings: list[str] = []
        self.width, self.height = int(width), int(height)
        self.codec, self.alpha = codec, bool(alpha)
        self.audio_from, self.audio_start = audio_from, float(audio_start)
        self._n = 0
        self._closed = False
        self._container = self._stream = None
        self._tmp: str | None = None
        self._partials: list[Partial] = []
        self.provenance = dict(provenance) if provenance else None

        if codec not in CODECS:
            raise MediaError(f"unknown codec '{codec}'; choose one of: {', '.join(CODECS)}", path=path)
        av_codec, pix_fmt, default_ext, has_alpha = CODECS[codec]
        if alpha and not has_alpha:
            alpha_codecs = ", ".join(n for n, c in CODECS.items() if c[3])
            raise MediaError(f"codec '{codec}' cannot store alpha; use one of: {alpha_codecs}", path=path)
        if self.width <= 0 or self.height <= 0:
            raise MediaError(f"invalid frame size {width}x{height}", path=path)
        min_w, min_h = _MIN_SIZE.get(codec, (1, 1))
        if self.width < min_w or self.height < min_h:
            raise MediaError(f"codec '{codec}' needs frames of at least {min_w}x{min_h}, "
                             f"got {self.width}x{self.height}", path=path)
        try:
            self.fps = Fraction(fps)
        except (TypeError, ValueError):
            raise MediaError(f"invalid frame rate {fps!r}", path=path) from None
        if self.fps <= 0:
            raise MediaError(f"invalid frame rate {fps}", path=path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise MediaError(f"output directory does not exist: {parent}", path=path)
        # Never overwrite an input, including the file the audio comes from.
        hit = overwritten_input(path, [*protect, audio_from], codec)
        if hit:
            raise MediaError(f"refusing to overwrite an input ({hit})", path=path)
        if codec == "png":
            if os.path.exists(path) and not is_png_sequence(path):
                raise MediaError("exists and is not a PNG sequence written by reenact-fx; "
                                 "refusing to replace it", path=path)
        elif os.path.isdir(path):
            raise MediaError("is a directory; a video file name is needed", path=path)

        self._audio = self._check_audio_source(codec)
        sweep(parent)   # partial outputs of dead renders (killed, crashed) in this folder

        name = os.path.basename(path.rstrip(os.sep))
        stem, ext = os.path.splitext(name)
        if codec == "png":
            self._tmp = self._new_partial(path, "", folder=True).path
            return
        # Keep the real extension last: FFmpeg picks the container by it.
        self._fmt = None if ext else {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}[default_ext]
        self._ext = ext or default_ext
        self._tmp = self._new_partial(path, ext, fallback=default_ext).path
        if self.width % 2 or self.height % 2:
            if codec == "h264":
                pix_fmt = "yuv444p"  # 4:2:0 needs even sizes
                self.warnings.append(f"{path}: odd frame size {self.width}x{self.height}: H.264 written as "
                                     "yuv444p (High 4:4:4), which some players cannot play")
        try:
            options = {**_BITEXACT, **_METADATA_FLAGS.get(self._ext.lower(), {})}
            self._container = av.open(self._tmp, "w", format=self._fmt, options=options)
            for k, v in self._tags().items():
                self._container.metadata[k] = v
            s = self._container.add_stream(av_codec, rate=self.fps, options=dict(_CODEC_OPTIONS[codec]))
            s.width, s.height, s.pix_fmt = self.width, self.height, pix_fmt
            # Tag what write() converts with (BT.709, limited range): readers pick the matrix by the tag.
            cc = s.codec_context
            cc.colorspace, cc.color_range = Colorspace.ITU709, ColorRange.MPEG
            cc.color_primaries = cc.color_trc = 1  # BT.709
            self._pix_fmt = pix_fmt
            s.time_base = 1 / self.fps
            s.codec_context.time_base = 1 / self.fps
            self._stream = s
            self._container.start_encoding()  # fails here, not mid-write, if the container can't take it
        except (av.error.FFmpegError, ValueError) as e:
            self.abort()
            raise MediaError(f"cannot write codec '{codec}' to a '{ext or default_ext}' file "
                             f"({ffmpeg_reason(e)})", path=path) from None

    def _new_partial(self, path: str, ext: str, *, folder: bool = False, fallback: str = "") -> Partial:
        try:
            part = Partial(path if ext or folder else path + fallback, ext or fallback, folder=folder)
        except OSError as exc:
            raise MediaError(_write_failure(exc, path), path=path) from None
        self._partials.append(part)
        return part

    def _tags(self) -> dict[str, str]:
        if not self.provenance:
            return {}
        from ..provenance import container_tags

        return container_tags(self.provenance)

    def _check_audio_source(self, codec: str) -> bool:
        """Whether audio will be muxed (warns when it cannot be)."""
        if not self.audio_from:
            return False
        src = os.fspath(self.audio_from)
        if codec == "png":
            self.warnings.append(f"{self.path}: a PNG sequence has no audio; audio of {src} ignored")
            return False
        return audio.usable_source(src, self.path, self.warnings)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
        if self._closed or self._tmp is None:
            raise MediaError("write after close", path=self.path, frame=self._n)
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.shape != (self.height, self.width, 3):
            raise MediaError(f"frame must be uint8 ({self.height}, {self.width}, 3), got {rgb.dtype} "
                             f"{rgb.shape}", path=self.path, frame=self._n)
        if alpha is not None:
            alpha = np.asarray(alpha)
            if alpha.dtype != np.uint8 or alpha.shape != (self.height, self.width):
                raise MediaError(f"alpha must be uint8 ({self.height}, {self.width}), got {alpha.dtype} "
                                 f"{alpha.shape}", path=self.path, frame=self._n)
            if not self.alpha:  # the writer was not asked for alpha: the codec may not even hold it
                alpha = None
                note = f"{self.path}: alpha given but the writer was opened without alpha=True; dropped"
                if note not in self.warnings:
                    self.warnings.append(note)
        elif self.alpha:
            alpha = np.full((self.height, self.width), 255, np.uint8)  # opaque
        try:
            if self.codec == "png":
                self._write_png(rgb, alpha)
            else:
                self._write_video(rgb, alpha)
        except OSError as exc:   # a full disk, a quota, a vanished folder
            raise MediaError(_write_failure(exc, self.path), path=self.path, frame=self._n) from None
        self._n += 1

    def _write_png(self, rgb, alpha) -> None:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        img = np.dstack([bgr, alpha]) if alpha is not None else bgr
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise MediaError("PNG encoding failed", path=self.path, frame=self._n)
        buf.tofile(os.path.join(self._tmp, f"frame_{self._n:06d}.png"))

    def _write_video(self, rgb, alpha) -> None:
        if alpha is not None:
            frame = av.VideoFrame.from_ndarray(np.dstack([rgb, alpha]), format="rgba")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=self._pix_fmt, dst_colorspace=Colorspace.ITU709,
                               dst_color_range=ColorRange.MPEG, dst_color_trc=1, dst_color_primaries=1)
        frame.pts = self._n  # constant frame rate: time_base is 1/fps
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.error.FFmpegError as e:
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise MediaError(_write_failure(e, self.path), path=self.path, frame=self._n) from None
            raise MediaError(f"encoding failed ({ffmpeg_reason(e)})", path=self.path, frame=self._n) from None

    # -- finishing ---------------------------------------------------------------------------------
    def close(self) -> str:
        """Finish the file and move it into place; returns the final path."""
        if self._closed:
            return self.path
        if self._tmp is None:
            raise MediaError("writer was aborted", path=self.path)
        if self._n == 0:
            self.abort()
            raise MediaError("no frames were written", path=self.path)
        try:
            if self.codec == "png":
                self._finish_png()
            else:
                self._finish_video()
        except OSError as exc:
            self.abort()
            raise MediaError(_write_failure(exc, self.path), path=self.path) from None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._tmp = None
        for part in self._partials:   # renamed into place: only the locks are left to drop
            part.release()
        self._partials.clear()
        return self.path

    def _finish_png(self) -> None:
        if self.provenance:
            with open(os.path.join(self._tmp, PROVENANCE_FILE), "w", encoding="utf-8") as f:
                json.dump(self.provenance, f, indent=1, sort_keys=True)
        old = None
        if os.path.exists(self.path):
            if not is_png_sequence(self.path):  # checked again: it may have changed meanwhile
                raise MediaError("exists and is not a PNG sequence written by reenact-fx", path=self.path)
            old = f"{self._tmp}.old"
            os.rename(self.path, old)
        os.rename(self._tmp, self.path)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def _finish_video(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except av.error.FFmpegError as e:
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise MediaError(_write_failure(e, self.path), path=self.path) from None
            raise MediaError(f"finishing the video failed ({ffmpeg_reason(e)})", path=self.path) from None
        self._container = None
        final = self._tmp
        if self._audio:
            av_part = self._partials[-1].sibling("-av", self._ext)
            self._partials.append(av_part)
            final = av_part.path
            try:
                audio.mux(self._tmp, final, self._fmt, self._n / self.fps, os.fspath(self.audio_from),
                          self.audio_start, self.warnings, self.path, tags=self._tags(),
                          options=_METADATA_FLAGS.get(self._ext.lower(), {}))
            except BaseException:
                if os.path.exists(final):
                    os.remove(final)
                raise
            os.remove(self._tmp)
            self._tmp = final
        _fsync(final)
        os.replace(final, self.path)
        _fsync(os.path.dirname(os.path.abspath(self.path)))

    def abort(self) -> None:
        """Drop the temporary output (safe to call more than once)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        tmp, self._tmp = self._tmp, None
        if tmp and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp and os.path.exists(tmp):
            os.remove(tmp)
        for part in self._partials:
            part.remove()
        self._partials.clear()

    def __del__(self):  # dropped without close(): leave no partial file behind
        try:
            if not self._closed and self._tmp is not None:
                self.abort()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        else:
            self.close()
