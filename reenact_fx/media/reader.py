"""Reading media: still images and videos as RGB frames, by index or in order.

Reading gives RGB uint8 frames (H, W, 3) with the container's rotation applied and any alpha dropped.

The PyAV facts this relies on are listed in the package's docstring (:mod:`reenact_fx.media`).
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
from av.video.reformatter import ColorRange
import cv2
import numpy as np

from ..errors import MediaError
from ..face.track import MediaInfo

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

STILL_FPS = Fraction(25)
_MAX_BAD_PACKETS = 100  # give up on a stream after this many packets failed to decode in a row


def ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's own words for an error, without the file name PyAV prepends (MediaError adds it)."""
    return getattr(exc, "strerror", None) or str(exc)


def check_readable(path: str) -> None:
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
    check_readable(path)
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
        check_readable(path)
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
                             f"(FFmpeg says: {ffmpeg_reason(e)})", path=self.path) from None
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
                problems.append(f"the file ends early or is damaged ({ffmpeg_reason(e)})")
                break
            if packet.size == 0:
                continue  # the demuxer's flush packet; the decoder is drained below
            try:
                frames = stream.decode(packet)
                bad_run = 0
            except av.error.FFmpegError as e:
                bad_run += 1
                problems.append(f"a packet failed to decode ({ffmpeg_reason(e)})")
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
            problems.append(f"the decoder failed while draining ({ffmpeg_reason(e)})")

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
