"""Builders of the bad-input corpus: every file made here with PyAV, numpy, OpenCV and Pillow (no
ffmpeg binary, no shared data needed), small and short so the whole corpus runs in about a minute.

``Media(root)`` builds each input on first use and keeps it (one folder per session)."""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SIZE = 192          # frames are SIZE x SIZE: big enough for mediapipe, small enough to be fast
FPS = 25
N_FRAMES = 10


@functools.lru_cache(maxsize=1)
def face_rgb() -> np.ndarray:
    """scikit-image's astronaut, cropped to the head and scaled to SIZE x SIZE (RGB uint8)."""
    from skimage import data

    return cv2.resize(data.astronaut()[10:330, 80:400], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def moved(img: np.ndarray, i: int, n: int = N_FRAMES, dx: float = 3.0, angle: float = 3.0,
          shift: float = 0.0) -> np.ndarray:
    """Frame i of a small head motion: a sway of dx pixels and a roll of `angle` degrees, plus a
    drift of `shift` frame widths over the clip (a face leaving the frame)."""
    h, w = img.shape[:2]
    s = np.sin(2 * np.pi * i / max(n, 2))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle * s, 1.0)
    m[0, 2] += dx * s + shift * w * i / max(n - 1, 1)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE if not shift else
                          cv2.BORDER_CONSTANT)


def write_video(path, frames, *, fps=FPS, codec="libx264", pix_fmt="yuv420p", audio=False,
                pts=None, fmt=None, options=None, rotate=None) -> Path:
    """Frames (RGB or RGBA uint8) to a video with PyAV; optional AAC tone, explicit pts (VFR)."""
    path = Path(path)
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        if rotate is not None:
            s.metadata["rotate"] = str(rotate)
        if pts is not None:
            s.time_base = Fraction(1, 1000)
        a = None
        if audio:
            a = c.add_stream("aac", rate=48000, layout="mono")
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgba" if f.shape[2] == 4
                                            else "rgb24")
            if pts is not None:
                vf.pts, vf.time_base = int(pts[i]), Fraction(1, 1000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            n = int(48000 * len(frames) / fps)
            t = np.arange(n) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def write_still(path, rgb) -> Path:
    path = Path(path)
    img = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4
                                                 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    buf.tofile(str(path))
    return path


class Media:
    """The corpus's input files, each built on first use under ``root``."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._built: dict[str, Path] = {}

    def __getattr__(self, name: str) -> Path:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._built:
            self._built[name] = getattr(self, f"make_{name}")()
        return self._built[name]

    def p(self, name: str) -> Path:
        return self.root / name

    def shared(self, rel: str) -> Path:
        """A file of the shared face material (cases that need one skip when it is absent)."""
        base = Path(os.environ.get("REENACT_FX_SHARED")
                    or Path(__file__).resolve().parents[3] / "shared" / "data" / "faces")
        return base / rel

    # ---------------------------------------------------------------- good material
    def make_face(self):
        return write_still(self.p("face.png"), face_rgb())

    def make_driver(self):
        f = face_rgb()
        return write_video(self.p("driver.mp4"), [moved(f, i) for i in range(N_FRAMES)], audio=True)

    def make_silent(self):
        f = face_rgb()
        return write_video(self.p("silent.mp4"), [moved(f, i) for i in range(N_FRAMES)])

    def make_clip(self):
        """A target clip (the same face, another motion)."""
        f = face_rgb()[:, ::-1].copy()
        return write_video(self.p("clip.mp4"), [moved(f, i, dx=2, angle=-2) for i in range(N_FRAMES)])

    def make_long(self):
        """40 frames in 4 GOPs of 10, for damage in the middle."""
        f = face_rgb()
        return write_video(self.p("long.mp4"), [moved(f, i, n=40) for i in range(40)],
                           options=None, codec="libx264")

    # ---------------------------------------------------------------- media cases
    def make_empty(self):
        p = self.p("empty.mp4")
        p.write_bytes(b"")
        return p

    def make_notes(self):
        p = self.p("notes.mp4")
        p.write_text("this is not a video\n" * 50)
        return p

    def make_garbage_png(self):
        p = self.p("garbage.png")
        p.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
        return p

    def make_truncated_png(self):
        data = self.face.read_bytes()
        p = self.p("cut.png")
        p.write_bytes(data[: len(data) // 3])
        return p

    def make_truncated_moov_end(self):
        """moov at the end (the default mp4 layout): cutting it off loses the index."""
        data = self.driver.read_bytes()
        p = self.p("cut-moov-end.mp4")
        p.write_bytes(data[: int(len(data) * 0.6)])
        return p

    def make_faststart(self):
        f = face_rgb()
        return write_video(self.p("faststart.mp4"), [moved(f, i, n=30) for i in range(30)],
                           options={"movflags": "+faststart"})

    def make_truncated_faststart(self):
        data = self.faststart.read_bytes()
        p = self.p("cut-faststart.mp4")
        p.write_bytes(data[: int(len(data) * 0.6)])
        return p

    def make_corrupt_middle(self):
        """4 KB of noise in the middle of the 40-frame clip."""
        data = bytearray(self.long.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 4096] = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes()
        p = self.p("corrupt-middle.mp4")
        p.write_bytes(bytes(data))
        return p

    def make_audio_only(self):
        p = self.p("audio-only.m4a")
        with av.open(str(p), "w", format="mp4") as c:
            a = c.add_stream("aac", rate=48000, layout="mono")
            tone = (0.2 * np.sin(np.arange(48000) / 48000 * 2 * np.pi * 440)).astype(np.float32)[None]
            for k in range(0, 48000, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = 48000, k
                for pk in a.encode(af):
                    c.mux(pk)
            for pk in a.encode(None):
                c.mux(pk)
        return p

    def make_one_frame(self):
        return write_video(self.p("one-frame.mp4"), [face_rgb()])

    def make_vfr(self):
        f = face_rgb()
        pts = np.cumsum([0, 40, 40, 80, 20, 40, 120, 40, 40, 60])
        return write_video(self.p("vfr.mkv"), [moved(f, i) for i in range(10)], pts=pts)

    def make_odd(self):
        return write_still(self.p("odd.png"), cv2.resize(face_rgb(), (SIZE + 1, SIZE - 1)))

    def make_tiny(self):
        return write_still(self.p("tiny.png"), cv2.resize(face_rgb(), (16, 16)))

    def make_ten_bit(self):
        f = face_rgb()
        return write_video(self.p("ten-bit.mkv"), [moved(f, i) for i in range(N_FRAMES)], codec="ffv1",
                           pix_fmt="yuv420p10le")

    def make_alpha_still(self):
        rgba = np.dstack([face_rgb(), np.full((SIZE, SIZE), 180, np.uint8)])
        return write_still(self.p("alpha.png"), rgba)

    def make_alpha_video(self):
        f = face_rgb()
        frames = [np.dstack([moved(f, i), np.full((SIZE, SIZE), 200, np.uint8)]) for i in range(N_FRAMES)]
        return write_video(self.p("alpha.mov"), frames, codec="prores_ks", pix_fmt="yuva444p10le")

    def make_rotated(self):
        f = np.ascontiguousarray(np.rot90(face_rgb(), 1))  # stored turned, with rotation metadata
        return write_video(self.p("rotated.mp4"), [moved(f, i) for i in range(N_FRAMES)], rotate=90)

    def make_grey(self):
        return write_still(self.p("grey.png"), cv2.cvtColor(face_rgb(), cv2.COLOR_RGB2GRAY))

    def make_cmyk(self):
        from PIL import Image

        p = self.p("cmyk.jpg")
        Image.fromarray(face_rgb()).convert("CMYK").save(p, "JPEG")
        return p

    def make_sixteen_bit(self):
        p = self.p("sixteen.png")
        bgr16 = cv2.cvtColor(face_rgb(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
        cv2.imwrite(str(p), bgr16)
        return p

    def make_large_still(self):
        """8000x6000 with a small face (about 190 px) in a grey field."""
        big = np.full((6000, 8000, 3), 118, np.uint8)
        big[2900:2900 + SIZE, 3900:3900 + SIZE] = face_rgb()
        p = self.p("large.jpg")
        cv2.imwrite(str(p), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        return p

    # ---------------------------------------------------------------- face cases
    def make_no_face(self):
        from skimage import data

        return write_still(self.p("coffee.png"), cv2.resize(data.coffee(), (SIZE, SIZE)))

    def make_tiny_face(self):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[200:236, 300:336] = cv2.resize(face_rgb(), (36, 36), interpolation=cv2.INTER_AREA)
        return write_still(self.p("tiny-face.png"), canvas)

    def make_two_faces(self):
        f = face_rgb()
        small = np.full_like(f, 90)
        small[48:144, 48:144] = cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA)
        return write_still(self.p("two-faces.png"), np.hstack([f, small]))

    def make_leaving(self):
        """A driver whose face slides out of the frame over its last 10 of 20 frames."""
        f = face_rgb()
        frames = [moved(f, i, n=20) if i < 10 else
                  cv2.warpAffine(f, np.float32([[1, 0, SIZE * 1.1 * (i - 9) / 10], [0, 1, 0]]), (SIZE, SIZE))
                  for i in range(20)]
        return write_video(self.p("leaving.mp4"), frames)

    def make_blurred(self):
        return write_still(self.p("blurred.png"), cv2.GaussianBlur(face_rgb(), (0, 0), 4))

    def make_rolled(self):
        f = face_rgb()
        m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 70, 0.8)
        return write_still(self.p("rolled.png"), cv2.warpAffine(f, m, (SIZE, SIZE),
                                                               borderMode=cv2.BORDER_REPLICATE))

    # ---------------------------------------------------------------- text files
    def text(self, name: str, content: str | bytes) -> Path:
        p = self.p(name)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p


def bomb(levels: int = 9, width: int = 9, anchor: str = "a") -> str:
    """A billion-laughs YAML alias chain: `levels` lists of `width` aliases (width**levels leaves)."""
    lines = [f'{anchor}0: &{anchor}0 ["lol"]']
    for k in range(1, levels + 1):
        refs = ", ".join([f"*{anchor}{k - 1}"] * width)
        lines.append(f"{anchor}{k}: &{anchor}{k} [{refs}]")
    return "\n".join(lines)


def indented(block: str, n: int) -> str:
    return "\n".join(" " * n + line for line in block.splitlines())


def free_space(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
