"""reenact-fx batch: real OTIO timelines (built here) over real clips, rendered headless.

The targets are short clips of the shared faces with their frame number stamped along the top edge
(tests/batch_media.py), so each rendered frame tells which target frame the timeline mapping picked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

otio = pytest.importorskip("opentimelineio")

from batch_media import read_code, stamped_clip, timeline  # noqa: E402
from conftest import read_video  # noqa: E402
from reenact_fx.batch import BatchError  # noqa: E402
from reenact_fx.batch.schema import Where, validate  # noqa: E402
from reenact_fx.cli import main  # noqa: E402

shared = pytest.mark.shared


# -------------------------------------------------------------------------- schema (no media)
WHERE = Where("/tmp/show.otio", "V1", 0, "shot 3", 2)


@pytest.mark.parametrize("data, key, words", [
    ({"version": 1, "drivr": "a.mp4"}, "reenact_fx.drivr", "did you mean 'driver'"),
    ({"version": 2, "driver": "a.mp4"}, "reenact_fx.version", "newer"),
    ({"driver": "a.mp4"}, "reenact_fx.version", "expected version 1"),
    ({"version": 1, "driver": "a.mp4", "driver_in": -1}, "reenact_fx.driver_in", ">= 0"),
    ({"version": 1, "driver": "a.mp4", "set": {"delta.expresion": 1}},
     "reenact_fx.set.delta.expresion", "expresion"),
    ({"version": 1, "driver": "a.mp4", "set": {"nodot": 1}}, "reenact_fx.set.nodot",
     "component.param"),
    ({"version": 1, "driver": "a.mp4", "preset": "no-such-look"}, "reenact_fx.preset",
     "no preset named"),
    ({"version": 1}, "reenact_fx.driver", "a driver is needed"),
])
def test_schema_errors_name_timeline_track_clip_and_key(data, key, words):
    with pytest.raises(BatchError) as e:
        validate(data, WHERE)
    msg = str(e.value)
    assert e.value.key == key and words in msg
    assert "/tmp/show.otio" in msg and "track 'V1'" in msg and "clip 'shot 3'" in msg


def test_schema_resolves_paths_relative_to_the_timeline():
    fx = validate({"version": 1, "driver": "takes/a.mp4", "driver_in": 1.5,
                   "set": {"delta.expression": 1.3}}, WHERE)
    assert fx.driver == "/tmp/takes/a.mp4" and fx.driver_in == 1.5
    assert fx.settings().params["delta"]["expression"] == 1.3


# -------------------------------------------------------------------------- media
@pytest.fixture(scope="module")
def media(faces, tmp_path_factory):
    d = tmp_path_factory.mktemp("batch-media")
    return {"a": stamped_clip(faces / "driving" / "d0.mp4", d / "take-a.mp4", 40, 25),
            "b": stamped_clip(faces / "driving" / "d3.mp4", d / "take-b.mp4", 40, 30),
            "driver": stamped_clip(faces / "driving" / "d12.mp4", d / "voice.mp4", 40, 30),
            "dir": d}


def _write(tl, path: Path) -> Path:
    otio.adapters.write_to_file(tl, str(path))
    return path


def _codes(path) -> list[int]:
    return [read_code(f) for f in read_video(path)]


def _expected(start: float, n: int, media_fps: float, speed: float = 1.0, rate: float = 30
              ) -> list:
    """The target frame each output frame must show, the clip starting ``start`` frames (at
    ``media_fps``) into its media: mapped by time (the last frame at or before t, with the tenth
    of a frame's slack LandmarkTrack.index_at allows for rounded container timestamps)."""
    return [int(np.floor((start / media_fps + k / rate * speed) * media_fps + 0.1))
            for k in range(n)]


def _batch(*args) -> int:
    return main(["batch", *map(str, args), "--quiet"])


def _clips(tl) -> dict:
    return {(t.name, c.name): c for t in tl.tracks for c in t.find_clips()}


def _local_path(url: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(url).path) if url.startswith("file:") else url


# -------------------------------------------------------------------------- the done-when run
@shared
def test_two_track_timeline_renders_and_relinks(media, tmp_path):
    """Three reenact-fx clips (two trimmed on V1, one retimed; one on V2) on a 30 fps timeline of
    25 and 30 fps media: every relinked clip points at a complete file as long as the clip, whose
    frames are the target frames the trims, the rate change and the time warp map to."""
    src = _write(timeline(tmp_path, media["a"], media["b"], media["driver"]), tmp_path / "show.otio")
    before = otio.adapters.read_from_file(str(src))
    assert _batch(src, "--out", tmp_path / "out", "--workers", 2) == 0

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    assert all(j["seconds"] > 0 and j["tasks"] for j in report["jobs"])
    tl = otio.adapters.read_from_file(str(tmp_path / "out" / "show.relinked.otio"))
    clips, old = _clips(tl), _clips(before)
    expect = {("V1", "a-trim"): _expected(4, 12, 25), ("V1", "b-warp"): _expected(2, 10, 25, 0.5),
              ("V2", "c"): _expected(3, 6, 30, rate=30)}
    for key, codes in expect.items():
        clip = clips[key]
        path = _local_path(clip.media_reference.target_url)
        assert Path(path).parent == tmp_path / "out" / "media" and os.path.isfile(path)
        assert _codes(path) == codes, key
        # duration: the file's and the relinked clip's equal the original clip's record duration
        from reenact_fx.media import MediaReader

        with MediaReader(path) as r:
            assert r.info.frame_count == len(codes) and r.info.fps == 30
        assert clip.source_range.duration.to_seconds() == pytest.approx(
            old[key].source_range.duration.to_seconds(), abs=0.5 / 30)
        assert clip.media_reference.available_range.duration.value == len(codes)
        assert not any(e.effect_name in ("reenact_fx", "LinearTimeWarp") for e in clip.effects)
        assert clip.metadata["reenact_fx"]["rendered_from"]["target_url"] == \
            old[key].media_reference.target_url
        # placement on the timeline is unchanged
        assert clip.range_in_parent().start_time.to_seconds() == pytest.approx(
            old[key].range_in_parent().start_time.to_seconds())
    # the untouched clip and the audio track stay exactly as they were
    for key in (("V1", "plain"), ("A1", "voice")):
        assert otio.adapters.write_to_string(clips[key]) == \
            otio.adapters.write_to_string(old[key])

    # the rendered face follows the driver: the mouth region differs from the target's frame
    rendered = read_video(_local_path(clips[("V1", "a-trim")].media_reference.target_url))
    target = read_video(media["a"])
    moved = [np.abs(rendered[k][150:230, 80:180].astype(int) - target[c][150:230, 80:180]).mean()
             for k, c in enumerate(expect[("V1", "a-trim")])]
    assert max(moved) > 3.0
    # and pixels far from the face are the target's (the stamp strip is intact, checked above)

    # a second run finds everything done and renders nothing
    assert _batch(src, "--out", tmp_path / "out") == 0
    again = json.loads((tmp_path / "out" / "report.json").read_text())
    assert again["counts"] == {"done": 0, "skipped": 3, "failed": 0}


@shared
def test_annotate_adds_an_effect_and_handles_render_around_the_clip(media, tmp_path):
    tl = timeline(tmp_path, media["a"], media["b"], media["driver"])
    for t in tl.tracks:          # start from a timeline without any reenact-fx effect
        for c in t.find_clips():
            c.effects[:] = [e for e in c.effects if e.effect_name != "reenact_fx"]
    src = _write(tl, tmp_path / "plain.otio")
    out = tmp_path / "annotated.otio"
    assert main(["batch", "annotate", str(src), "--clip", "V1/a-trim", "--driver",
                 str(media["driver"]), "--driver-in", "0.5", "--set", "delta.expression=1.2",
                 "-o", str(out)]) == 0
    back = otio.adapters.read_from_file(str(out))
    fx = [e for e in _clips(back)[("V1", "a-trim")].effects if e.effect_name == "reenact_fx"]
    assert len(fx) == 1
    md = fx[0].metadata["reenact_fx"]
    assert md["version"] == 1 and md["driver_in"] == 0.5 and md["set"]["delta.expression"] == "1.2"
    assert not os.path.isabs(md["driver"])        # relative to the annotated timeline
    # a clip name that is not there: a clear error listing the clips
    assert main(["batch", "annotate", str(src), "--clip", "nope", "--driver",
                 str(media["driver"]), "-o", str(tmp_path / "x.otio")]) == 2

    assert _batch(out, "--out", tmp_path / "out", "--handles", 3) == 0
    clip = _clips(otio.adapters.read_from_file(str(tmp_path / "out" / "annotated.relinked.otio")))[
        ("V1", "a-trim")]
    assert clip.source_range.start_time.value == 3 and clip.source_range.duration.value == 12
    path = _local_path(clip.media_reference.target_url)
    codes = _codes(path)
    assert len(codes) == 18 and codes[3:15] == _expected(4, 12, 25)
    assert codes[:3] == [1, 2, 3]     # the handles show the media before the clip's in point


@shared
@pytest.mark.parametrize("fmt", ["xml", "edl"])
def test_fcp_xml_and_edl_round_trip(media, tmp_path, fmt):
    """A timeline exported as FCP 7 XML (two video tracks) or CMX 3600 EDL (one): annotated
    (the effect lives in the .otio, which remembers the format), batched, relinked back into the
    same format, read back by OTIO with the clips pointing at complete rendered files."""
    tl = timeline(tmp_path, media["a"], media["b"], media["driver"], warp=None)
    for t in tl.tracks:
        for c in t.find_clips():
            c.effects[:] = []
    rate = []
    if fmt == "edl":     # an EDL holds one video track, at one rate (timecodes of 30 fps frames)
        tl.tracks[:] = [tl.tracks[0]]
        for c in tl.find_clips():
            r = c.source_range
            c.source_range = otio.opentime.TimeRange(
                otio.opentime.RationalTime(round(r.start_time.to_seconds() * 30), 30),
                otio.opentime.RationalTime(round(r.duration.to_seconds() * 30), 30))
        rate = ["--rate", "30"]
        otio.adapters.write_to_file(tl, str(tmp_path / "cut.edl"), rate=30)
        src = tmp_path / "cut.edl"
    else:
        src = _write(tl, tmp_path / f"cut.{fmt}")
    # the effect cannot live in these formats: annotate says so and writes .otio instead
    assert main(["batch", "annotate", str(src), "--clip", "a-trim", "--driver",
                 str(media["driver"]), "-o", str(tmp_path / f"bad.{fmt}"), *rate]) == 2
    ann = tmp_path / "cut.otio"
    assert main(["batch", "annotate", str(src), "--clip", "a-trim", "--driver",
                 str(media["driver"]), "-o", str(ann), *rate]) == 0
    assert main(["batch", "annotate", str(ann), "--clip", "b-warp", "--driver",
                 str(media["driver"]), "-o", str(ann)]) == 0
    assert _batch(ann, "--out", tmp_path / "out", *rate) == 0
    relinked = tmp_path / "out" / f"cut.relinked.{fmt}"
    assert relinked.is_file() and (tmp_path / "out" / "cut.relinked.otio").is_file()
    read_args = {"rate": 30} if fmt == "edl" else {}
    back = otio.adapters.read_from_file(str(relinked), **read_args)
    clips = {c.name: c for c in back.find_clips()}
    orig = {c.name: c for c in otio.adapters.read_from_file(str(src), **read_args).find_clips()}
    for name in ("a-trim", "b-warp"):
        c, o = clips[name], orig[name]
        path = _local_path(c.media_reference.target_url)
        assert Path(path).parent == tmp_path / "out" / "media"
        n = round(o.source_range.duration.to_seconds() * 30)
        avail = o.media_reference.available_range
        start = o.source_range.start_time.to_seconds() - (
            avail.start_time.to_seconds() if avail else 0.0)
        assert _codes(path) == _expected(start * 25, n, 25)
        assert round(c.source_range.duration.to_seconds() * 30) == n
    assert _local_path(clips["plain"].media_reference.target_url) == \
        _local_path(orig["plain"].media_reference.target_url)


# -------------------------------------------------------------------------- failures, resume
@shared
def test_a_failing_clip_does_not_stop_the_others(media, tmp_path, faces):
    tl = timeline(tmp_path, media["a"], media["b"], media["driver"], warp=None)
    clips = _clips(tl)
    # no face: a still of a monkey is refused as non-human; missing media: a path that is not there
    clips[("V1", "b-warp")].media_reference.target_url = str(tmp_path / "gone.mp4")
    blank = tmp_path / "blank.png"
    import cv2

    cv2.imwrite(str(blank), np.full((256, 256, 3), 90, np.uint8))
    clips[("V2", "c")].media_reference = otio.schema.ExternalReference(target_url=str(blank))
    src = _write(tl, tmp_path / "broken.otio")
    r = subprocess.run([sys.executable, "-m", "reenact_fx.cli", "batch", str(src), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert "FAILED 00-V1-002-b-warp" in r.stderr and "gone.mp4" in r.stderr
    assert "FAILED 01-V2-000-c" in r.stderr and "face" in r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"] == {"done": 1, "skipped": 0, "failed": 2}
    assert sorted(report["failed"]) == ["00-V1-002-b-warp", "01-V2-000-c"]
    back = _clips(otio.adapters.read_from_file(str(tmp_path / "out" / "broken.relinked.otio")))
    assert "/out/media/" in back[("V1", "a-trim")].media_reference.target_url
    # the failed clips keep their media and their effect, so a rerun retries exactly them
    assert back[("V1", "b-warp")].media_reference.target_url == str(tmp_path / "gone.mp4")
    assert any(e.effect_name == "reenact_fx" for e in back[("V2", "c")].effects)


def _kill_group(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


@shared
def test_sigkill_mid_batch_then_rerun_resumes(media, tmp_path):
    """A real SIGKILL of the batch (driver and workers) while the second clip renders: no final
    name holds a partial file; the same command then skips the finished clip and redoes the rest."""
    tl = timeline(tmp_path, media["a"], media["b"], media["driver"], long=30)
    src = _write(tl, tmp_path / "night.otio")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "reenact_fx.cli", "batch", str(src), "--out", str(out),
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    journal = out / "journal.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            events = [json.loads(x) for x in journal.read_text().splitlines()] \
                if journal.exists() else []
            if any(e["event"] == "done" for e in events):
                break
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no job finished in time")
    finally:
        _kill_group(proc)
    done_first = {e["job"] for e in events if e["event"] == "done"}
    assert 1 <= len(done_first) < 3
    media_dir = out / "media"
    from reenact_fx.media import MediaReader

    for f in media_dir.iterdir():      # every visible file is complete
        if not f.name.startswith("."):
            assert f.stem in done_first
            with MediaReader(str(f)) as r:
                assert r.info.frame_count > 0
    assert not (out / "report.json").exists()

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    status = {j["id"]: j["status"] for j in report["jobs"]}
    assert {k for k, v in status.items() if v == "skipped"} == done_first
    assert sum(v == "done" for v in status.values()) == 3 - len(done_first)
    assert not [f for f in media_dir.iterdir() if f.name.startswith(".")]   # partials cleaned
    back = _clips(otio.adapters.read_from_file(str(out / "night.relinked.otio")))
    for key, n in ((("V1", "a-trim"), 12), (("V1", "b-warp"), 10), (("V2", "c"), 36)):
        with MediaReader(_local_path(back[key].media_reference.target_url)) as mr:
            assert mr.info.frame_count == n


@shared
def test_sigkill_between_chunks_reuses_the_finished_chunks(media, tmp_path):
    tl = timeline(tmp_path, media["a"], media["b"], media["driver"], long=30)
    src = _write(tl, tmp_path / "chunks.otio")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "reenact_fx.cli", "batch", str(src), "--out", str(out),
           "--workers", "1", "--chunk-frames", "6", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    journal, deadline = out / "journal.jsonl", time.time() + 300
    try:
        while time.time() < deadline:
            events = [json.loads(x) for x in journal.read_text().splitlines()] \
                if journal.exists() else []
            if sum(e["event"] == "chunk" and e["job"] == "01-V2-000-c" for e in events) >= 2:
                break
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        _kill_group(proc)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    c = next(j for j in report["jobs"] if j["id"] == "01-V2-000-c")
    chunks = [t["chunk"] for t in c["tasks"] if t["task"] == "chunk"]
    assert c["status"] == "done" and 0 < len(chunks) <= 4      # 6 chunks, 2+ reused
    assert [0, 6] not in chunks and [6, 12] not in chunks
    path = next(j["output"] for j in report["jobs"] if j["id"] == "01-V2-000-c")
    assert _codes(path) == _expected(3, 36, 30)
    assert not (out / ".chunks" / "01-V2-000-c").exists()       # cleaned after the join


# -------------------------------------------------------------------------- Ray
@shared
def test_ray_two_workers_chunked_equals_local(media, tmp_path):
    pytest.importorskip("ray")
    tl = timeline(tmp_path, media["a"], media["b"], media["driver"], long=6)
    src = _write(tl, tmp_path / "farm.otio")
    assert _batch(src, "--out", tmp_path / "local", "--workers", 1) == 0
    assert _batch(src, "--out", tmp_path / "ray", "--executor", "ray", "--workers", 2,
                  "--chunk-frames", 5) == 0
    ray_report = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert ray_report["counts"]["done"] == 3
    for job in ray_report["jobs"]:
        kinds = [t["task"] for t in job["tasks"] if t["task"] != "track"]
        assert kinds[0] == "analyze" and kinds[-1] == "join" and kinds.count("chunk") >= 2
    assert len({t["pid"] for j in ray_report["jobs"] for t in j["tasks"]}) >= 2
    for name in sorted(os.listdir(tmp_path / "local" / "media")):
        a = read_video(tmp_path / "local" / "media" / name)
        b = read_video(tmp_path / "ray" / "media" / name)
        assert len(a) == len(b) > 0
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), name


def test_rate_option_parses_fractions():
    from reenact_fx.batch.cli import _rate

    assert _rate("30000/1001") == Fraction(30000, 1001) and _rate("25") == 25
    with pytest.raises(BatchError):
        _rate("fast")


def test_journal_survives_a_torn_last_line_and_follows_keys(tmp_path):
    from reenact_fx.batch.jobs import Journal

    j = Journal(str(tmp_path))
    j.write("run")
    j.write("start", job="a", key="k1")
    j.write("done", job="a", key="k1", output="x")
    j.write("start", job="b", key="k2")
    j.write("chunk", job="b", key="k2", chunk=[0, 5])
    j.close()
    with open(tmp_path / "journal.jsonl", "a") as f:
        f.write('{"event": "done", "job": "b", "ke')      # killed mid-write
    again = Journal(str(tmp_path))
    assert set(again.done) == {"a"} and again.done["a"]["key"] == "k1"
    assert again.chunks == {"k2": {(0, 5)}} and again.runs == 1
    again.write("done", job="b", key="k2", output="y")
    again.close()
    assert set(Journal(str(tmp_path)).done) == {"a", "b"}
