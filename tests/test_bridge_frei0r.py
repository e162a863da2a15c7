"""The frei0r plugins in real hosts from Debian: melt (MLT, the engine of Kdenlive and Shotcut) and
ffmpeg's frei0r filter, talking to the same render service as the OFX plugin."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ofx_bridge" / "testhost"))
import bridge  # noqa: E402

FRAMES = 10   # a short prefix of the driver is enough

PROFILE = """description=portrait 720x1280 25p
frame_rate_num=25
frame_rate_den=1
width=720
height=1280
progressive=1
sample_aspect_num=1
sample_aspect_den=1
display_aspect_num=9
display_aspect_den=16
colorspace=709
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    why = bridge.build()
    if why:
        pytest.skip(why)
    plugins = bridge.BUILD / "frei0r"
    if not (plugins / "reenact_fx_filter.so").exists():
        pytest.skip("frei0r plugins not built (apt-get install frei0r-plugins-dev)")
    tmp = tmp_path_factory.mktemp("frei0r")
    e = dict(os.environ, FREI0R_PATH=str(plugins), REENACT_FX_SOCKET=str(tmp / "serve.sock"),
             REENACT_FX_SERVE=bridge.serve_program())
    yield e, tmp
    from reenact_fx.host.client import Client
    from reenact_fx.host.protocol import ServiceError

    try:
        with Client(e["REENACT_FX_SOCKET"]) as c:
            os.kill(c.hello["pid"], signal.SIGTERM)
    except (ServiceError, OSError):
        pass


def still(path) -> str:
    """A still for melt through its gdk-pixbuf producer (the Qt one wants an X11 display)."""
    return f"pixbuf:{path}"


def read_png(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def melt(env, out_dir, *args):
    """Render with melt as the README says: ``real_time=-1`` (melt's default real-time playback
    drops frames it cannot render in time: on a busy machine a one-frame render wrote nothing)."""
    if not shutil.which("melt"):
        pytest.skip("melt is not installed (apt-get install melt)")
    e, tmp = env
    profile = tmp / "portrait.profile"
    profile.write_text(PROFILE)
    out_dir.mkdir(exist_ok=True)
    proc = subprocess.run(["melt", "-quiet", "-profile", str(profile), *args, "-consumer",
                           f"avformat:{out_dir}/f%03d.png", "vcodec=png", "real_time=-1"],
                          env=e, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    frames = sorted(out_dir.glob("f*.png"))
    assert frames, proc.stderr
    return [read_png(p) for p in frames], proc.stderr


def test_melt_renders_through_the_filter_pixel_equal(env, faces):
    from reenact_fx import Effect

    target, driver = faces / "source/s9.jpg", faces / "driving/d0.mp4"
    _, tmp = env
    # melt's own picture of the target (what the filter receives), and the effect on it
    (source,), _ = melt(env, tmp / "plain", still(target), "out=0")
    frames, log = melt(env, tmp / "fx", still(target), f"out={FRAMES - 1}", "-filter",
                       "frei0r.reenact_fx_filter", f"driver={driver}")
    assert len(frames) == FRAMES and "passing the input through" not in log, log
    picture = tmp / "melt-source.png"
    cv2.imwrite(str(picture), cv2.cvtColor(source, cv2.COLOR_RGB2BGR))
    with Effect() as fx:
        fx.analyze(str(picture), str(driver))
        for t in (0, 4, FRAMES - 1):
            assert np.array_equal(frames[t], fx.render_frame(t)), t
    assert not np.array_equal(frames[FRAMES - 1], source)


def test_melt_filter_without_service_passes_through(env, faces, tmp_path):
    e, tmp = env
    broken = (dict(e, REENACT_FX_SOCKET=str(tmp_path / "none.sock"),
                   REENACT_FX_SERVE=str(tmp_path / "missing")), tmp)
    target, driver = faces / "source/s9.jpg", faces / "driving/d0.mp4"
    (source,), _ = melt(env, tmp_path / "plain", still(target), "out=0")
    frames, log = melt(broken, tmp_path / "fx", still(target), "out=2", "-filter",
                       "frei0r.reenact_fx_filter", f"driver={driver}")
    assert all(np.array_equal(f, source) for f in frames)
    assert log.count("passing the input through") == 1 and "REENACT_FX_SERVE" in log


def test_ffmpeg_frei0r_filter(env, faces):
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    e, tmp = env
    target, driver = faces / "driving/d3.mp4", faces / "driving/d0.mp4"

    def run(vf, name):
        out = tmp / f"ffmpeg-{name}"
        out.mkdir()
        proc = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i",
                               str(target), "-frames:v", "4", "-vf", vf, "-pix_fmt", "rgb24",
                               f"{out}/f%03d.png"], env=e, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return [read_png(p) for p in sorted(out.glob("*.png"))], proc.stderr

    plain, _ = run("format=rgba", "plain")
    # ffmpeg gives frei0r milliseconds: time_scale 1; the input is the target clip itself
    fx, log = run(f"format=rgba,frei0r=filter_name=reenact_fx_filter:"
                  f"filter_params={driver}|{target}|||1", "fx")
    assert len(fx) == len(plain) == 4 and "passing the input through" not in log, log
    # the same frames through the service directly: ffmpeg's time (ms) maps to the same frame
    from reenact_fx.host.client import Client

    spec = {"target": {"path": str(target)}, "driver": {"path": str(driver)}}
    with Client(e["REENACT_FX_SOCKET"]) as c:
        for t in (0, 3):
            assert np.array_equal(fx[t], c.render(spec, t, plain[t])), t
    assert (fx[3] != plain[3]).any(2).sum() > 500   # the face did move


def test_melt_transition_through_the_mixer(env, faces, tmp_path):
    """The mixer2 (an MLT transition): input 1 the target, input 2 the driver as frames.  Rendered
    live (each frame from the driver frames seen so far), it moves the face like the filter that
    reads the driver file, without being pixel-equal to it (causal, tracked frame by frame)."""
    target, driver = faces / "source/s9.jpg", faces / "driving/d0.mp4"
    (source,), _ = melt(env, tmp_path / "plain", still(target), "out=0")
    mixed, log = melt(env, tmp_path / "mix", still(target), f"out={FRAMES - 1}", "-track",
                      str(driver), f"out={FRAMES - 1}", "-transition", "frei0r.reenact_fx_mixer",
                      "a_track=0", "b_track=1", "in=0", f"out={FRAMES - 1}")
    filtered, _ = melt(env, tmp_path / "fx", still(target), f"out={FRAMES - 1}", "-filter",
                       "frei0r.reenact_fx_filter", f"driver={driver}")
    assert len(mixed) == FRAMES and "passing the input through" not in log, log
    last, ref, src = (f.astype(int) for f in (mixed[-1], filtered[-1], source))
    face = (ref != src).any(2)
    assert face.sum() > 1000
    assert np.abs(last - ref)[face].mean() < 0.6 * np.abs(src - ref)[face].mean()
    assert ((last != src).any(2) & ~face).sum() < 0.1 * face.sum()   # the rest left alone


def readme_ffmpeg_command() -> str:
    """The ffmpeg frei0r example of the README, its line continuations joined."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("FREI0R_PATH=ofx_bridge/build/frei0r ffmpeg")
    cmd = text[start:text.index("\n```", start)].split("\nFREI0R_PATH")[0]
    return cmd.replace("\\\n", "")


def test_ffmpeg_readme_command_at_720x1280(env, faces):
    """The README's ffmpeg line, as written, on a 720-pixel-wide clip: ffmpeg's frei0r filter
    loses the frame time of rows it must repack (widths that are not a multiple of 32/64 px), so
    the plugin counts frames; the output must be the effect's frames, not the input."""
    import shlex

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    e, tmp = env
    work = tmp / "readme720"
    work.mkdir()
    clip, speech = work / "clip.mp4", work / "speech.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(faces / "driving/d3.mp4"), "-frames:v",
                    "6", "-vf", "scale=720:720,pad=720:1280:0:280", "-c:v", "libx264", "-crf", "12",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    shutil.copy(faces / "driving/d0.mp4", speech)
    argv = shlex.split(readme_ffmpeg_command())
    assert argv[0].startswith("FREI0R_PATH=") and argv[1] == "ffmpeg"
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *argv[2:]],
                          cwd=work, env=dict(e, REENACT_FX_DEBUG="1"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "passing the input through" not in proc.stderr, proc.stderr
    from conftest import read_video
    from reenact_fx.host.client import Client

    plain, out = read_video(clip), read_video(work / "out.mp4")
    assert len(out) == len(plain) == 6 and out[0].shape == (1280, 720, 3)
    spec = {"target": {"path": str(clip)}, "driver": {"path": str(speech)}}
    with Client(e["REENACT_FX_SOCKET"]) as c:
        for t in (3, 5):
            want = c.render(spec, t, plain[t]).astype(int)
            face = np.abs(want - plain[t]).max(2) > 12   # where the effect clearly moved the face
            assert face.sum() > 300, t
            got = out[t].astype(int)
            # H.264 on both sides: the output is close to the effect's frame t, far from the input
            assert (np.abs(got - want)[face].mean()
                    < 0.5 * np.abs(plain[t].astype(int) - want)[face].mean()), t


def test_melt_readme_command_keeps_the_portraits_size(env, faces):
    """The README's melt line (fewer frames) writes the 720x1280 portrait at its own size with
    square pixels, not PAL 720x576 letterboxed."""
    import shlex

    if not shutil.which("melt") or not shutil.which("ffprobe"):
        pytest.skip("melt / ffprobe are not installed")
    e, tmp = env
    work = tmp / "readme-melt"
    work.mkdir()
    shutil.copy(faces / "source/s9.jpg", work / "portrait.jpg")     # 720x1280
    shutil.copy(faces / "driving/d0.mp4", work / "speech.mp4")
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("FREI0R_PATH=ofx_bridge/build/frei0r melt portrait.jpg out=99 -filter")
    line = text[start:text.index("\nFREI0R_PATH", start)].replace("\\\n", "")
    argv = shlex.split(line)[1:]
    assert argv[0] == "melt"
    argv = ["melt", "-quiet", *("out=3" if a == "out=99" else a for a in argv[1:])]
    proc = subprocess.run(argv, cwd=work, env=e, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "passing the input through" not in proc.stderr, proc.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height,sample_aspect_ratio", "-of", "csv=p=0",
                            str(work / "out.mp4")], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() in ("720,1280,1:1", "720,1280,N/A"), probe.stdout
