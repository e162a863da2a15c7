"""An 8000x6000 still with a small face, driven by a 10-frame clip: tracking time, render time and
peak memory (each in a fresh process, so the peak is this render's).

    python bench/bench_large_still.py [--frames N] [--codec h264|ffv1|...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from reenact_fx.pipeline.effect import Effect
target, driver, out, codec = sys.argv[1:5]
import reenact_fx.face.tracking  # (imports out of the timing)
t0 = time.perf_counter()
with Effect(cache=False, params={"output": {"codec": codec, "audio": "none"}}) as fx:
    a = fx.analyze(target, driver)
    t1 = time.perf_counter()
    fx.render(out)
    t2 = time.perf_counter()
print(json.dumps({"analyze_s": t1 - t0, "render_s": t2 - t1, "frames": a.frame_count,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--codec", default="h264")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from corpus.media import Media, face_rgb, moved, write_video

    tmp = Path(tempfile.mkdtemp(prefix="reenact-fx-large-"))
    m = Media(tmp)
    driver = write_video(tmp / "d.mp4", [moved(face_rgb(), i, n=args.frames) for i in range(args.frames)])
    out = tmp / ("o" + {"h264": ".mp4", "ffv1": ".mkv"}.get(args.codec, ".mov"))
    r = subprocess.run([sys.executable, "-c", CHILD, str(m.large_still), str(driver), str(out), args.codec],
                       capture_output=True, text=True)
    if r.returncode:
        print(r.stderr[-2000:])
        return 1
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"8000x6000 still, {res['frames']} frames ({args.codec}): analyze {res['analyze_s']:.1f} s, "
          f"render {res['render_s']:.1f} s, peak RSS {res['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
