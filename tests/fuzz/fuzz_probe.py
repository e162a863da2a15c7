"""Coverage-guided fuzzing (atheris) of media probing: ``MediaReader`` opening a file, reading its
first and last frame, and ``read_still``, on mutated bytes of small real clips and stills.

A finding is any exception other than ``MediaError`` (or a crash/hang of the process).  Run for N
minutes (``pip install atheris``; the corpus folder is created with seeds on the first run):

    python tests/fuzz/fuzz_probe.py -max_total_time=$((N*60)) -timeout=20 -rss_limit_mb=3000 \\
        /tmp/reenact-fx-fuzz-corpus

libFuzzer's options apply (``-runs=N``, ``-jobs``...); a crashing input is written as
``crash-<sha1>`` in the current folder: replay it with ``python tests/fuzz/fuzz_probe.py crash-...``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["reenact_fx"]):
    from reenact_fx.errors import MediaError
    from reenact_fx.media import MediaReader, read_still

_EXTS = (".mp4", ".mov", ".mkv", ".png", ".jpg")
_TMP = tempfile.mkdtemp(prefix="reenact-fx-fuzz-")


def _seed(folder: str) -> None:
    """Small valid media as the starting corpus."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from corpus.media import Media

    m = Media(os.path.join(_TMP, "seeds"))
    for name in ("driver", "one_frame", "vfr", "faststart", "rotated", "face", "grey", "cmyk"):
        p = getattr(m, name)
        data = p.read_bytes()
        if len(data) > 40_000:   # libFuzzer works best on small inputs
            continue
        with open(os.path.join(folder, f"seed-{name}{p.suffix}"), "wb") as f:
            f.write(bytes([_EXTS.index(p.suffix) if p.suffix in _EXTS else 0]) + data)


def probe(data: bytes) -> None:
    if len(data) < 2:
        return
    ext = _EXTS[data[0] % len(_EXTS)]          # the first byte picks the extension (the reader
    path = os.path.join(_TMP, f"input{ext}")    # takes stills by extension)
    with open(path, "wb") as f:
        f.write(data[1:])
    try:
        if ext in (".png", ".jpg"):
            read_still(path)
        with MediaReader(path) as r:
            info = r.info
            assert info.frame_count >= 1 and info.width > 0 and info.height > 0
            first = r.frame_at(0)
            assert first.shape == (info.height, info.width, 3)
            if info.frame_count > 1:
                try:
                    r.frame_at(info.frame_count - 1)
                except MediaError:
                    pass
            for _ in zip(range(3), r.frames()):
                pass
    except MediaError:
        pass


def main() -> None:
    args = sys.argv[:]
    folders = [a for a in args[1:] if not a.startswith("-") and os.path.isdir(a)]
    for folder in folders:
        if not os.listdir(folder):
            _seed(folder)
    atheris.Setup(args, probe)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
