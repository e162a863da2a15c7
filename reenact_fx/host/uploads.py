"""Clips a host decodes itself and uploads frame by frame, written to disk losslessly as they
arrive (memory stays one frame deep), so the service analyses and renders them like any file."""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .protocol import ServiceError


class UploadWriter:
    """Uploaded frames written as they arrive, losslessly: one frame as a PNG (a still target),
    more as FFV1 in packed RGB (bgr0; read back exactly) in Matroska, into a hidden partial file
    that ``finish`` renames into place."""

    def __init__(self, folder: Path, count: int, fps: float):
        self.count, self.fps = count, fps
        ext = ".png" if count == 1 else ".mkv"
        self.tmp = folder / f".upload.{os.getpid()}.{threading.get_ident()}.{time.time_ns()}.partial{ext}"
        self.still: np.ndarray | None = None
        self.container = self.stream = None

    def add(self, frame: np.ndarray) -> None:
        if self.count == 1:
            self.still = frame
            return
        if self.container is None:
            self.container = av.open(str(self.tmp), "w", format="matroska")
            self.stream = self.container.add_stream("ffv1", rate=Fraction(self.fps).limit_denominator(1001))
            self.stream.width, self.stream.height = frame.shape[1], frame.shape[0]
            self.stream.pix_fmt = "bgr0"   # gbrp/rgb24 do not open with FFV1 here
        for p in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")
                                    .reformat(format="bgr0")):
            self.container.mux(p)

    def finish(self, path: Path) -> None:
        try:
            if self.count == 1:
                if self.still is None or not cv2.imwrite(str(self.tmp),
                                                         cv2.cvtColor(self.still, cv2.COLOR_RGB2BGR)):
                    raise ServiceError("cannot write the uploaded still", path=str(self.tmp))
            else:
                for p in self.stream.encode():
                    self.container.mux(p)
                self.container.close()
                self.container = None
            os.replace(self.tmp, path)
        finally:
            self.abort()

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        self.tmp.unlink(missing_ok=True)


def write_upload(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """What an upload of ``frames`` becomes on disk (tests compare against it)."""
    w = UploadWriter(path.parent, len(frames), fps)
    for f in frames:
        w.add(f)
    w.finish(path)
