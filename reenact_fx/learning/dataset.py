"""Landmark datasets built from footage, for training the learned landmark components.

``build`` tracks every clip and still (through :meth:`Effect.track`, so the analysis cache applies),
keeps the really tracked frames (not gap-filled ones) and stores, per frame: pixel landmarks, their
canonical shapes (:mod:`.canonical`), the expression controls relative to the clip's first tracked
frame, the absolute head pose, and identity / clip / frame / time labels.  One identity per file
unless a manifest groups files; the split into train and val is by identity, so validation faces
are never seen in training.  Stored as one ``.npz`` (no pickle; metadata as a JSON string).

``synthetic_identity`` makes a known-truth cross-identity partner of a real track: the same smooth
change of face shape applied to every frame, so expressions are the real ones and only the identity
differs.  Talking-head footage has no posed expression shared across people (FReeNet's RaFD
assumption), so supervised cross-identity terms train on such pairs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..face import controls
from ..errors import FaceError, MediaError, ReenactError
from ..media import IMAGE_EXTS
from ..face.tracking import reference_index
from ..face import canonical
from . import npzfile

VERSION = 1
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"}
ARRAYS = {"points": np.float32, "shapes": np.float32, "controls": np.float32, "pose": np.float32,
          "identity": np.int32, "clip": np.int32, "frame": np.int32, "time": np.float64}


@dataclass
class LandmarkDataset:
    points: np.ndarray          # (N, 478, 3) float32 pixel landmarks
    shapes: np.ndarray          # (N, 478, 3) float32 canonical shapes
    controls: np.ndarray        # (N, C) float32 expression controls (controls.NAMES order)
    pose: np.ndarray            # (N, 3) float32 absolute yaw, pitch, roll in degrees
    identity: np.ndarray        # (N,) int32 index into identities
    clip: np.ndarray            # (N,) int32 index into clips
    frame: np.ndarray           # (N,) int32 frame index in its clip
    time: np.ndarray            # (N,) float64 seconds
    identities: list[str]
    clips: list[str]
    split: dict[str, str]       # identity name -> "train" | "val"
    control_names: list[str] = field(default_factory=lambda: list(controls.NAMES))
    notes: list[str] = field(default_factory=list)
    version: int = VERSION

    def __len__(self) -> int:
        return len(self.points)

    # ------------------------------------------------------------------ files
    def save(self, path: str) -> str:
        """Write atomically (``path`` gets ``.npz`` if it has no extension); returns the path."""
        meta = {"version": self.version, "identities": self.identities, "clips": self.clips,
                "split": self.split, "control_names": self.control_names, "notes": self.notes}
        return npzfile.write(path, meta, {k: np.asarray(getattr(self, k), t)
                                          for k, t in ARRAYS.items()})

    @classmethod
    def load(cls, path: str) -> "LandmarkDataset":
        """Read a dataset; a missing, corrupt or newer-version file raises ReenactError naming it."""
        meta, arrays = npzfile.read(path, ARRAYS, what="landmark dataset", version=VERSION,
                                    missing=" (make one with `reenact-fx dataset build`)")
        version = int(meta["version"])
        ds = cls(**arrays, identities=list(meta["identities"]), clips=list(meta["clips"]),
                 split=dict(meta["split"]), control_names=list(meta["control_names"]),
                 notes=list(meta.get("notes", [])), version=version)
        n = len(ds.points)
        bad = [k for k in ARRAYS if len(arrays[k]) != n]
        if ds.points.shape[1:] != (478, 3) or ds.shapes.shape != ds.points.shape or bad \
                or (n and (ds.identity.max() >= len(ds.identities) or ds.clip.max() >= len(ds.clips))):
            raise ReenactError("landmark dataset arrays disagree in shape or labels "
                               f"({', '.join(bad) or 'points/shapes/labels'})", path=path)
        return ds

    # ------------------------------------------------------------------ views
    def clip_rows(self, c: int) -> np.ndarray:
        """Row indices of clip ``c`` in time order."""
        rows = np.flatnonzero(self.clip == c)
        return rows[np.argsort(self.time[rows], kind="stable")]

    def reference_row(self, c: int) -> int:
        """The row of clip ``c``'s reference frame (its first tracked frame; controls are relative
        to it)."""
        return int(self.clip_rows(c)[0])

    def identity_split(self, split: str) -> list[int]:
        return [i for i, name in enumerate(self.identities) if self.split.get(name) == split]

    def subset(self, split: str) -> "LandmarkDataset":
        """The rows of identities in ``split`` ("train" or "val"); label lists stay whole."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', found {split!r}")
        keep = np.isin(self.identity, self.identity_split(split))
        return LandmarkDataset(**{k: getattr(self, k)[keep] for k in ARRAYS},
                               identities=self.identities, clips=self.clips, split=self.split,
                               control_names=self.control_names, notes=self.notes,
                               version=self.version)

    def summary(self) -> str:
        lines = [f"landmark dataset v{self.version}: {len(self)} frames, {len(self.clips)} clips, "
                 f"{len(self.identities)} identities"]
        for i, name in enumerate(self.identities):
            rows = self.identity == i
            clips = sorted({self.clips[c] for c in np.unique(self.clip[rows])})
            lines.append(f"  {name:<16} {self.split.get(name, '?'):<5} {int(rows.sum()):6d} frames  "
                         + ", ".join(os.path.basename(c) for c in clips))
        if len(self):
            lo, hi = self.controls.min(0), self.controls.max(0)
            lines.append("  controls (min..max): " + ", ".join(
                f"{n} {a:.2f}..{b:.2f}" for n, a, b in zip(self.control_names, lo, hi)))
            lines.append(f"  |yaw| up to {np.abs(self.pose[:, 0]).max():.1f} deg, "
                         f"|pitch| {np.abs(self.pose[:, 1]).max():.1f}, "
                         f"|roll| {np.abs(self.pose[:, 2]).max():.1f}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- building

def _media_files(inputs: Iterable[str]) -> list[str]:
    out = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files)
                        if os.path.splitext(f)[1].lower() in IMAGE_EXTS | VIDEO_EXTS]
        elif os.path.isfile(item):
            out.append(item)
        else:
            raise ReenactError("no such file or folder", path=item)
    return [os.path.normpath(p) for p in out]


def _read_manifest(path: str) -> dict[str, list[str]]:
    """``{identities: {name: [file, ...]}}``, files relative to the manifest's folder."""
    from ..config import safeyaml

    data = safeyaml.read(path, "manifest")
    if not isinstance(data, dict) or not isinstance(data.get("identities"), dict):
        raise ReenactError("expected a mapping with 'identities: {name: [file, ...]}'", path=path,
                           key="identities")
    base = os.path.dirname(os.path.abspath(path))
    out = {}
    for name, files in data["identities"].items():
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ReenactError("expected a list of files", path=path, key=f"identities.{name}")
        out[str(name)] = [os.path.normpath(os.path.join(base, f)) for f in files]
    return out


def _identity_names(files: list[str], manifest: dict[str, list[str]]) -> list[str]:
    """Each file's identity: the manifest's grouping, else its own (its name without extension,
    with the extension or folder added while two files would share it)."""
    owner = {os.path.abspath(f): name for name, fs in manifest.items() for f in fs}
    own = [f for f in files if os.path.abspath(f) not in owner]
    taken = set(owner.values())
    names = {}
    for level in (lambda f: os.path.splitext(os.path.basename(f))[0], os.path.basename,
                  lambda f: os.path.join(os.path.basename(os.path.dirname(f)), os.path.basename(f)),
                  os.path.abspath):
        counts: dict[str, int] = {}
        for f in own:
            counts[level(f)] = counts.get(level(f), 0) + 1
        for f in list(own):
            if counts[level(f)] == 1 and level(f) not in taken:
                names[f] = level(f)
                own.remove(f)
        taken |= set(names.values())
    return [owner.get(os.path.abspath(f)) or names.get(f) or os.path.abspath(f) for f in files]


def build(inputs: Iterable[str], out: str | None = None, *, manifest: str | None = None,
          val_fraction: float = 0.25, seed: int = 0,
          progress: Callable[[str, int, int], None] | None = None,
          effect=None) -> LandmarkDataset:
    """Track every clip/still of ``inputs`` (files or folders) and of the manifest, and return the
    dataset (also saved to ``out`` when given).  Faceless, non-human or unreadable media are skipped
    with a note; a missing input is an error."""
    from ..pipeline.effect import Effect

    if not 0.0 <= val_fraction < 1.0:
        raise ReenactError(f"expected a validation fraction in [0, 1), found {val_fraction}",
                           key="val_fraction")
    groups = _read_manifest(manifest) if manifest else {}
    files = _media_files(inputs)
    seen = {os.path.abspath(f) for f in files}
    for fs in groups.values():
        for f in fs:
            if not os.path.isfile(f):
                raise ReenactError("file listed in the manifest does not exist", path=f)
            if os.path.abspath(f) not in seen:
                files.append(f)
                seen.add(os.path.abspath(f))
    if not files:
        raise ReenactError("no media files among the inputs", key="inputs")
    ids = _identity_names(files, groups)

    fx = effect or Effect()
    parts: dict[str, list] = {k: [] for k in ARRAYS}
    clips, identities, notes = [], [], []
    try:
        for k, (path, ident) in enumerate(zip(files, ids)):
            cb = (lambda stage, d, n, _p=path: progress(os.path.basename(_p), d, n)) \
                if progress else None
            try:
                track = fx.track(path, progress=cb)
                ref = reference_index(track, "first")
            except (FaceError, MediaError) as exc:
                notes.append(f"skipped {path}: {exc.message}")
                continue
            rows = np.flatnonzero(track.valid & ~track.filled)
            pts = track.points[rows].astype(np.float32)
            if ident not in identities:
                identities.append(ident)
            c = len(clips)
            clips.append(path)
            rel = controls.measure(pts, track.points[ref])
            ab = controls.measure(pts)
            parts["points"].append(pts)
            parts["shapes"].append(canonical.normalize(pts)[0])
            parts["controls"].append(np.stack([rel[n] for n in controls.NAMES], 1))
            parts["pose"].append(np.stack([ab[n] for n in controls.POSE], 1))
            parts["identity"].append(np.full(len(rows), identities.index(ident)))
            parts["clip"].append(np.full(len(rows), c))
            parts["frame"].append(rows)
            parts["time"].append(track.times[rows])
    finally:
        if effect is None:
            fx.close()
    if not clips:
        raise FaceError("no input has a trackable human face: " + "; ".join(notes), path=files[0])
    order = np.random.default_rng(seed).permutation(len(identities))
    n_val = int(round(val_fraction * len(identities)))
    if val_fraction > 0 and len(identities) > 1:
        n_val = min(max(n_val, 1), len(identities) - 1)   # both splits non-empty
    else:
        n_val = 0
    split = {identities[i]: ("val" if j < n_val else "train") for j, i in enumerate(order)}
    ds = LandmarkDataset(**{k: np.concatenate(v).astype(ARRAYS[k]) for k, v in parts.items()},
                         identities=identities, clips=clips, split=split, notes=notes)
    if out is not None:
        ds.save(out)
    return ds


# ---------------------------------------------------------------------------- synthetic identities

def synthetic_identity(shapes: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0
                       ) -> np.ndarray:
    """A smooth, identity-like change of face shape applied to canonical shapes (T, 478, 3) or
    (478, 3): per-axis proportions (about +-6 %) and a low-frequency warp (a few random sinusoids
    over the face, about 0.03 eye distances), the same transform for every frame.  The result is
    re-normalised into the canonical frame.  Same ``rng`` state, same identity."""
    s = np.asarray(shapes, np.float64)
    single = s.ndim == 2
    s = s[None] if single else s
    scale = 1.0 + strength * rng.normal(0.0, 0.06, 3)
    k = 4
    freq = rng.normal(0.0, 1.2, (k, 3))                 # wavelengths of several face widths
    phase = rng.uniform(0, 2 * np.pi, k)
    amp = strength * rng.normal(0.0, 0.03 / np.sqrt(k), (k, 3))
    warped = s * scale + np.einsum("tnk,kd->tnd", np.sin(s @ freq.T + phase), amp)
    out = canonical.normalize(warped)[0]
    return out[0] if single else out
