"""Image datasets for the learned generators, and self-reenactment pairs drawn from them.

``build_images`` tracks every clip/still (through :meth:`Effect.track`, so the analysis cache
applies), keeps up to ``max_frames`` really tracked frames per clip (evenly spaced), cuts each
frame's canonical face crop (:mod:`.facecrops`) at ``size`` pixels and stores, per frame: the crop,
its landmarks in crop pixels, the face / hair / background pseudo-labels (:mod:`.labels`), the
crop's alignment and identity / clip / frame labels.  Stored as one ``.npz`` (no pickle; metadata as
a JSON string).  Held out (``val``): the last ``val_fraction`` of each clip's frames, so that a
person-specific fine-tune on one target video is validated on later frames of that video (the
self-reenactment setting the seeds evaluate); stills are all training frames.

:func:`cached_images` reuses a built dataset while its inputs (paths, sizes, modification times)
and build settings are unchanged.

:class:`ImagePairs` draws self-reenactment pairs: two frames of one clip, the reference and the
ground truth, both in the *reference's* crop (the frame a generator sees at render time: the target
image's crop, the driving landmarks drawn into it), with a mask of the ground truth's pixels that
really came from its frame.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..errors import FaceError, MediaError, ReenactError
from . import facecrops, npzfile
from .dataset import _identity_names, _media_files
from .labels import PersonSegmenter, pseudo_labels

VERSION = 1
ARRAYS = {"crops": np.uint8, "points": np.float32, "labels": np.uint8, "affine": np.float64,
          "identity": np.int32, "clip": np.int32, "frame": np.int32, "val": bool}


@dataclass
class ImageDataset:
    crops: np.ndarray        # (N, S, S, 3) uint8 canonical face crops
    points: np.ndarray       # (N, 478, 3) float32 landmarks in crop pixels
    labels: np.ndarray       # (N, S, S) uint8 pseudo-labels (labels.BACKGROUND/FACE/HAIR)
    affine: np.ndarray       # (N, 2, 3) float64 frame pixels -> crop pixels
    identity: np.ndarray     # (N,) int32 index into identities
    clip: np.ndarray         # (N,) int32 index into clips
    frame: np.ndarray        # (N,) int32 frame index in its clip
    val: np.ndarray          # (N,) bool held out
    identities: list[str]
    clips: list[str]
    size: int
    notes: list[str] = field(default_factory=list)
    key: str = ""            # what it was built from (for the cache)
    version: int = VERSION

    def __len__(self) -> int:
        return len(self.crops)

    def save(self, path: str) -> str:
        meta = {"version": self.version, "kind": "images", "identities": self.identities,
                "clips": self.clips, "size": self.size, "notes": self.notes, "key": self.key}
        return npzfile.write(path, meta, {k: np.asarray(getattr(self, k), t)
                                          for k, t in ARRAYS.items()})

    @classmethod
    def load(cls, path: str) -> "ImageDataset":
        meta, arrays = npzfile.read(
            path, ARRAYS, what="image dataset", version=VERSION, kind="images",
            wrong_kind="a landmark dataset, not an image dataset: give the clips or folders "
                       "themselves (or an image dataset) as --data")
        ds = cls(**arrays, identities=list(meta["identities"]), clips=list(meta["clips"]),
                 size=int(meta["size"]), notes=list(meta.get("notes", [])),
                 key=str(meta.get("key", "")), version=int(meta["version"]))
        n = len(ds.crops)
        if ds.crops.shape[1:] != (ds.size, ds.size, 3) or any(len(arrays[k]) != n for k in ARRAYS):
            raise ReenactError("image dataset arrays disagree in shape", path=path)
        return ds

    def split(self, name: str) -> np.ndarray:
        """Row indices of the ``train`` or ``val`` frames."""
        return np.flatnonzero(self.val if name == "val" else ~self.val)

    def summary(self) -> str:
        lines = [f"image dataset v{self.version}: {len(self)} crops of {self.size} px, "
                 f"{len(self.clips)} clips, {len(self.identities)} identities, "
                 f"{int(self.val.sum())} held out"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _inputs_key(files: list[str], settings: dict) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _even(rows: np.ndarray, k: int) -> np.ndarray:
    if len(rows) <= k:
        return rows
    return rows[np.unique(np.round(np.linspace(0, len(rows) - 1, k)).astype(int))]


def build_images(inputs: Iterable[str], *, size: int = facecrops.DEFAULT_SIZE,
                 max_frames: int = 120, val_fraction: float = 0.2,
                 progress: Callable[[str, int, int], None] | None = None,
                 effect=None) -> ImageDataset:
    """Crops, landmarks and pseudo-labels of the tracked frames of ``inputs`` (files or folders).
    Faceless, non-human or unreadable media are skipped with a note; none left is an error."""
    from ..media import MediaReader
    from ..pipeline.effect import Effect

    size = facecrops.check_size(size)
    files = _media_files(inputs)
    if not files:
        raise ReenactError("no media files among the inputs", key="data")
    settings = {"size": size, "max_frames": int(max_frames), "val_fraction": float(val_fraction),
                "version": VERSION}
    ids = _identity_names(files, {})
    fx = effect or Effect()
    seg = PersonSegmenter()
    parts: dict[str, list] = {k: [] for k in ARRAYS}
    clips, identities, notes = [], [], []
    try:
        for path, ident in zip(files, ids):
            cb = (lambda stage, d, n, _p=path: progress(f"track {os.path.basename(_p)}", d, n)) \
                if progress else None
            try:
                track = fx.track(path, progress=cb)
            except (FaceError, MediaError) as exc:
                notes.append(f"skipped {path}: {exc.message}")
                continue
            rows = _even(np.flatnonzero(track.valid & ~track.filled), max_frames)
            if not len(rows):
                notes.append(f"skipped {path}: no tracked frame")
                continue
            if ident not in identities:
                identities.append(ident)
            c = len(clips)
            clips.append(path)
            n_val = int(np.floor(val_fraction * len(rows))) if len(rows) >= 5 else 0
            wanted = {int(r): j for j, r in enumerate(rows)}
            with MediaReader(path) as reader:
                for t, rgb in reader.frames():
                    if t not in wanted:
                        if t > rows[-1]:
                            break
                        continue
                    pts = track.points[t]
                    a = facecrops.alignment(pts, size)
                    crop = facecrops.cut(rgb, a, size)
                    cpts = pts.astype(np.float64).copy()
                    cpts[:, :2] = cpts[:, :2] @ a[:, :2].T + a[:, 2]
                    cpts[:, 2] *= np.sqrt(abs(np.linalg.det(a[:, :2])))
                    parts["crops"].append(crop)
                    parts["points"].append(cpts.astype(np.float32))
                    parts["labels"].append(pseudo_labels(crop, cpts, seg))
                    parts["affine"].append(a)
                    parts["identity"].append(identities.index(ident))
                    parts["clip"].append(c)
                    parts["frame"].append(t)
                    parts["val"].append(wanted[t] >= len(rows) - n_val)
                    if progress:
                        progress(f"crop {os.path.basename(path)}", wanted[t] + 1, len(rows))
    finally:
        seg.close()
        if effect is None:
            fx.close()
    if not clips:
        raise FaceError("no input has a trackable human face: " + "; ".join(notes), path=files[0])
    arrays = {k: np.asarray(v, ARRAYS[k]) for k, v in parts.items()}
    return ImageDataset(**arrays, identities=identities, clips=clips, size=size, notes=notes,
                        key=_inputs_key(files, settings))


def cached_images(data: str, cache_dir: str, **build) -> ImageDataset:
    """``data``: an image dataset (.npz) to load, or clips/folders to build one from; a build is
    kept as ``cache_dir/images-<size>.npz`` and reused while its inputs and settings match."""
    if os.path.isfile(data) and data.endswith(".npz"):
        return ImageDataset.load(data)
    size = facecrops.check_size(build.get("size", facecrops.DEFAULT_SIZE))
    files = _media_files([data])
    settings = {"size": size, "max_frames": int(build.get("max_frames", 120)),
                "val_fraction": float(build.get("val_fraction", 0.2)), "version": VERSION}
    key = _inputs_key(files, settings)
    path = os.path.join(cache_dir, f"images-{size}.npz")
    if os.path.isfile(path):
        try:
            ds = ImageDataset.load(path)
            if ds.key == key:
                return ds
        except ReenactError:
            pass   # a stale or broken cache is rebuilt
    ds = build_images([data], **build)
    ds.save(path)
    return ds


# ------------------------------------------------------------------------------------------ pairs

@dataclass
class PairBatch:
    ref: np.ndarray          # (n, S, S, 3) uint8 reference crops
    ref_points: np.ndarray   # (n, 478, 3) their landmarks (crop pixels)
    ref_labels: np.ndarray   # (n, S, S) uint8
    truth: np.ndarray        # (n, S, S, 3) uint8 the ground-truth frame in the reference's crop
    points: np.ndarray       # (n, 478, 3) its landmarks in the reference's crop: the driving ones
    labels: np.ndarray       # (n, S, S) uint8 its pseudo-labels in the reference's crop
    valid: np.ndarray        # (n, S, S) float32 1 where the truth's pixels come from its frame
    clip: np.ndarray         # (n,) int32


def into_reference(ds: ImageDataset, r: int, t: int):
    """Frame ``t``'s crop, landmarks, labels and coverage moved into frame ``r``'s crop."""
    m = facecrops.compose(ds.affine[r], facecrops.invert(ds.affine[t]))
    s = ds.size
    img = facecrops.cut(ds.crops[t], m, s)
    lab = facecrops.cut(ds.labels[t], m, s, nearest=True)
    cov = facecrops.coverage(m, (s, s), s)
    p = ds.points[t].astype(np.float64).copy()
    p[:, :2] = p[:, :2] @ m[:, :2].T + m[:, 2]
    p[:, 2] *= np.sqrt(abs(np.linalg.det(m[:, :2])))
    return img, p.astype(np.float32), lab, cov


class ImagePairs:
    """Self-reenactment pairs (reference, ground truth) of one split: two frames of one clip."""

    def __init__(self, ds: ImageDataset, split: str, rng: np.random.Generator):
        self.ds, self.rng = ds, rng
        rows = ds.split(split)
        by_clip: dict[int, list[int]] = {}
        for r in rows:
            by_clip.setdefault(int(ds.clip[r]), []).append(int(r))
        self.clips = {c: np.array(v) for c, v in by_clip.items() if len(v) > 1}
        if not self.clips:
            raise ReenactError(f"the {split} split has no clip with two tracked frames to pair "
                               "(give a talking-head video)", key="data")
        # references come from the clip's training frames too when the split is 'val', as at
        # render time (the target's reference is a known frame, the motion a new one)
        self.refs = {c: np.flatnonzero((ds.clip == c) & ~ds.val) for c in self.clips}
        self.refs = {c: (v if len(v) else self.clips[c]) for c, v in self.refs.items()}
        self.clip_ids = np.array(sorted(self.clips))
        self.identity_of = {c: int(ds.identity[self.clips[c][0]]) for c in self.clip_ids}

    @property
    def multi_identity(self) -> bool:
        return len(set(self.identity_of.values())) > 1

    def rows(self, n: int):
        """n (reference row, truth row, third row of the same clip, clip) draws."""
        out = []
        for _ in range(n):
            c = int(self.rng.choice(self.clip_ids))
            r = int(self.rng.choice(self.refs[c]))
            t, u = (int(x) for x in self.rng.choice(self.clips[c], 2))
            out.append((r, t, u, c))
        return out

    def other_clip(self, c: int) -> int:
        """A clip of another identity (the same clip when there is only one identity)."""
        others = [k for k in self.clip_ids if self.identity_of[k] != self.identity_of[c]]
        return int(self.rng.choice(others)) if others else c

    def batch(self, n: int, rows=None) -> PairBatch:
        rows = self.rows(n) if rows is None else rows
        ds = self.ds
        got = [into_reference(ds, r, t) for r, t, _, _ in rows]
        refs = [r for r, _, _, _ in rows]
        return PairBatch(ref=ds.crops[refs], ref_points=ds.points[refs], ref_labels=ds.labels[refs],
                         truth=np.stack([x[0] for x in got]), points=np.stack([x[1] for x in got]),
                         labels=np.stack([x[2] for x in got]), valid=np.stack([x[3] for x in got]),
                         clip=np.array([c for *_, c in rows], np.int32))

    def fixed(self, n: int, seed: int = 12345) -> PairBatch:
        """A reproducible batch (validation, previews): the clip's first training frame as the
        reference, evenly spaced frames of the split as the truths."""
        rows = []
        per = max(1, n // len(self.clip_ids))
        for c in self.clip_ids:
            for t in _even(self.clips[c], per):
                rows.append((int(self.refs[c][0]), int(t), int(t), int(c)))
        return self.batch(len(rows[:n]), rows[:n])
