"""Shared fixtures: the face material in ../shared/data/faces (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

@pytest.fixture(scope="session", autouse=True)
def fresh_cache(tmp_path_factory):
    """Each test run starts with an empty analysis cache: no track from an earlier build leaks in."""
    mp = pytest.MonkeyPatch()
    mp.setenv("REENACT_FX_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


SHARED = Path(os.environ.get("REENACT_FX_SHARED")
              or Path(__file__).resolve().parents[2] / "shared" / "data" / "faces")


@pytest.fixture(scope="session")
def faces() -> Path:
    """The shared face material (portraits in source/, talking heads in driving/)."""
    if not SHARED.is_dir():
        pytest.skip(f"shared face material not found at {SHARED} (set REENACT_FX_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory) -> Path:
    """scikit-image's portrait as a PNG file (needs no shared data)."""
    from skimage import data

    path = tmp_path_factory.mktemp("astronaut") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def read_video(path) -> list[np.ndarray]:
    """Every frame of a video (or PNG folder) as RGB uint8."""
    path = Path(path)
    if path.is_dir():
        return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(path.glob("*.png"))]
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# --- tracked material several modules use: built once per session (tracks also hit the cache) ---
@pytest.fixture(scope="session")
def s9_d0_tracks(faces):
    """s9 (a portrait, held out of the shipped weights' training) and d0 (another person talking)."""
    from reenact_fx import Effect

    with Effect() as fx:
        return fx.track(str(faces / "source/s9.jpg")), fx.track(str(faces / "driving/d0.mp4"))


@pytest.fixture(scope="session")
def small_dataset(faces, tmp_path_factory) -> str:
    """A small real landmark dataset: two clips (d0, d12) and a still (s9), all for training."""
    from reenact_fx.learning import dataset

    path = tmp_path_factory.mktemp("small-ds") / "small.npz"
    dataset.build([str(faces / "driving/d0.mp4"), str(faces / "driving/d12.mp4"),
                   str(faces / "source/s9.jpg")], str(path), val_fraction=0.0)
    return str(path)


@pytest.fixture(scope="session")
def d3_short(faces, tmp_path_factory) -> Path:
    """The first 2 s of d3 (60 frames at 30 fps) with its audio, packets copied as they are: a
    talking head with speech, a sixth of the full clip's render time."""
    import av

    out = tmp_path_factory.mktemp("d3-short") / "d3-2s.mp4"
    with av.open(str(faces / "driving/d3.mp4")) as src, av.open(str(out), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams
                   if s.type in ("video", "audio")}
        for packet in src.demux(*[s for s in src.streams if s.index in streams]):
            if packet.dts is None or packet.pts is None:
                continue
            if packet.pts * packet.time_base >= 2.0:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return out


def cut_clip(src, out, start: int, stop: int, size: tuple[int, int] | None = None):
    """Frames start..stop-1 of the video ``src`` re-encoded (H.264) as their own clip at ``out``,
    at the source's size or ``size`` (width, height); returns ``out``."""
    import av

    with av.open(str(src)) as inp, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 0:
                w, h = size or (frame.width, frame.height)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            if i >= stop:
                break
            if i < start:
                continue
            img = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            for p in stream.encode(img):
                dst.mux(p)
        for p in stream.encode():
            dst.mux(p)
    return out
