"""Audio of a rendered video: cut from a source file, encoded as AAC, muxed beside the video.

The video's duration decides how much audio is taken, so audio is added after the video is encoded:
the video is remuxed next to the audio, interleaving packets by time (works for every container).
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from ..errors import MediaError
from .reader import IMAGE_EXTS, check_readable, ffmpeg_reason

_AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
_BITEXACT = {"fflags": "+bitexact"}  # no random ids / version strings: same frames in, same bytes out


def usable_source(src: str, out_path: str, warnings: list[str]) -> bool:
    """Whether ``src`` has audio to mux into ``out_path`` (appends a warning when it has none)."""
    check_readable(src)
    if os.path.splitext(src)[1].lower() in IMAGE_EXTS:
        warnings.append(f"{out_path}: {src} is a still image, so the output has no audio")
        return False
    try:
        with av.open(src, metadata_errors="ignore") as c:
            has = bool(c.streams.audio)
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot read audio from it ({ffmpeg_reason(e)})", path=src) from None
    if not has:
        warnings.append(f"{out_path}: {src} has no audio stream, so the output has no audio")
    return has


def mux(video_path: str, out_path: str, fmt: str | None, duration: Fraction, src_path: str,
        start: float, warnings: list[str], label: str) -> None:
    """Copy the encoded video at ``video_path`` into ``out_path`` next to ``duration`` seconds of
    ``src_path``'s audio from ``start`` (AAC; warnings about damaged audio name ``label``)."""
    with av.open(video_path) as vin, av.open(out_path, "w", format=fmt, options=_BITEXACT) as out:
        vin_s = vin.streams.video[0]
        vout = out.add_stream_from_template(vin_s)
        audio_packets = _encode(out, duration, src_path, start, warnings, label)
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


def _encode(out, duration: Fraction, src_path: str, start: float, warnings: list[str], label: str):
    """Encode exactly ``duration`` seconds of ``src_path`` from ``start`` (silence-padded) as AAC."""
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
        if start > 0:
            src.seek(int((start + t0) * av.time_base), backward=True)
        seen = None  # sample position (relative to start) of the next resampled sample
        try:
            for frame in src.decode(a):
                if frame.time is not None and seen is None:
                    seen = int(round((frame.time - t0 - start) * rate))
                for rf in resampler.resample(frame):
                    seen = _place(rf.to_ndarray(), seen or 0, written, n_total, emit)
                if seen is not None and seen >= n_total:
                    break
        except av.error.FFmpegError as e:
            warnings.append(f"{label}: audio of {src_path} is damaged after "
                            f"{written / rate:.2f} s ({ffmpeg_reason(e)}); padded with silence")
        while written < n_total:  # source audio shorter than the video: pad with silence
            emit(np.zeros((n_ch, min(n_total - written, rate)), np.float32))
        packets.extend(aout.encode(None))
    return packets


def _place(chunk: np.ndarray, at: int, written: int, n_total: int, emit) -> int:
    """Emit the part of ``chunk`` (starting at sample ``at``) that falls in [written, n_total)."""
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
