"""The on-disk track cache (reenact_fx/cache.py): real tracking, real files, real processes."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

import reenact_fx.pipeline.cache as cache_mod
from reenact_fx.pipeline.cache import TrackCache, default_root
from reenact_fx.media import MediaReader, MediaWriter
from reenact_fx.face.tracking import TRACKING, FaceTracker
from reenact_fx.face.track import LandmarkTrack


def assert_same_track(a: LandmarkTrack, b: LandmarkTrack, *, path: str | None = None) -> None:
    """Every field equal, bit for bit, with the dtypes the pipeline expects."""
    assert a.path == (b.path if path is None else path)
    assert a.size == b.size and all(type(v) is int for v in a.size)
    assert a.notes == b.notes
    for name, dtype in (("points", np.float32), ("valid", np.bool_), ("filled", np.bool_),
                        ("times", np.float64)):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


def track_cached(cache: TrackCache, path, settings) -> LandmarkTrack:
    """What Effect._track_all does for one medium: key -> load -> on a miss, track and store."""
    path = str(path)
    key = cache.key(path, settings)
    track = cache.load(key, path=path)
    if track is None:
        reader = MediaReader(path)
        try:
            with FaceTracker(settings) as tracker:
                track = tracker.track_media(reader)
        finally:
            reader.close()
        cache.store(key, track)
    return track


@pytest.fixture(scope="module")
def still_track(astronaut_png) -> LandmarkTrack:
    with FaceTracker() as tracker:
        return tracker.track_media(MediaReader(str(astronaut_png)))


@pytest.fixture(scope="module")
def moving_video(astronaut_png, tmp_path_factory) -> Path:
    """12 frames of the astronaut moving 3 px right and 2 px down per frame."""
    rgb = cv2.cvtColor(cv2.imread(str(astronaut_png)), cv2.COLOR_BGR2RGB)
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    with MediaWriter(str(path), rgb.shape[1], rgb.shape[0], Fraction(25), codec="h264") as w:
        for i in range(12):
            m = np.float32([[1, 0, 3 * i], [0, 1, 2 * i]])
            w.write(cv2.warpAffine(rgb, m, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REFLECT))
    return path


def some_track(base: LandmarkTrack, n: int = 40, *, shift: float = 0.0, note: str = "") -> LandmarkTrack:
    """A longer track built from a real one: every frame moves, a few are invalid or filled."""
    pts = np.repeat(base.points[:1], n, 0) + np.arange(n, dtype=np.float32)[:, None, None] * 0.25 + shift
    valid = np.ones(n, bool)
    valid[5:8] = False
    filled = np.zeros(n, bool)
    filled[10:12] = True
    return LandmarkTrack(path="/somewhere/clip.mp4", size=base.size, points=pts.astype(np.float32),
                         valid=valid, times=np.arange(n) / 29.97, filled=filled,
                         notes=[f"a note ({note})", "frames 5–7 (0.1s): no face; ünïcode"])


# ------------------------------------------------------------------ round trip and hits

def test_store_load_round_trips_every_field(tmp_path, still_track, moving_video):
    cache = TrackCache(tmp_path / "c")
    with FaceTracker() as tracker:
        video_track = tracker.track_media(MediaReader(str(moving_video)))
    assert video_track.valid.all() and len(video_track) == 12
    for i, track in enumerate((still_track, video_track, some_track(still_track))):
        key = f"{i:040x}"
        cache.store(key, track)
        assert_same_track(cache.load(key), track)
        assert_same_track(cache.load(key, path="/moved/here.mp4"), track, path="/moved/here.mp4")
    assert cache.notes == []
    assert cache.load("ab" * 20) is None, "an absent key is a miss"


def test_a_hit_tracks_nothing(tmp_path, moving_video, monkeypatch):
    calls = []
    real = FaceTracker.track_media

    def counted(self, reader, progress=None):
        calls.append(reader.info.path)
        return real(self, reader, progress)

    monkeypatch.setattr(FaceTracker, "track_media", counted)
    settings = TRACKING.resolve({"max_gap": 0.3})
    first = track_cached(TrackCache(tmp_path / "c"), moving_video, settings)
    assert len(calls) == 1 and first.valid.all()

    again = TrackCache(tmp_path / "c")                # a new process would start like this
    second = track_cached(again, moving_video, settings)
    assert calls == [str(moving_video)], "the second analysis tracked nothing"
    assert again.hits == 1 and again.hashed == 0, "the media hash came from the memo too"
    assert_same_track(second, first)

    # the same content elsewhere is still a hit, and the track says where it is now
    moved = tmp_path / "elsewhere" / "renamed.mp4"
    moved.parent.mkdir()
    shutil.copy(moving_video, moved)
    third = track_cached(again, moved, settings)
    assert len(calls) == 1 and again.hits == 2
    assert_same_track(third, first, path=str(moved))

    # a tracking setting changed: tracked again
    track_cached(again, moving_video, {"max_gap": 1.0})
    assert len(calls) == 2


# ------------------------------------------------------------------ keys

def test_key_follows_content_settings_and_tracker_version(tmp_path, astronaut_png, monkeypatch):
    cache = TrackCache(tmp_path / "c")
    media = tmp_path / "a.png"
    shutil.copy(astronaut_png, media)
    k = cache.key(media, {})
    assert len(k) == 40 and cache.key(media, {}) == k
    assert cache.key(media, TRACKING.resolve()) == k, "missing settings take their defaults"
    assert cache.key(media, {"max_gap": "0.5"}) == k, "settings are compared after coercion"

    copy = tmp_path / "sub" / "b.png"
    copy.parent.mkdir()
    shutil.copy2(media, copy)
    assert cache.key(copy, {}) == k, "a copy (same content) has the same key"
    assert cache.key(tmp_path / "sub" / ".." / "a.png", {}) == k

    for name, value in (("max_gap", 1.0), ("face_select", "left"), ("verify_human", False),
                        ("min_detection_confidence", 0.6)):
        assert cache.key(media, {name: value}) != k, name
    as_video = tmp_path / "a.mp4"
    shutil.copy(media, as_video)
    assert cache.key(as_video, {}) != k, "read as a video, not a still: another track"

    monkeypatch.setattr(cache_mod, "TRACKER_VERSION", cache_mod.TRACKER_VERSION + "-next")
    assert cache.key(media, {}) != k
    monkeypatch.undo()
    assert cache.key(media, {}) == k

    hashed = cache.hashed
    data = bytearray(media.read_bytes())
    data[len(data) // 2] ^= 0x01                         # one byte rewritten, same size
    media.write_bytes(bytes(data))
    k2 = cache.key(media, {})
    assert k2 != k and cache.hashed == hashed + 1, "a changed file is hashed again (memo not trusted)"
    assert cache.key(media, {}) == k2 and cache.hashed == hashed + 1, "an unchanged one is not"


def test_corrupt_hash_memo_is_ignored(tmp_path, astronaut_png):
    cache = TrackCache(tmp_path / "c")
    k = cache.key(astronaut_png, {})
    memo = tmp_path / "c" / f"v{cache_mod.FORMAT}" / "hashes.json"
    assert memo.is_file()
    for junk in (b"{\"trunc", b"[1, 2]", json.dumps({str(astronaut_png): "not a dict"}).encode(),
                 b"\xff\xfe\x00garbage"):
        memo.write_bytes(junk)
        fresh = TrackCache(tmp_path / "c")
        assert fresh.key(astronaut_png, {}) == k and fresh.hashed == 1 and fresh.notes == []
        assert json.loads(memo.read_bytes()), "rewritten in good order"


# ------------------------------------------------------------------ corruption

def _savez(file: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    file.write_bytes(buf.getvalue())


def _entry(file: Path) -> dict:
    with np.load(file, allow_pickle=False) as z:
        return {n: z[n] for n in z.files}


def _header(entry: dict) -> dict:
    return json.loads(entry["header"].tobytes())


def _corruptions(track: LandmarkTrack):
    """(what, function that damages an entry file) pairs."""
    def truncate(f):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])

    def garble_middle(f):
        data = bytearray(f.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 16] = os.urandom(16)
        f.write_bytes(bytes(data))

    def empty(f):
        f.write_bytes(b"")

    def not_npz(f):
        f.write_bytes(b"\x93NUMPY garbage" * 10)

    def wrong_shapes(f):
        e = _entry(f)
        e["points"] = e["points"][:, :100]
        _savez(f, **e)

    def wrong_shapes_consistent_checksum(f):   # a well-formed entry of the wrong shape is refused too
        e = _entry(f)
        e["points"] = e["points"][:, :100].copy()
        h = _header(e)
        h["checksum"] = cache_mod._checksum(h, e)
        e["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
        _savez(f, **e)

    def wrong_dtype(f):
        e = _entry(f)
        e["points"] = e["points"].astype(np.float64)
        _savez(f, **e)

    def missing_array(f):
        e = _entry(f)
        del e["filled"]
        _savez(f, **e)

    def points_changed(f):                     # a valid zip whose data no longer matches its checksum
        e = _entry(f)
        e["points"][3, 7, 1] += 1
        _savez(f, **e)

    def notes_changed(f):
        e = _entry(f)
        h = _header(e)
        h["notes"] = ["something else"]
        e["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
        _savez(f, **e)

    def header_not_json(f):
        e = _entry(f)
        e["header"] = np.frombuffer(b"{not json", np.uint8)
        _savez(f, **e)

    def pickled_header(f):                     # loading never unpickles
        e = _entry(f)
        e["header"] = np.array([{"evil": True}], dtype=object)
        buf = io.BytesIO()
        np.savez(buf, **e)
        f.write_bytes(buf.getvalue())

    return [(fn.__name__, fn) for fn in (truncate, garble_middle, empty, not_npz, wrong_shapes,
                                         wrong_shapes_consistent_checksum, wrong_dtype, missing_array,
                                         points_changed, notes_changed, header_not_json, pickled_header)]


def test_corrupt_entries_are_dropped_then_restored(tmp_path, still_track):
    cache = TrackCache(tmp_path / "c")
    track = some_track(still_track)
    key = "0123456789abcdef0123456789abcdef01234567"
    file = cache.entry_path(key)
    for what, damage in _corruptions(track):
        cache.store(key, track)
        assert file.is_file()
        damage(file)
        n = len(cache.notes)
        assert cache.load(key) is None, what
        assert not file.exists(), f"{what}: the corrupt entry is removed"
        assert len(cache.notes) == n + 1 and "corrupt" in cache.notes[-1] and key in cache.notes[-1], what
        cache.store(key, track)
        assert_same_track(cache.load(key), track)
    # an entry copied under another key (or renamed by hand) is not taken for that key
    other = "f" * 40
    shutil.copy(file, cache.entry_path(other))
    assert cache.load(other) is None and not cache.entry_path(other).exists()
    assert not list(file.parent.glob(".tmp-*")), "no temporary file left behind"


# ------------------------------------------------------------------ concurrency

ROUNDS = 25


def _hammer(root: str, key: str, tracks: list[LandmarkTrack], me: int, start) -> tuple[int, int, list]:
    """Store my variant and load, many times, while the other workers do the same on the same key."""
    cache = TrackCache(root)
    start.wait()
    seen, bad = 0, 0
    for _ in range(ROUNDS):
        cache.store(key, tracks[me])
        for _ in range(2):
            got = cache.load(key)
            if got is None:
                bad += 1
                continue
            match = [i for i, t in enumerate(tracks) if got.notes == t.notes]
            if len(match) != 1 or not (got.points.tobytes() == tracks[match[0]].points.tobytes()
                                       and np.array_equal(got.valid, tracks[match[0]].valid)
                                       and np.array_equal(got.filled, tracks[match[0]].filled)
                                       and got.times.tobytes() == tracks[match[0]].times.tobytes()):
                bad += 1
            seen += 1
    return seen, bad, cache.notes


def test_concurrent_writers_and_readers_never_see_a_torn_entry(tmp_path, still_track):
    key = "c0ffee" * 6 + "beef"
    tracks = [some_track(still_track, 150, shift=i, note=f"writer {i}") for i in range(4)]
    ctx = mp.get_context("spawn")       # the parent holds mediapipe threads: do not fork it
    with ctx.Manager() as manager:
        start = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            results = pool.starmap(_hammer, [(str(tmp_path / "c"), key, tracks, i, start)
                                             for i in range(4)])
    for seen, bad, notes in results:
        assert bad == 0 and seen == 2 * ROUNDS and notes == []
    final = TrackCache(tmp_path / "c").load(key)
    assert any(final.notes == t.notes for t in tracks)
    assert not list(TrackCache(tmp_path / "c").entry_path(key).parent.glob(".tmp-*"))


# ------------------------------------------------------------------ failing disks never fail a render

def test_unwritable_root_does_not_raise(tmp_path, still_track, astronaut_png):
    root = tmp_path / "ro"
    root.mkdir()
    os.chmod(root, 0o500)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        cache = TrackCache(root)
        key = cache.key(astronaut_png, {})           # the memo cannot be saved: fine, silently
        cache.store(key, still_track)
        assert cache.load(key) is None
        assert len(cache.notes) == 1 and "could not save" in cache.notes[0]
    finally:
        os.chmod(root, 0o700)


def test_root_that_is_a_file_does_not_raise(tmp_path, still_track, astronaut_png):
    root = tmp_path / "a-file"
    root.write_text("not a folder")
    cache = TrackCache(root)
    key = cache.key(astronaut_png, {})
    cache.store(key, still_track)
    assert any("could not save" in n for n in cache.notes)
    assert cache.load(key) is None
    assert root.read_text() == "not a folder"


def test_full_disk_leaves_no_temporary_file(tmp_path, still_track, monkeypatch):
    cache = TrackCache(tmp_path / "c")
    key = "12" * 20

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    cache.store(key, still_track)
    monkeypatch.undo()
    assert "No space left on device" in cache.notes[-1]
    folder = cache.entry_path(key).parent
    assert list(folder.iterdir()) == [], "neither an entry nor a temporary file"
    assert cache.load(key) is None


def test_least_recently_used_entries_are_evicted(tmp_path, still_track):
    track = some_track(still_track, 30)
    one = len(cache_mod._canonical({})) + track.points.nbytes      # about an entry's size
    cache = TrackCache(tmp_path / "c", max_bytes=int(2.5 * one))
    keys = [f"{i:040x}" for i in range(4)]
    for i, k in enumerate(keys[:2]):
        cache.store(k, track)
        os.utime(cache.entry_path(k), (1000 + i, 1000 + i))
    assert cache.load(keys[0]) is not None               # used: now the most recent
    cache.store(keys[2], track)
    assert [cache.entry_path(k).exists() for k in keys[:3]] == [True, False, True]


# ------------------------------------------------------------------ where the cache lives

def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REENACT_FX_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "mine"
    assert TrackCache().root == tmp_path / "mine"
    monkeypatch.delenv("REENACT_FX_CACHE")
    assert default_root() == tmp_path / "xdg" / "reenact-fx"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")    # the XDG spec: ignore a relative one
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "reenact-fx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_root() == tmp_path / "home" / ".cache" / "reenact-fx"


def test_effect_second_analysis_with_other_look_settings_does_no_tracking(faces, tmp_path,
                                                                           monkeypatch):
    """Changing generator, mixer or smoothing settings re-uses the tracks; --no-cache and a
    tracking setting do not."""
    from reenact_fx.pipeline.effect import Effect
    from reenact_fx.face.tracking import FaceTracker

    calls = []
    real = FaceTracker.track_media

    def counting(self, reader, progress=None):
        calls.append(reader.path)
        return real(self, reader, progress)

    monkeypatch.setattr(FaceTracker, "track_media", counting)
    target, driver = faces / "source/s9.jpg", faces / "driving/d0.mp4"
    root = tmp_path / "cache"
    with Effect(cache=root) as fx:
        first = fx.analyze(target, driver)
    assert len(calls) == 2
    looks = [dict(smoother="savgol"), dict(params={"meshwarp": {"mouth_fill": "synthetic"},
                                                   "feather": {"feather": 0.1}})]
    for look in looks:
        with Effect(cache=root, **look) as fx:
            again = fx.analyze(target, driver)
        assert len(calls) == 2, "a cache hit does no tracking"
        np.testing.assert_array_equal(again.driver_track.points, first.driver_track.points)
    with Effect(cache=False) as fx:
        fx.analyze(target, driver)
    assert len(calls) == 4
    with Effect(cache=root, params={"tracking": {"max_gap": 1.0}}) as fx:
        fx.analyze(target, driver)
    assert len(calls) == 6
