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
