"""Tests of reenact_fx.media on tiny synthetic clips made with PyAV, and on the shared face media when present."""

from __future__ import annotations

import hashlib
import os
import random
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from reenact_fx.errors import MediaError
from reenact_fx.media import CODECS, MediaReader, MediaWriter, read_still

from conftest import SHARED as FACES  # noqa: E402  (the one place that locates the shared faces)


def face_file(rel: str) -> Path:
    p = FACES / rel
    if not p.exists():
        pytest.skip(f"shared face media not found at {p} (set REENACT_FX_SHARED)")
    return p


def picture(i: int, w: int, h: int) -> np.ndarray:
    """A smooth moving picture (gradients and a moving blob): every frame differs, chroma subsampling
    and lossy codecs stay close to it, so a frame out of place or a bad conversion shows up."""
    x = np.arange(w)[None, :]
    y = np.arange(h)[:, None]
    blob = np.exp(-(((x - (4 * i) % w) / 6.0) ** 2 + ((y - h / 2) / 6.0) ** 2))
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 180 * x / w + 8 * i
    img[..., 1] = 255 * y / h
    img[..., 2] = 40 + 200 * blob
    return img


def make_clip(path, w=64, h=48, n=10, *, pts=None, tb=Fraction(1, 1000), rotation=None,
              audio=False, options=None, codec="libx264", pix_fmt="yuv420p", fmt_options=None):
    """Write a synthetic clip with PyAV. pts in `tb` units (default: 25 fps)."""
    pts = pts if pts is not None else [i * 40 for i in range(n)]
    with av.open(str(path), "w", options=fmt_options or {}) as c:
        s = c.add_stream(codec, rate=25, options=options or ({"preset": "veryfast"} if codec == "libx264" else {}))
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.time_base = s.codec_context.time_base = tb
        if rotation is not None:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=48000, layout="stereo") if audio else None
        for i, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(picture(i, w, h), format="rgb24")
            f.pts, f.time_base = t, tb
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:  # one second of a 440 Hz tone
            t = np.arange(48000) / 48000
            tone = np.vstack([np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
            for k in range(0, 48000, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp",
                                                layout="stereo")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return str(path)


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4")


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ reading

def test_video_info(clip):
    with MediaReader(clip) as r:
        i = r.info
        assert (i.width, i.height, i.frame_count, i.fps) == (64, 48, 10, Fraction(25))
        assert not i.is_still and not i.has_audio and not i.has_alpha and i.rotation == 0
        assert i.times.dtype == np.float64
        np.testing.assert_allclose(i.times, np.arange(10) / 25)
        assert i.duration == pytest.approx(0.4)
        assert r.warnings == []


def test_frames_equal_frame_at_in_random_order(clip):
    with MediaReader(clip) as r:
        frames = dict(r.frames())
        assert sorted(frames) == list(range(10))
        assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames.values())
        # Close to what was written (libx264 at its default crf): the frames come in the right order.
        for i, f in frames.items():
            assert np.abs(f.astype(int) - picture(i, 64, 48)).mean() < 6
        order = list(range(10)) * 2
        random.Random(1).shuffle(order)
        for i in order:
            assert np.array_equal(r.frame_at(i), frames[i]), i
        later = list(r.frames(start=6))
        assert [i for i, _ in later] == [6, 7, 8, 9]
        assert all(np.array_equal(f, frames[i]) for i, f in later)


def test_frame_at_sequential_does_not_seek(tmp_path):
    # Keyframes every 3 frames, so a forward scrub crosses several GOPs.
    path = make_clip(tmp_path / "gop.mp4", n=20, options={"preset": "veryfast", "g": "3", "bf": "2"})
    with MediaReader(path) as r:
        frames = dict(r.frames())
        r.frame_at(0)
        seeks = r._seeks
        for i in range(20):
            assert np.array_equal(r.frame_at(i), frames[i])
        assert r._seeks == seeks  # scrubbing forward decodes on, it does not seek
        r.frame_at(2)  # going back has to seek
        assert r._seeks == seeks + 1


def test_frame_at_out_of_range(clip):
    with MediaReader(clip) as r:
        for bad in (-1, 10):
            with pytest.raises(MediaError) as e:
                r.frame_at(bad)
            assert e.value.path == clip and e.value.frame == bad


@pytest.mark.parametrize("ccw", [90, -90, 180])
def test_rotation_metadata_applied(tmp_path, ccw):
    path = make_clip(tmp_path / f"rot{ccw}.mp4", rotation=ccw)
    with MediaReader(path) as r:
        assert r.info.rotation == (-ccw) % 360  # MediaInfo counts clockwise
        assert (r.info.width, r.info.height) == ((48, 64) if ccw % 180 else (64, 48))
        got = r.frame_at(3)
        assert got.shape == (r.info.height, r.info.width, 3)
        assert np.abs(got.astype(int) - np.rot90(picture(3, 64, 48), ccw // 90)).mean() < 6
        assert any("rotation" in w for w in r.warnings)
    # OpenCV's own auto-orientation (an independent reading of the display matrix) agrees.
    cap = cv2.VideoCapture(path)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    for _ in range(4):
        ok, bgr = cap.read()
    cap.release()
    assert ok and bgr.shape == got.shape
    assert np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int) - got).mean() < 4


def test_vfr_times_follow_pts(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 520, 700]
    path = make_clip(tmp_path / "vfr.mp4", pts=pts)
    with MediaReader(path) as r:
        np.testing.assert_allclose(r.info.times, np.array(pts) / 1000)
        assert r.info.frame_count == 10
        assert any("variable frame rate" in w for w in r.warnings)
        frames = dict(r.frames())
        assert sorted(frames) == list(range(10))
        for i in (9, 3, 0, 5):
            assert np.array_equal(r.frame_at(i), frames[i])


def test_odd_size_video_reads(tmp_path):
    path = make_clip(tmp_path / "odd.mkv", w=63, h=47, codec="ffv1", pix_fmt="yuv444p")
    with MediaReader(path) as r:
        assert (r.info.width, r.info.height, r.info.frame_count) == (63, 47, 10)
        f = r.frame_at(4)
        assert f.shape == (47, 63, 3) and f.flags.c_contiguous
        assert np.abs(f.astype(int) - picture(4, 63, 47)).max() <= 3


def test_alpha_video_reads_as_rgb(tmp_path):
    path = make_clip(tmp_path / "a.mov", codec="prores_ks", pix_fmt="yuva444p10le", options={"profile": "4"})
    with MediaReader(path) as r:
        assert r.info.has_alpha
        assert r.frame_at(0).shape == (48, 64, 3)
        assert any("alpha" in w for w in r.warnings)


def test_still_png_alpha_and_16bit_gray(tmp_path):
    rgba = np.dstack([picture(0, 33, 21), np.full((21, 33), 128, np.uint8)])
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    with MediaReader(str(p)) as r:
        i = r.info
        assert (i.width, i.height, i.frame_count, i.fps, i.is_still, i.has_alpha) == (33, 21, 1, 25, True, True)
        np.testing.assert_array_equal(i.times, [0.0])
        assert np.array_equal(r.frame_at(0), rgba[..., :3])
        assert [k for k, _ in r.frames()] == [0]
        assert any("alpha" in w for w in r.warnings)
    gray16 = (np.arange(21 * 33).reshape(21, 33) * 97 % 65536).astype(np.uint16)
    p16 = tmp_path / "g16.png"
    cv2.imwrite(str(p16), gray16)
    rgb = read_still(str(p16))
    assert rgb.dtype == np.uint8 and rgb.shape == (21, 33, 3)
    assert np.abs(rgb[..., 1].astype(int) - (gray16 >> 8)).max() <= 1


def test_still_exif_orientation_applied(tmp_path):
    # A 40x20 JPEG whose EXIF says "rotate 90 CW" (orientation 6) must read as 20x40.
    img = picture(0, 40, 20)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    # APP1 Exif segment: big-endian TIFF with one IFD entry, Orientation (0x0112) = 6.
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00" \
        + b"\x00\x00\x00\x00"
    app1 = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    data = jpg.tobytes()
    (tmp_path / "o.jpg").write_bytes(data[:2] + app1 + data[2:])
    with MediaReader(str(tmp_path / "o.jpg")) as r:
        assert (r.info.width, r.info.height) == (20, 40)


def test_read_errors_name_the_file(tmp_path):
    cases = {}
    cases["missing"] = str(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases["empty"] = str(tmp_path / "empty.mp4")
    (tmp_path / "x.mp4").write_text("this is not a video\n" * 20)
    cases["not media"] = str(tmp_path / "x.mp4")
    (tmp_path / "x.png").write_text("this is not an image\n")
    cases["bad image"] = str(tmp_path / "x.png")
    words = {"missing": "not found", "empty": "empty", "not media": "cannot be read",
             "bad image": "not an image"}
    for what, path in cases.items():
        with pytest.raises(MediaError) as e:
            MediaReader(path)
        assert e.value.path == path and path in str(e.value), what
        assert words[what] in e.value.message, (what, e.value.message)


def test_audio_only_file_has_no_video_stream(tmp_path):
    p = str(tmp_path / "tone.m4a")
    with av.open(p, "w") as c:
        a = c.add_stream("aac", rate=48000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        for pk in [*a.encode(f), *a.encode()]:
            c.mux(pk)
    with pytest.raises(MediaError, match="no video stream") as e:
        MediaReader(p)
    assert e.value.path == p


def test_truncated_faststart_mp4_stops_cleanly(tmp_path):
    # moov first, so the file opens; the second half of the frames is gone.
    full = make_clip(tmp_path / "full.mp4", n=60, fmt_options={"movflags": "faststart"})
    data = Path(full).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with MediaReader(str(cut)) as r:
        n = r.info.frame_count
        assert 0 < n < 60 and len(r.info.times) == n
        assert any(str(cut) in w and "truncated" in w for w in r.warnings)
        frames = dict(r.frames())
        assert sorted(frames) == list(range(n))  # what remains decodes, in order
        assert np.array_equal(r.frame_at(n - 1), frames[n - 1])


def test_truncated_real_mp4(tmp_path):
    src = face_file("driving/d0.mp4")
    data = src.read_bytes()
    cut = tmp_path / "d0_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    try:
        r = MediaReader(str(cut))
    except MediaError as e:  # d0.mp4 keeps its index (moov) at the end: nothing to read
        assert e.path == str(cut) and str(cut) in str(e)
        return
    with r:
        got = [i for i, _ in r.frames()]
        assert got == list(range(len(got)))
        assert any(str(cut) in w for w in r.warnings)


# ----------------------------------------------------------------------------------------- real files

def test_real_driving_clip():
    path = str(face_file("driving/d0.mp4"))
    with MediaReader(path) as r:
        i = r.info
        assert (i.width, i.height, i.fps, i.frame_count, i.has_audio) == (512, 512, Fraction(25), 78, False)
        np.testing.assert_allclose(i.times, np.arange(78) / 25)
        frames = {}
        for k, f in r.frames():
            if k in (0, 1, 30, 31, 77):
                frames[k] = f
        for k in (77, 30, 0, 31, 1):
            assert np.array_equal(r.frame_at(k), frames[k])
    with MediaReader(str(face_file("driving/d3.mp4"))) as r:
        assert r.info.has_audio


def test_real_still():
    with MediaReader(str(face_file("source/s9.jpg"))) as r:
        assert r.info.is_still and (r.info.width, r.info.height) == (720, 1280)
        assert r.frame_at(0).shape == (1280, 720, 3)


# ------------------------------------------------------------------------------------------------ writing

def _size_for(codec):
    return (257, 121) if codec == "dnxhr" else (63, 47)  # DNxHR needs at least 256x120


def _read_png_dir(path):
    names = sorted(os.listdir(path))
    return [cv2.imread(os.path.join(path, n), cv2.IMREAD_UNCHANGED) for n in names]


@pytest.mark.parametrize("codec", list(CODECS))
def test_round_trip_odd_size(tmp_path, codec):
    w, h = _size_for(codec)
    out = str(tmp_path / f"out{CODECS[codec][2]}")
    fps = Fraction(30000, 1001)
    with MediaWriter(out, w, h, fps, codec=codec) as wr:
        for i in range(6):
            wr.write(picture(i, w, h))
    assert os.listdir(tmp_path) == [os.path.basename(out)]  # no partial left
    if codec == "png":
        imgs = _read_png_dir(out)
        assert len(imgs) == 6
        assert all(np.array_equal(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), picture(i, w, h)) for i, im in enumerate(imgs))
        return
    if codec == "h264":
        assert any("odd frame size" in x for x in wr.warnings)
    with MediaReader(out) as r:
        assert (r.info.width, r.info.height, r.info.frame_count, r.info.fps) == (w, h, 6, fps)
        np.testing.assert_allclose(r.info.times, np.arange(6) / float(fps), atol=1e-3)
        for i, f in r.frames():
            err = np.abs(f.astype(int) - picture(i, w, h))
            if codec == "ffv1":  # lossless yuv444p: only the RGB<->YUV rounding is left
                assert err.max() <= 3, err.max()
            else:
                assert err.mean() < 4, (i, err.mean())  # lossy: bounded


def test_alpha_prores4444(tmp_path):
    out = str(tmp_path / "a.mov")
    alpha = np.tile(np.linspace(0, 255, 63).astype(np.uint8), (47, 1))
    with MediaWriter(out, 63, 47, Fraction(25), codec="prores4444", alpha=True) as wr:
        for i in range(3):
            wr.write(picture(i, 63, 47), alpha)
    with av.open(out) as c:
        s = c.streams.video[0]
        assert any(comp.is_alpha for comp in av.VideoFormat(s.codec_context.pix_fmt).components)
        rgba = next(c.decode(s)).to_ndarray(format="rgba")
    assert np.abs(rgba[..., 3].astype(int) - alpha).max() <= 2
    with MediaReader(out) as r:
        assert r.info.has_alpha and r.frame_at(2).shape == (47, 63, 3)


def test_alpha_png_sequence_and_replace(tmp_path):
    out = str(tmp_path / "seq")
    alpha = np.full((47, 63), 77, np.uint8)
    for run in range(2):  # the second run replaces the first run's sequence
        with MediaWriter(out, 63, 47, Fraction(25), codec="png", alpha=True) as wr:
            for i in range(3 - run):
                wr.write(picture(i, 63, 47), alpha)
    imgs = _read_png_dir(out)
    assert len(imgs) == 2 and all(im.shape == (47, 63, 4) and (im[..., 3] == 77).all() for im in imgs)
    with MediaReader(os.path.join(out, "frame_000000.png")) as r:
        assert r.info.has_alpha
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(MediaError, match="refusing"):
        MediaWriter(str(other), 63, 47, Fraction(25), codec="png")
    assert (other / "keep.txt").read_text() == "mine"


def test_writer_argument_errors(tmp_path):
    with pytest.raises(MediaError, match="h264") as e:
        MediaWriter(str(tmp_path / "a.mp4"), 64, 48, Fraction(25), codec="h264", alpha=True)
    assert "prores4444" in e.value.message
    with pytest.raises(MediaError) as e:
        MediaWriter(str(tmp_path / "a.mp4"), 64, 48, Fraction(25), codec="vp9")
    assert all(c in e.value.message for c in CODECS)
    with pytest.raises(MediaError, match="does not exist"):
        MediaWriter(str(tmp_path / "no" / "a.mp4"), 64, 48, Fraction(25))
    with pytest.raises(MediaError, match="at least 256x120"):
        MediaWriter(str(tmp_path / "a.mov"), 64, 48, Fraction(25), codec="dnxhr")
    with pytest.raises(MediaError, match="cannot write"):
        MediaWriter(str(tmp_path / "a.mp4"), 64, 48, Fraction(25), codec="prores")  # mp4 can't hold ProRes
    with MediaWriter(str(tmp_path / "b.mp4"), 64, 48, Fraction(25)) as wr:
        with pytest.raises(MediaError, match="uint8"):
            wr.write(np.zeros((48, 64, 3), np.float32))
        wr.write(picture(0, 64, 48))
    assert sorted(os.listdir(tmp_path)) == ["b.mp4"]


def test_refuses_to_overwrite_an_input(tmp_path, clip):
    before = sha(clip)
    sneaky = str(tmp_path / "sub" / ".." / "clip.mp4")
    (tmp_path / "sub").mkdir()
    os.symlink(clip, tmp_path / "link.mp4")
    for target in (clip, sneaky, str(tmp_path / "link.mp4")):
        with pytest.raises(MediaError, match="refusing to overwrite an input"):
            MediaWriter(target, 64, 48, Fraction(25), protect=[clip])
    with pytest.raises(MediaError, match="refusing"):  # the audio source is an input too
        MediaWriter(clip, 64, 48, Fraction(25), audio_from=clip)
    assert sha(clip) == before
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "link.mp4", "sub"]


def test_atomic_write(tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError):
        with MediaWriter(str(out), 64, 48, Fraction(25)) as wr:
            wr.write(picture(0, 64, 48))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # An existing output stays as it was until a new one is complete.
    out.write_bytes(b"old")
    wr = MediaWriter(str(out), 64, 48, Fraction(25))
    wr.write(picture(0, 64, 48))
    assert out.read_bytes() == b"old"
    assert len(os.listdir(tmp_path)) == 2  # the output and the hidden partial
    assert wr.close() == str(out)
    assert out.read_bytes() != b"old" and os.listdir(tmp_path) == ["o.mp4"]
    wr = MediaWriter(str(out), 64, 48, Fraction(25))
    wr.write(picture(0, 64, 48))
    wr.abort()
    assert os.listdir(tmp_path) == ["o.mp4"]


def _audio_duration(path):
    with av.open(path) as c:
        assert c.streams.audio, "no audio stream"
        a = c.streams.audio[0]
        n = sum(f.samples for f in c.decode(a))
        return n / a.codec_context.sample_rate


@pytest.mark.parametrize("ext,codec", [(".mp4", "h264"), (".mkv", "ffv1"), (".mov", "prores")])
def test_audio_copied_for_video_duration(tmp_path, ext, codec):
    src = make_clip(tmp_path / "src.mp4", n=25, audio=True)
    out = str(tmp_path / f"out{ext}")
    with MediaWriter(out, 64, 48, Fraction(25), codec=codec, audio_from=src, audio_start=0.2) as wr:
        for i in range(15):  # 0.6 s
            wr.write(picture(i, 64, 48))
    assert _audio_duration(out) == pytest.approx(0.6, abs=0.03)
    with MediaReader(out) as r:
        assert r.info.has_audio and r.info.frame_count == 15


def test_audio_from_d3(tmp_path):
    src = str(face_file("driving/d3.mp4"))
    out = str(tmp_path / "out.mp4")
    with MediaReader(src) as r, MediaWriter(out, r.info.width, r.info.height, r.info.fps,
                                            audio_from=src, audio_start=float(r.info.times[30])) as wr:
        for i, f in r.frames(start=30):
            if i >= 90:
                break
            wr.write(f)
    video = 60 / Fraction(30)
    assert _audio_duration(out) == pytest.approx(float(video), abs=0.03)
    with av.open(out) as c:
        v = c.streams.video[0]
        assert float(v.duration * v.time_base) == pytest.approx(float(video), abs=0.04)


def test_audio_is_in_sync(tmp_path):
    # Source audio: silence, then a tone from 0.5 s on. Cut from 0.3 s, the tone must start at 0.2 s.
    src = str(tmp_path / "src.mp4")
    with av.open(src, "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=44100, layout="mono")
        for i in range(25):
            f = av.VideoFrame.from_ndarray(picture(i, 64, 48), format="rgb24")
            f.pts = i
            for pk in v.encode(f):
                c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
        t = np.arange(44100) / 44100
        x = np.where(t >= 0.5, 0.5 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)[None]
        for k in range(0, 44100, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, k:k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 44100, k
            for pk in a.encode(af):
                c.mux(pk)
        for pk in a.encode():
            c.mux(pk)
    out = str(tmp_path / "out.mp4")
    with MediaWriter(out, 64, 48, Fraction(25), audio_from=src, audio_start=0.3) as wr:
        for i in range(15):
            wr.write(picture(i, 64, 48))
    with av.open(out) as c:
        a = c.streams.audio[0]
        y = np.concatenate([f.to_ndarray()[0] for f in c.decode(a)])
        onset = np.argmax(np.abs(y) > 0.05) / a.codec_context.sample_rate
    assert onset == pytest.approx(0.2, abs=0.01)


# h264 is left out: in a long-running process libx264 (even at threads=1) was seen to give slightly
# different bitstreams for the same frames; alone it is repeatable. The brief allows this.
@pytest.mark.parametrize("codec", ["ffv1", "prores", "png"])
def test_same_frames_same_bytes(tmp_path, codec):
    digests = []
    for k in range(2):
        out = tmp_path / f"run{k}{CODECS[codec][2]}"
        with MediaWriter(str(out), 64, 48, Fraction(25), codec=codec) as wr:
            for i in range(5):
                wr.write(picture(i, 64, 48))
        files = sorted(out.iterdir()) if out.is_dir() else [out]
        digests.append(hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest())
    assert digests[0] == digests[1]


def test_audio_source_without_audio_warns(tmp_path, clip):
    out = str(tmp_path / "o.mp4")
    with MediaWriter(out, 64, 48, Fraction(25), audio_from=clip) as wr:
        wr.write(picture(0, 64, 48))
    assert any("no audio" in w for w in wr.warnings)
    with av.open(out) as c:
        assert not c.streams.audio
