"""Reading and writing media: still images and videos in, videos or PNG sequences out.

Reading gives RGB uint8 frames (H, W, 3) with the container's rotation applied and any alpha dropped.
Writing is atomic: frames go to a hidden sibling of the target which replaces it only on close().

PyAV facts this module relies on (checked with av 18 / FFmpeg 8):
- ``VideoFrame.rotation`` is the display-matrix angle in *counter-clockwise* degrees; rotating the
  decoded picture counter-clockwise by it (np.rot90 with k = rotation / 90) gives the upright picture
  (cross-checked against OpenCV's own auto-orientation).
- conversion to RGB uses the YUV matrix the frame is tagged with (untagged: BT.601), so the writer
  converts with BT.709 *and* tags the stream BT.709 (DNxHR is always read back as BT.709).
- a frame's ``pts`` is the pts of the packet it came from, so a packet scan (demux, no decode) tells the
  time of every frame, and decoded frames are matched to indices by pts.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from fractions import Fraction

import av
import cv2
from av.video.reformatter import Colorspace, ColorRange
import numpy as np

from ..errors import MediaError
from ..face.track import MediaInfo

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

STILL_FPS = Fraction(25)
_MAX_BAD_PACKETS = 100  # give up on a stream after this many packets failed to decode in a row


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's own words for an error, without the file name PyAV prepends (MediaError adds it)."""
    return getattr(exc, "strerror", None) or str(exc)


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise MediaError("file not found", path=path)
    if os.path.isdir(path):
        raise MediaError("is a directory, not a media file", path=path)
    if os.path.getsize(path) == 0:
        raise MediaError("file is empty (0 bytes)", path=path)
    if not os.access(path, os.R_OK):
        raise MediaError("file cannot be read (permission denied)", path=path)


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    """Any OpenCV-decoded image (gray/BGR/BGRA, 8/16-bit/float) -> RGB uint8."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img.astype(np.float64) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _decode_still(path: str) -> tuple[np.ndarray, bool]:
    """(RGB uint8 with EXIF orientation applied, had an alpha channel)."""
    data = np.fromfile(path, np.uint8)  # np.fromfile + imdecode also copes with non-ASCII paths
    # IMREAD_COLOR applies EXIF orientation (IMREAD_UNCHANGED does not), so it gives the pixels; it also
    # scales 16-bit to 8-bit and expands gray to 3 channels.
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError("not an image that can be decoded (corrupt or unsupported format)", path=path)
    has_alpha = False
    if os.path.splitext(path)[1].lower() not in (".jpg", ".jpeg"):  # JPEG never carries alpha
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        has_alpha = raw is not None and raw.ndim == 3 and raw.shape[2] == 4
    return _to_rgb8(img), has_alpha


def read_still(path) -> np.ndarray:
    """A still image as RGB uint8 (H, W, 3), EXIF orientation applied, alpha dropped."""
    path = os.fspath(path)
    _check_readable(path)
    return _decode_still(path)[0]


def _has_alpha(pix_fmt: str | None) -> bool:
    if not pix_fmt:
        return False
    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):
        return False


class MediaReader:
    """Reads a still image or a video as RGB uint8 frames (H, W, 3), rotation metadata applied, alpha dropped."""

    def __init__(self, path: str):
        self.path = path = os.fspath(path)
        self.warnings: list[str] = []
        self._still: np.ndarray | None = None
        self._cursor: _Cursor | None = None
        self._open_containers: set = set()  # containers of frames() generators still running
        self._seeks = 0  # how often frame_at() had to seek (sequential access should not)
        _check_readable(path)
        if os.path.splitext(path)[1].lower() in IMAGE_EXTS:
            self._open_still(path)
        else:
            self._open_video(path)

    # -- opening -----------------------------------------------------------------------------------
    def _open_still(self, path: str) -> None:
        rgb, has_alpha = _decode_still(path)
        if has_alpha:
            self.warnings.append(f"{path}: alpha channel dropped (frames are RGB)")
        self._still = rgb
        h, w = rgb.shape[:2]
        self.info = MediaInfo(path=path, width=w, height=h, fps=STILL_FPS, frame_count=1,
                              duration=float(1 / STILL_FPS), is_still=True, has_audio=False,
                              has_alpha=has_alpha, rotation=0, times=np.zeros(1))

    def _open_container(self):
        try:
            container = av.open(self.path, metadata_errors="ignore")
        except av.error.FFmpegError as e:
            raise MediaError("cannot be read as video: not a media file, or damaged or truncated "
                             f"(FFmpeg says: {_ffmpeg_reason(e)})", path=self.path) from None
        if not container.streams.video:
            container.close()
            raise MediaError("has no video stream", path=self.path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: same pixels as single-threaded, only faster
        return container, stream

    def _open_video(self, path: str) -> None:
        container, stream = self._open_container()
        try:
            self._scan(container, stream)
            has_audio = bool(container.streams.audio)
            pix_fmt = stream.codec_context.pix_fmt
        finally:
            container.close()
        if not len(self._pts):
            raise MediaError("video stream holds no frames", path=path)

        # Decode the first frame now: proves the stream decodes and tells the rotation.
        self._cursor = _Cursor(self)
        first = self._cursor.first()
        if first is None:
            self.close()
            raise MediaError("no frame of the video can be decoded (corrupt or unsupported codec)", path=path)
        ccw = int(round(first.rotation / 90.0)) % 4 if first.rotation else 0
        self._k = ccw  # np.rot90 turns counter-clockwise, as the display matrix angle counts
        rotation = (-90 * ccw) % 360  # clockwise degrees, as MediaInfo counts
        if rotation:
            self.warnings.append(f"{path}: rotation metadata applied (turned {rotation} degrees clockwise)")
        has_alpha = _has_alpha(pix_fmt)
        if has_alpha:
            self.warnings.append(f"{path}: alpha channel ({pix_fmt}) dropped (frames are RGB)")
        self._cursor.keep(first)

        h, w = first.height, first.width
        if ccw % 2:
            w, h = h, w
        self.info = MediaInfo(path=path, width=w, height=h, fps=self._fps, frame_count=len(self._times),
                              duration=self._duration, is_still=False, has_audio=has_audio,
                              has_alpha=has_alpha, rotation=rotation, times=self._times)

    def _scan(self, container, stream) -> None:
        """Demux every packet (no decoding) to learn each frame's pts, and which are keyframes."""
        pts, keys, durations = [], [], {}
        damaged = False
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0 or packet.is_discard:
                    continue  # flush packets, and packets the demuxer marks as not to be shown
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
                durations[packet.pts] = packet.duration or 0
        except av.error.FFmpegError:
            damaged = True
        tb = stream.time_base or Fraction(1, 90000)
        order = np.argsort(pts, kind="stable")
        self._set_index(np.asarray(pts, np.int64)[order], np.asarray(keys, bool)[order], tb)
        if not len(self._pts):
            return
        n_listed = stream.frames
        if damaged or (n_listed and len(self._pts) < n_listed):
            # A cut-off file: the last packets may be partial, or B-frames whose references are gone.
            # Decode the tail now so that times/frame_count list only frames that really decode.
            n_present = len(self._pts)
            self._trim_tail(container, stream, tb)
            listed = f"the index lists {n_listed} frames, " if n_listed else ""
            self.warnings.append(f"{self.path}: file is truncated or damaged: {listed}{n_present} are present "
                                 f"and {len(self._pts)} decode (last good frame {len(self._pts) - 1})")

        fps = stream.average_rate or stream.guessed_rate
        if not fps and len(self._times) > 1 and self._times[-1] > 0:
            fps = Fraction((len(self._times) - 1) / self._times[-1]).limit_denominator(1001)
        self._fps = Fraction(fps) if fps else STILL_FPS
        last = durations.get(int(self._pts[-1]), 0) * float(tb) if len(self._pts) else 0.0
        self._duration = float(self._times[-1] + (last or 1 / self._fps)) if len(self._times) else 0.0

        steps = np.diff(self._times)
        if len(steps) > 1:
            spread, typical = steps.max() - steps.min(), np.median(steps)
            if spread > 2 * float(tb) and spread > 0.1 * typical:
                self.warnings.append(f"{self.path}: variable frame rate (frame steps {steps.min() * 1000:.1f}"
                                     f"-{steps.max() * 1000:.1f} ms); frame times follow the file's timestamps")

    def _set_index(self, pts: np.ndarray, keys: np.ndarray, tb: Fraction) -> None:
        self._pts, first = np.unique(pts, return_index=True)  # sorted; a repeated pts is one frame
        self._keys = keys[first]
        self._key_index = np.flatnonzero(self._keys)
        self._index_of = {int(p): i for i, p in enumerate(self._pts)}
        self._times = ((self._pts - (self._pts[0] if len(self._pts) else 0)) * float(tb)).astype(np.float64)

    def _trim_tail(self, container, stream, tb: Fraction) -> None:
        """Drop frames at the end of a damaged file that do not decode (decodes the last two GOPs)."""
        k = self._key_index[-2] if len(self._key_index) > 1 else 0
        start_pts = int(self._pts[k])
        decoded = set()
        try:
            container.seek(start_pts, stream=stream, backward=True, any_frame=False)
            for packet in container.demux(stream):
                try:
                    decoded.update(f.pts for f in stream.decode(packet if packet.size else None))
                except av.error.InvalidDataError:
                    continue
        except av.error.FFmpegError:
            pass
        keep = (self._pts < start_pts) | np.isin(self._pts, list(decoded))
        # Keep a prefix only: a frame after a missing one would leave a hole in the times.
        n = int(np.argmin(keep)) if not keep.all() else len(keep)
        self._set_index(self._pts[:n], self._keys[:n], tb)

    # -- decoding ----------------------------------------------------------------------------------
    def _rgb(self, frame) -> np.ndarray:
        # PyAV takes the YUV matrix from the frame's colorspace tag, but assumes limited range unless told.
        full = frame.color_range == ColorRange.JPEG
        rgb = frame.to_ndarray(format="rgb24", src_color_range=ColorRange.JPEG if full else None)
        return np.ascontiguousarray(np.rot90(rgb, self._k)) if self._k else rgb

    def _decoded(self, container, stream, start: int, problems: list[str], *, fresh: bool = False,
                 from_top: bool = False):
        """Yield (index, av frame) for every decodable frame with index >= start, in presentation order.

        Seeks to the keyframe before `start` first (or to the first frame when `from_top`), unless the
        container is `fresh` (just opened) and `start` is 0. A packet that fails to decode is skipped (and
        noted in `problems`); a demuxer error ends the stream (noted too)."""
        if from_top or start > 0 or not fresh:
            self._seek(container, stream, 0 if from_top else start)
        demux = container.demux(stream)
        bad_run, last = 0, -1
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                problems.append(f"the file ends early or is damaged ({_ffmpeg_reason(e)})")
                break
            if packet.size == 0:
                continue  # the demuxer's flush packet; the decoder is drained below
            try:
                frames = stream.decode(packet)
                bad_run = 0
            except av.error.FFmpegError as e:
                bad_run += 1
                problems.append(f"a packet failed to decode ({_ffmpeg_reason(e)})")
                if bad_run >= _MAX_BAD_PACKETS:
                    problems.append("too many packets in a row failed to decode")
                    return
                continue
            for frame in frames:
                index = self._index_for(frame, last)
                if index is None or index <= last:
                    continue  # not a frame of the scan (e.g. cut by an edit list), or out of order
                if last < 0 and index > start > 0 and not from_top:
                    # The seek landed after the wanted frame (a poor index): decode from the top instead.
                    yield from self._decoded(container, stream, start, problems, from_top=True)
                    return
                last = index
                if index >= start:
                    yield index, frame
        try:
            for frame in stream.decode(None):  # drain the decoder (B-frames, frame threads)
                index = self._index_for(frame, last)
                if index is not None and index > last:
                    last = index
                    if index >= start:
                        yield index, frame
        except av.error.FFmpegError as e:
            problems.append(f"the decoder failed while draining ({_ffmpeg_reason(e)})")

    def _index_for(self, frame, last: int) -> int | None:
        if frame.pts is None:
            return last + 1  # no timestamps at all: count
        return self._index_of.get(int(frame.pts))

    def _seek(self, container, stream, index: int) -> None:
        """Seek backward to the keyframe at or before frame `index`."""
        k = np.searchsorted(self._key_index, index, side="right") - 1
        target = int(self._pts[self._key_index[k]] if k >= 0 else self._pts[0])
        target = min(target, int(self._pts[index]))
        container.seek(target, stream=stream, backward=True, any_frame=False)
        stream.codec_context.flush_buffers()  # forget frames in flight, and a drained (EOF) state

    def _note(self, last_good: int, problems: list[str]) -> None:
        """Tell the user when a full pass over the file did not give every frame."""
        end = self.info.frame_count - 1
        if last_good < end:
            reason = problems[-1] if problems else "decoding stopped early"
            good = f"frame {last_good}" if last_good >= 0 else "no frame"
            note = (f"{self.path}: {reason}; the last good frame is {good} of 0-{end}, "
                    "the frames after it are missing")
        elif problems:
            note = f"{self.path}: {len(problems)} packet(s) failed to decode and were skipped ({problems[-1]})"
        else:
            return
        if note not in self.warnings:
            self.warnings.append(note)

    def frames(self, start: int = 0):
        """Generator of (index, rgb) from frame `start` on, in presentation order, one frame in memory.

        Stops cleanly (with a note in `warnings` naming the file and the last good frame) when the file
        turns out truncated or damaged; a frame that cannot be decoded is skipped, so its index is missing."""
        if start < 0 or start >= self.info.frame_count:
            raise MediaError(f"start frame out of range (0-{self.info.frame_count - 1})", path=self.path,
                             frame=start)
        if self._still is not None:
            yield 0, self._still.copy()
            return
        container, stream = self._open_container()
        self._open_containers.add(container)
        problems: list[str] = []
        last = start - 1
        try:
            for index, frame in self._decoded(container, stream, start, problems, fresh=True):
                last = index
                yield index, self._rgb(frame)
        finally:  # also reached when the caller stops early: then there is nothing to report
            self._open_containers.discard(container)
            container.close()
        self._note(last, problems)

    def frame_at(self, index: int) -> np.ndarray:
        """Frame `index` as RGB uint8: exactly the pixels frames() yields for it.

        Sequential calls decode forward without seeking; a jump seeks to the keyframe before `index`."""
        if not isinstance(index, (int, np.integer)) or index < 0 or index >= self.info.frame_count:
            raise MediaError(f"frame index out of range (0-{self.info.frame_count - 1})", path=self.path,
                             frame=index)
        if self._still is not None:
            return self._still.copy()
        if self._cursor is None:
            self._cursor = _Cursor(self)
        rgb = self._cursor.get(int(index))
        if rgb is None:
            why = f" ({self._cursor.problems[-1]})" if self._cursor.problems else ""
            raise MediaError(f"frame cannot be decoded: the file is truncated or damaged{why}", path=self.path,
                             frame=index)
        return rgb.copy()

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        for container in list(self._open_containers):
            container.close()
        self._open_containers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Cursor:
    """frame_at()'s decoding position: an open container and a running decode, kept between calls."""

    def __init__(self, reader: MediaReader):
        self.reader = reader
        self.container, self.stream = reader._open_container()
        self.problems: list[str] = []
        self.gen = reader._decoded(self.container, self.stream, 0, self.problems, fresh=True)
        self.last, self.rgb = -1, None

    def first(self):
        """The first decodable frame (as an av frame), or None."""
        for index, frame in self.gen:
            self._first = index
            return frame
        return None

    def keep(self, frame) -> None:
        self.last, self.rgb = self._first, self.reader._rgb(frame)

    def get(self, index: int) -> np.ndarray | None:
        if index == self.last:
            return self.rgb
        r = self.reader
        k = np.searchsorted(r._key_index, index, side="right") - 1
        key = int(r._key_index[k]) if k >= 0 else 0
        # Decode forward when seeking would not land past where we already are (or the gap is short).
        if not (index > self.last and (key <= self.last or index - self.last <= 16)):
            r._seeks += 1
            self.gen.close()
            self.problems = []
            self.gen = r._decoded(self.container, self.stream, index, self.problems)
            self.last, self.rgb = -1, None
        for i, frame in self.gen:
            self.last = i
            if i == index:
                self.rgb = r._rgb(frame)
                return self.rgb
            if i > index:
                break
        self.rgb = None
        return None

    def close(self) -> None:
        self.gen.close()
        self.container.close()


# ------------------------------------------------------------------------------------------------------
# Writing

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
_AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


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
                 protect: list[str] = ()):
        self.path = path = os.fspath(path)
        self.warnings: list[str] = []
        self.width, self.height = int(width), int(height)
        self.codec, self.alpha = codec, bool(alpha)
        self.audio_from, self.audio_start = audio_from, float(audio_start)
        self._n = 0
        self._closed = False
        self._container = self._stream = None
        self._tmp: str | None = None

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
        for p in [*protect, *([audio_from] if audio_from else [])]:
            p = os.fspath(p)
            if _same_file(path, p) or (codec == "png" and
                                        os.path.realpath(p).startswith(os.path.realpath(path) + os.sep)):
                raise MediaError(f"refusing to overwrite an input ({p})", path=path)
        if codec == "png":
            if os.path.exists(path) and not self._is_old_png_sequence(path):
                raise MediaError("exists and is not a PNG sequence written by reenact-fx; "
                                 "refusing to replace it", path=path)
        elif os.path.isdir(path):
            raise MediaError("is a directory; a video file name is needed", path=path)

        self._audio = self._check_audio_source(codec)

        name = os.path.basename(path.rstrip(os.sep))
        stem, ext = os.path.splitext(name)
        token = secrets.token_hex(4)
        if codec == "png":
            self._tmp = os.path.join(parent, f".{name}.partial-{token}")
            os.mkdir(self._tmp)
            return
        # Keep the real extension last: FFmpeg picks the container by it.
        self._fmt = None if ext else {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}[default_ext]
        self._tmp = os.path.join(parent, f".{stem}.partial-{token}{ext or default_ext}")
        if self.width % 2 or self.height % 2:
            if codec == "h264":
                pix_fmt = "yuv444p"  # 4:2:0 needs even sizes
                self.warnings.append(f"{path}: odd frame size {self.width}x{self.height}: H.264 written as "
                                     "yuv444p (High 4:4:4), which some players cannot play")
        try:
            self._container = av.open(self._tmp, "w", format=self._fmt, options=_BITEXACT)
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
                             f"({_ffmpeg_reason(e)})", path=path) from None

    @staticmethod
    def _is_old_png_sequence(path: str) -> bool:
        return os.path.isdir(path) and all(_PNG_NAME.fullmatch(n) and os.path.isfile(os.path.join(path, n))
                                           for n in os.listdir(path))

    def _check_audio_source(self, codec: str) -> bool:
        """Whether audio will be muxed (warns when it cannot be)."""
        if not self.audio_from:
            return False
        src = os.fspath(self.audio_from)
        if codec == "png":
            self.warnings.append(f"{self.path}: a PNG sequence has no audio; audio of {src} ignored")
            return False
        _check_readable(src)
        if os.path.splitext(src)[1].lower() in IMAGE_EXTS:
            self.warnings.append(f"{self.path}: {src} is a still image, so the output has no audio")
            return False
        try:
            with av.open(src, metadata_errors="ignore") as c:
                has = bool(c.streams.audio)
        except av.error.FFmpegError as e:
            raise MediaError(f"cannot read audio from it ({_ffmpeg_reason(e)})", path=src) from None
        if not has:
            self.warnings.append(f"{self.path}: {src} has no audio stream, so the output has no audio")
        return has

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
        if self.codec == "png":
            self._write_png(rgb, alpha)
        else:
            self._write_video(rgb, alpha)
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
            raise MediaError(f"encoding failed ({_ffmpeg_reason(e)})", path=self.path, frame=self._n) from None

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
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._tmp = None
        return self.path

    def _finish_png(self) -> None:
        old = None
        if os.path.exists(self.path):
            if not self._is_old_png_sequence(self.path):  # checked again: it may have changed meanwhile
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
            raise MediaError(f"finishing the video failed ({_ffmpeg_reason(e)})", path=self.path) from None
        self._container = None
        final = self._tmp
        if self._audio:
            root, ext = os.path.splitext(self._tmp)
            final = f"{root}-av{ext}"
            try:
                self._mux_with_audio(self._tmp, final)
            except BaseException:
                if os.path.exists(final):
                    os.remove(final)
                raise
            os.remove(self._tmp)
            self._tmp = final
        _fsync(final)
        os.replace(final, self.path)
        _fsync(os.path.dirname(os.path.abspath(self.path)))

    def _mux_with_audio(self, video_path: str, out_path: str) -> None:
        """Copy the encoded video into a new file next to AAC audio cut from `audio_from`.

        Both streams are known only now (the video's duration decides the audio's), so the video is
        remuxed rather than muxed alongside: that lets packets be interleaved by time for every container."""
        duration = self._n / self.fps
        with av.open(video_path) as vin, av.open(out_path, "w", format=self._fmt, options=_BITEXACT) as out:
            vin_s = vin.streams.video[0]
            vout = out.add_stream_from_template(vin_s)
            audio_packets = self._encode_audio(out, duration)
            ai = 0
            for packet in vin.demux(vin_s):
                if packet.size == 0:
                    continue
                t = float(packet.dts * packet.time_base) if packet.dts is not None else 0.0
                while ai < len(audio_packets) and float(audio_packets[ai].dts * audio_packets[ai].time_base) <= t:
                    out.mux(audio_packets[ai])
                    ai += 1
                packet.stream = vout
                out.mux(packet)
            for packet in audio_packets[ai:]:
                out.mux(packet)

    def _encode_audio(self, out, duration: Fraction):
        """Encode exactly `duration` seconds of `audio_from` from `audio_start` (silence-padded) as AAC."""
        src_path = os.fspath(self.audio_from)
        with av.open(src_path, metadata_errors="ignore") as src:
            a = src.streams.audio[0]
            rate = a.codec_context.sample_rate if a.codec_context.sample_rate in _AAC_RATES else 48000
            layout = "mono" if a.codec_context.channels == 1 else "stereo"
            aout = out.add_stream("aac", rate=rate, layout=layout)
            aout.time_base = Fraction(1, rate)
            # Times are measured from the start of the video stream when there is one, as the reader does.
            ref = src.streams.video[0] if src.streams.video else a
            t0 = float(ref.start_time * ref.time_base) if ref.start_time is not None else 0.0
            n_total = int(round(duration * rate))
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            packets, written = [], 0

            def emit(chunk: np.ndarray):
                nonlocal written
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, np.float32), format="fltp",
                                                   layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, written, Fraction(1, rate)
                written += chunk.shape[1]
                packets.extend(aout.encode(frame))

            n_ch = 1 if layout == "mono" else 2
            if self.audio_start > 0:
                src.seek(int((self.audio_start + t0) * av.time_base), backward=True)
            seen = None  # sample position (relative to audio_start) of the next resampled sample
            try:
                for frame in src.decode(a):
                    if frame.time is not None and seen is None:
                        seen = int(round((frame.time - t0 - self.audio_start) * rate))
                    for rf in resampler.resample(frame):
                        seen = self._place(rf.to_ndarray(), seen or 0, written, n_total, emit)
                    if seen is not None and seen >= n_total:
                        break
            except av.error.FFmpegError as e:
                self.warnings.append(f"{self.path}: audio of {src_path} is damaged after "
                                     f"{written / rate:.2f} s ({_ffmpeg_reason(e)}); padded with silence")
            while written < n_total:  # source audio shorter than the video: pad with silence
                emit(np.zeros((n_ch, min(n_total - written, rate)), np.float32))
            packets.extend(aout.encode(None))
        return packets

    @staticmethod
    def _place(chunk: np.ndarray, at: int, written: int, n_total: int, emit) -> int:
        """Emit the part of `chunk` (starting at sample `at`) that falls in [written, n_total)."""
        end = at + chunk.shape[1]
        if at > written:  # a gap in the source audio: fill with silence
            gap = min(at, n_total) - written
            if gap > 0:
                emit(np.zeros((chunk.shape[0], gap), np.float32))
                written += gap
        lo, hi = max(written, at), min(end, n_total)
        if hi > lo:
            emit(chunk[:, lo - at:hi - at])
        return end

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
