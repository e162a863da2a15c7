"""On-disk cache of face tracks, so that a render that changes only what comes after tracking
(converter, generator, smoother, mixer, effect settings) tracks nothing again.

An entry is keyed by what decides a track: the media file's *content* (blake2b of every byte), the
tracking code and the libraries that decode and track (``TRACKER_VERSION``), whether the file is read
as a still or a video (its extension decides that), and every tracking setting.  The file's name is
not in the key: a moved or copied file is still a hit, and ``load(key, path=...)`` gives the track the
path it was opened under this time.

Usage (what ``Effect._track_all`` does for each medium)::

    cache = TrackCache()                                  # $REENACT_FX_CACHE, or the user cache folder
    key = cache.key(path, settings["tracking"])
    track = cache.load(key, path=path)
    if track is None:
        track = tracker.track_media(reader)
        cache.store(key, track)

Layout of the cache folder (``default_root()``)::

    v1/tracks/<key>.npz     one track: arrays + a JSON header, and a checksum over both
    v1/hashes.json          memo (realpath, size, mtime, ctime, inode) -> content hash

Safety: an entry is written to a temporary file in the same folder, fsynced and renamed into place
(``os.replace``), so readers see the old entry, the new one, or none, never half of one, even with
several processes writing the same key.  Entries are read with ``np.load(allow_pickle=False)`` and
``json`` only, checked (checksum, key, dtypes, shapes), and one that fails any check is deleted and
reported as a miss.  The cache never fails a render: any OSError (read-only or full disk, a file
where the folder should be) becomes a line in ``TrackCache.notes`` and the render goes on uncached.
Old entries are evicted (least recently used first) when the cache grows past ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..media import IMAGE_EXTS
from ..face.tracking import TRACKING
from ..face.track import N_LANDMARKS, LandmarkTrack

# Bump TRACKER_REVISION whenever tracking.py (or media/reader.py's decoding) changes the tracks it produces:
# every cached track made by the old code then misses.
TRACKER_REVISION = 1
FORMAT = 1                 # layout of an entry; a change moves the cache to a new v<FORMAT> folder
CHUNK = 1 << 20            # bytes read at a time when hashing media
MEMO_MAX = 2000            # content hashes remembered
DEFAULT_MAX_BYTES = 2 << 30
_STALE_TMP_S = 3600        # temporary files older than this are leftovers of a crashed writer


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def _tracker_version() -> str:
    """Everything outside the media and the settings that decides a track: the face models
    (mediapipe), the decoder (PyAV and its FFmpeg) and the crop resampling (OpenCV)."""
    import av
    import cv2

    ffmpeg = ".".join(map(str, av.library_versions.get("libavcodec", ()))) or "?"
    return (f"mediapipe-{_dist_version('mediapipe')}/av-{av.__version__}-avcodec-{ffmpeg}"
            f"/opencv-{cv2.__version__}/reenact-{TRACKER_REVISION}")


TRACKER_VERSION: str = _tracker_version()


def default_root() -> Path:
    """$REENACT_FX_CACHE, else $XDG_CACHE_HOME/reenact-fx, else ~/.cache/reenact-fx."""
    explicit = os.environ.get("REENACT_FX_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):   # the XDG spec says a relative value is to be ignored
        return Path(xdg) / "reenact-fx"
    return Path.home() / ".cache" / "reenact-fx"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


_ARRAYS = {"points": np.float32, "valid": np.bool_, "filled": np.bool_, "times": np.float64}


def _checksum(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """blake2b of the header (without its checksum) and of every array's dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=32)
    h.update(_canonical({k: v for k, v in header.items() if k != "checksum"}))
    for name in sorted(_ARRAYS):
        a = arrays[name]
        h.update(_canonical([name, a.dtype.str, list(a.shape)]))
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class _Corrupt(Exception):
    pass


class TrackCache:
    """Face tracks on disk, keyed by media content + tracker version + tracking settings.

    ``root``: the cache folder (default: ``default_root()``); created on the first store.
    ``max_bytes``: total size of the entries above which the least recently used are deleted.
    ``notes``: what went wrong (a corrupt entry dropped, a store that failed), for the user.
    ``hits``, ``misses``, ``hashed``: counters (``hashed``: files whose bytes were read by key()).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root) if root is not None else default_root()
        self.max_bytes = int(max_bytes)
        self.notes: list[str] = []
        self.hits = self.misses = self.hashed = 0
        self._dir = self.root / f"v{FORMAT}"
        self._tracks = self._dir / "tracks"
        self._memo_path = self._dir / "hashes.json"
        self._lock = threading.Lock()   # the memo is read-modify-written; Effect tracks in 2 threads

    def __repr__(self) -> str:
        return f"TrackCache({str(self.root)!r})"

    # ------------------------------------------------------------------ keys
    def key(self, path: str | os.PathLike, settings: Mapping[str, Any]) -> str:
        """The entry name for tracking ``path`` with ``settings`` (the tracking settings; missing ones
        take their defaults, so ``{}`` and the defaults give one key).

        Raises OSError if the media file cannot be read (the reader would have refused it already)
        and ParamError for a setting TRACKING does not know.
        """
        resolved = dict(TRACKING.resolve(settings))
        still = os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTS
        ident = {"format": FORMAT, "tracker": TRACKER_VERSION, "content": self.content_hash(path),
                 "still": still, "settings": resolved}
        return hashlib.blake2b(_canonical(ident), digest_size=20).hexdigest()

    def content_hash(self, path: str | os.PathLike) -> str:
        """blake2b of the file's bytes; remembered by (realpath, size, mtime, ctime, inode) so an
        unchanged file is read only once (the memo is a hint: unreadable or corrupt, it is ignored)."""
        real = os.path.realpath(os.fspath(path))
        before = os.stat(real)
        sig = self._signature(before)
        with self._lock:
            memo = self._read_memo()
            known = memo.get(real)
            if isinstance(known, dict) and known.get("sig") == sig and isinstance(known.get("hash"), str):
                return known["hash"]
        h = hashlib.blake2b(digest_size=32)
        with open(real, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        self.hashed += 1
        if self._signature(os.stat(real)) == sig:   # not written to while we read it
            with self._lock:
                memo = self._read_memo()
                memo.pop(real, None)
                memo[real] = {"sig": sig, "hash": digest}
                while len(memo) > MEMO_MAX:          # oldest first (dicts keep insertion order)
                    memo.pop(next(iter(memo)))
                self._write_json(self._memo_path, memo, what="the media hash memo")
        return digest

    @staticmethod
    def _signature(st: os.stat_result) -> list[int]:
        # ctime and inode too: cp -p / rsync -t restore mtime, a replaced file has a new inode
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def _read_memo(self) -> dict:
        try:
            with open(self._memo_path, "rb") as f:
                memo = json.loads(f.read())
            return memo if isinstance(memo, dict) else {}
        except (OSError, ValueError):
            return {}

    # ------------------------------------------------------------------ entries
    def entry_path(self, key: str) -> Path:
        if not (isinstance(key, str) and key and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"not a cache key: {key!r}")
        return self._tracks / f"{key}.npz"

    def load(self, key: str, path: str | os.PathLike | None = None) -> LandmarkTrack | None:
        """The track stored under ``key``, or None (absent, or corrupt: then it is deleted and noted).

        ``path``: the path to give the returned track (the file may have moved since it was tracked;
        default: the path it had when stored).  Never raises for a bad or unreadable entry.
        """
        file = self.entry_path(key)
        try:
            with open(file, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as e:
            self.misses += 1
            self.notes.append(f"track cache: cannot read {file} ({e.strerror or e}); tracking again")
            return None
        try:
            track = self._decode(key, data)
        except _Corrupt as e:
            self.misses += 1
            self._drop(file, st, f"{e}")
            return None
        self.hits += 1
        try:
            os.utime(file)      # recently used: evicted last
        except OSError:
            pass
        if path is not None:
            track.path = os.fspath(path)
        return track

    def _decode(self, key: str, data: bytes) -> LandmarkTrack:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                names = set(z.files)
                if names != set(_ARRAYS) | {"header"}:
                    raise _Corrupt(f"unexpected arrays {sorted(names)}")
                arrays = {n: z[n] for n in _ARRAYS}
                raw = z["header"]
        except _Corrupt:
            raise
        except Exception as e:   # zipfile, zlib, numpy's format checks, EOF...: all mean a bad file
            raise _Corrupt(f"unreadable ({type(e).__name__}: {e})") from None
        try:
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise _Corrupt("bad header array")
            header = json.loads(raw.tobytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise _Corrupt("header is not JSON") from None
        if not isinstance(header, dict):
            raise _Corrupt("header is not an object")
        for name, dtype in _ARRAYS.items():
            if arrays[name].dtype != np.dtype(dtype):
                raise _Corrupt(f"{name} has dtype {arrays[name].dtype}, expected {np.dtype(dtype)}")
        n = len(arrays["times"]) if arrays["times"].ndim == 1 else -1
        shapes = {"points": (n, N_LANDMARKS, 3), "valid": (n,), "filled": (n,), "times": (n,)}
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise _Corrupt(f"{name} has shape {arrays[name].shape}, expected {shape}")
        if header.get("checksum") != _checksum(header, arrays):
            raise _Corrupt("checksum mismatch")
        size, notes, path = header.get("size"), header.get("notes"), header.get("path")
        if (header.get("format") != FORMAT or header.get("key") != key or not isinstance(path, str)
                or not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size))
                or not (isinstance(notes, list) and all(isinstance(s, str) for s in notes))):
            raise _Corrupt("header fields are wrong")
        return LandmarkTrack(path=path, size=(size[0], size[1]), points=arrays["points"],
                             valid=arrays["valid"], times=arrays["times"], filled=arrays["filled"],
                             notes=list(notes))

    def _drop(self, file: Path, st: os.stat_result, why: str) -> None:
        """Delete a corrupt entry, unless another process has meanwhile replaced it with a new one."""
        try:
            now = os.stat(file)
            if (now.st_ino, now.st_mtime_ns, now.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size):
                os.remove(file)
            self.notes.append(f"track cache: corrupt entry {file.name} removed ({why}); tracking again")
        except FileNotFoundError:
            self.notes.append(f"track cache: corrupt entry {file.name} ignored ({why}); tracking again")
        except OSError as e:
            self.notes.append(f"track cache: corrupt entry {file} ({why}) could not be removed "
                              f"({e.strerror or e}); tracking again")

    def store(self, key: str, track: LandmarkTrack) -> None:
        """Save ``track`` under ``key`` (atomically). A failure is noted, never raised."""
        file = self.entry_path(key)
        n = len(track.times)
        filled = track.filled if track.filled is not None else np.zeros(n, bool)
        arrays = {"points": np.ascontiguousarray(track.points, np.float32),
                  "valid": np.ascontiguousarray(track.valid, np.bool_),
                  "filled": np.ascontiguousarray(filled, np.bool_),
                  "times": np.ascontiguousarray(track.times, np.float64)}
        header = {"format": FORMAT, "key": key, "tracker": TRACKER_VERSION, "path": os.fspath(track.path),
                  "size": [int(track.size[0]), int(track.size[1])], "notes": [str(s) for s in track.notes]}
        header["checksum"] = _checksum(header, arrays)
        buf = io.BytesIO()
        np.savez(buf, header=np.frombuffer(_canonical(header), np.uint8), **arrays)
        if self._write_bytes(file, buf.getvalue(), what=f"the track of {track.path}"):
            self._evict(keep=file)

    # ------------------------------------------------------------------ files
    def _write_bytes(self, file: Path, data: bytes, *, what: str, quiet: bool = False) -> bool:
        tmp = None
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=file.suffix)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, file)
            return True
        except OSError as e:
            if not quiet:
                self.notes.append(f"track cache: could not save {what} in {self.root} "
                                  f"({e.strerror or e}); the next render will track again")
            if tmp is not None:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
            return False

    def _write_json(self, file: Path, obj: Any, *, what: str) -> bool:
        return self._write_bytes(file, _canonical(obj), what=what, quiet=True)  # a hint only

    def _evict(self, keep: Path) -> None:
        """Delete stale temporary files, then least recently used entries beyond max_bytes."""
        try:
            entries = []
            now = time.time()
            for e in os.scandir(self._tracks):
                st = e.stat(follow_symlinks=False)
                if e.name.startswith(".tmp-"):
                    if now - st.st_mtime > _STALE_TMP_S:
                        os.remove(e.path)
                elif e.name.endswith(".npz"):
                    entries.append((st.st_mtime, st.st_size, e.path))
            total = sum(s for _, s, _ in entries)
            for _, s, p in sorted(entries):
                if total <= self.max_bytes:
                    break
                if p != str(keep):
                    os.remove(p)
                    total -= s
        except OSError:
            pass   # another process evicting at the same time, or a read-only folder: harmless
