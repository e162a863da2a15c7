"""Face tracking: the landmarks of one person over every frame of a media file.

Acquisition (first frame with a face) searches the whole frame: a static face mesh, then, until
max_faces are found, mediapipe's full-range face detector for faces too small for the mesh's own
detector, then that detector on overlapping tiles (faces a few percent of the frame).  Once a face is
held it is followed by a video-mode face mesh on a square crop around the previous frame's landmarks:
~6 ms a frame on 2 CPU cores, sharp on small faces (the crop is upscaled) and blind to other people.
A lost face is looked for where it was last seen, then in the whole frame (nearest face wins).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import cv2
import numpy as np

from ..errors import FaceError, ParamError
from .geometry import eye_opening, mouth_opening
from ..params import Param, Schema
from ..sequences import runs
from .track import N_LANDMARKS, LandmarkTrack

TRACKING = Schema("tracking", (
    Param("max_faces", "int", 4, "faces searched per frame when acquiring", 1, 10),
    Param("face_select", "choice", "largest",
          "which face to track when several are seen on the first frame with faces",
          choices=("largest", "center", "left", "right", "index")),
    Param("face_index", "int", 0, "with face_select=index: the face to track, 0 = leftmost", 0, 9),
    Param("max_gap", "float", 0.5,
          "seconds: gaps without a face up to this long are interpolated, longer ones pass the "
          "target through untouched", 0, 10),
    Param("verify_human", "bool", True,
          "refuse a face that dlib's human-face detector does not confirm (mediapipe meshes animals)"),
    Param("human_threshold", "float", 0.5, "minimum human-face score of the tracked face", 0, 1.5),
    Param("small_face_search", "bool", True,
          "also look for faces too small for the face mesh's detector: the full-range detector on "
          "the whole frame, then on overlapping tiles"),
    Param("min_detection_confidence", "float", 0.5, "face detection threshold", 0, 1),
    Param("min_tracking_confidence", "float", 0.5,
          "face-mesh presence below which a followed face counts as lost", 0, 1),
))

MIN_FACE_PX = 24        # landmark bbox side below which a mesh is too coarse to animate
CROP_PX = 256           # side of the upscaled crop the face mesh runs on
TRACK_CROP = 2.0        # tracking crop side / face size
BOX_CROP = 2.6          # acquisition crop side / detector box size (the box is eyes-to-chin only)
TILE_STEP = 0.625       # tile side ratio between scales of the tiled search
TILE_OVERLAP = 0.25
MIN_TILE = 256          # px: the detector finds faces of >= ~10% of a tile, MIN_FACE_PX is ~10% of this
MAX_TILES = 40          # about how many tiles the finest scale may have (bounds the cost on 4K frames)
REACQUIRE_CROP = 3.5    # crop side / face size when looking for a lost face where it was last seen
LOST_TILE_EVERY = 5     # while no face is held, the costly tiled search runs on every 5th frame only
MAX_JUMP = 0.6          # face-centre move between frames, in face sizes, beyond which we re-acquire
WORK_PX = 4096          # px: frames larger than this are searched for faces at this size (the face
                        # found is then meshed on a full-resolution crop): an 8000x6000 still costs
                        # about what a 4K frame does

Progress = Callable[[int, int], None]


# --- geometry helpers ------------------------------------------------------------------------------

def _bbox(points: np.ndarray) -> tuple[float, float, float, float]:
    xy = points[:, :2]
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def _centre_size(points: np.ndarray) -> tuple[np.ndarray, float]:
    x0, y0, x1, y1 = _bbox(points)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0)


def _area(points: np.ndarray) -> float:
    x0, y0, x1, y1 = _bbox(points)
    return (x1 - x0) * (y1 - y0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = _bbox(a)
    bx0, by0, bx1, by1 = _bbox(b)
    iw, ih = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    """Contiguous HxWx3 uint8, which is all mediapipe accepts."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


class _Crop:
    """A square region of a frame, scaled to CROP_PX: maps crop landmarks back to frame pixels."""

    def __init__(self, centre, side: float):
        self.scale = CROP_PX / max(side, 1.0)
        self.tx = CROP_PX / 2 - self.scale * centre[0]
        self.ty = CROP_PX / 2 - self.scale * centre[1]

    def cut(self, rgb: np.ndarray) -> np.ndarray:
        m = np.array([[self.scale, 0, self.tx], [0, self.scale, self.ty]], np.float64)
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        return cv2.warpAffine(rgb, m, (CROP_PX, CROP_PX), flags=interp,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))

    def to_frame(self, pts: np.ndarray) -> np.ndarray:
        out = pts.copy()
        out[:, 0] = (pts[:, 0] - self.tx) / self.scale
        out[:, 1] = (pts[:, 1] - self.ty) / self.scale
        out[:, 2] = pts[:, 2] / self.scale
        return out


def _mesh_points(face_landmarks, width: int, height: int) -> np.ndarray:
    """mediapipe normalised landmarks -> (478, 3) float32 pixels, z scaled by the width like x."""
    a = np.array([(p.x, p.y, p.z) for p in face_landmarks.landmark], np.float32)
    a *= np.array([width, height, width], np.float32)
    return a


def _seen(box: tuple, faces: list[np.ndarray]) -> bool:
    """A detector box (cx, cy, side) is a face already meshed: centred in it and of a similar size."""
    for f in faces:
        x0, y0, x1, y1 = _bbox(f)
        if x0 <= box[0] <= x1 and y0 <= box[1] <= y1 and box[2] > 0.4 * max(x1 - x0, y1 - y0):
            return True
    return False


def _dedupe(faces: list[np.ndarray], iou: float = 0.3) -> list[np.ndarray]:
    """Drop meshes overlapping an earlier (or larger) one: tiles and boxes find a face several times."""
    keep: list[np.ndarray] = []
    for f in sorted(faces, key=_area, reverse=True):
        if all(_iou(f, k) < iou for k in keep):
            keep.append(f)
    return keep


def _tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square overlapping tiles (x, y, side) covering the frame at several scales.

    The full-range detector resizes its input to 192 px and misses faces under ~10% of it, so tile
    sides shrink by TILE_STEP from the frame's short side down to ~10x the smallest usable face
    (MIN_TILE); the finest level is kept to about MAX_TILES tiles so 4K frames stay affordable.
    """
    finest = max(MIN_TILE, math.sqrt(width * height / MAX_TILES))
    side = float(min(width, height))
    out: list[tuple[int, int, int]] = []
    while side >= finest:
        s = int(side)
        xs, ys = _starts(width, s), _starts(height, s)
        if len(xs) * len(ys) > 1:      # a single tile is the whole frame, already searched
            out += [(x, y, s) for y in ys for x in xs]
        side *= TILE_STEP
    return out


def _starts(dim: int, side: int) -> list[int]:
    """Evenly spread starts of tiles of ``side`` along ``dim``, overlapping by at least TILE_OVERLAP."""
    n = max(1, math.ceil((dim - side) / (side * (1 - TILE_OVERLAP)) - 1e-9) + 1)
    return [round(k * (dim - side) / (n - 1)) if n > 1 else 0 for k in range(n)]


# --- the tracker -----------------------------------------------------------------------------------

class FaceTracker:
    """Finds faces in stills and follows one person through a video.

    Not thread-safe: use one tracker per thread.  ``settings`` are tracking-schema values.
    """

    def __init__(self, settings: Mapping | None = None):
        self.settings = TRACKING.resolve(settings)
        self._graphs: dict[str, object] = {}
        self.tiny_rejected = 0      # meshes dropped as smaller than MIN_FACE_PX by the last search

    # mediapipe graphs are built on first use: each takes ~50 ms and some memory.
    def _graph(self, name: str):
        g = self._graphs.get(name)
        if g is None:
            import mediapipe as mp
            s = self.settings
            det = s["min_detection_confidence"]
            if name == "mesh_full":
                g = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=s["max_faces"], refine_landmarks=True,
                    min_detection_confidence=det)
            elif name == "mesh_crop":
                g = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                    min_detection_confidence=det)
            elif name == "mesh_video":
                g = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                    min_detection_confidence=det,
                    min_tracking_confidence=s["min_tracking_confidence"])
            elif name == "detect":
                g = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=det)
            else:
                raise KeyError(name)
            self._graphs[name] = g
        return g

    def _reset_video(self):
        """A fresh video graph per track: its internal state must not leak between files."""
        g = self._graphs.pop("mesh_video", None)
        if g is not None:
            g.close()

    def close(self):
        for g in self._graphs.values():
            g.close()
        self._graphs.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- acquisition: a whole still ---

    def detect_faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Every usable face in ``rgb`` (up to max_faces), left to right, each (478, 3) float32 pixels.

        The whole-frame mesh finds faces larger than ~15% of the frame; until max_faces are found the
        full-range detector (~10 ms) and the detector on tiles (0.1-0.5 s) add smaller ones, so that
        face_select also sees a small face beside a large one.
        """
        return self._acquire(_as_rgb(rgb), complete=True)

    def _acquire(self, rgb: np.ndarray, *, complete: bool, tiles: bool = True) -> list[np.ndarray]:
        """Faces found by the search stages in order; unless ``complete``, stop at the first that finds
        one (the cheap path when any face will do).  A frame larger than WORK_PX is searched at that
        working size, and each face found is meshed again on a crop of the full-resolution frame."""
        h, w = rgb.shape[:2]
        scale = WORK_PX / max(h, w)
        if scale >= 1:
            return self._acquire_at(rgb, complete=complete, tiles=tiles)
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        faces = []
        for f in self._acquire_at(small, complete=complete, tiles=tiles):
            f = f / scale                                  # x, y and the mesh's depth alike
            centre, size = _centre_size(f)
            sharp = self._mesh_on_crop(rgb, _Crop(centre, size * TRACK_CROP), "mesh_crop")
            faces.append(sharp if sharp is not None else f.astype(np.float32))
        return sorted(faces, key=lambda f: _centre_size(f)[0][0])

    def _acquire_at(self, rgb: np.ndarray, *, complete: bool, tiles: bool) -> list[np.ndarray]:
        self.tiny_rejected = 0
        stages = [self._search_full]
        if self.settings["small_face_search"]:
            stages += [self._search_boxes] + ([self._search_tiles] if tiles else [])
        faces: list[np.ndarray] = []
        for stage in stages:
            if len(faces) >= self.settings["max_faces"] or faces and not complete:
                break
            faces += self._usable(stage(rgb, skip=faces))
        faces = _dedupe(faces)[: self.settings["max_faces"]]
        return sorted(faces, key=lambda f: _centre_size(f)[0][0])

    def _usable(self, faces: list[np.ndarray]) -> list[np.ndarray]:
        ok = [f for f in faces if _centre_size(f)[1] >= MIN_FACE_PX]
        self.tiny_rejected += len(faces) - len(ok)
        return ok

    def _search_full(self, rgb: np.ndarray, skip=()) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        res = self._graph("mesh_full").process(rgb)
        return [_mesh_points(f, w, h) for f in (res.multi_face_landmarks or [])]

    def _detect_boxes(self, rgb: np.ndarray, ox: int = 0, oy: int = 0) -> list[tuple]:
        """Full-range detector boxes (cx, cy, side) in frame pixels (the image is offset by ox, oy)."""
        h, w = rgb.shape[:2]
        res = self._graph("detect").process(rgb)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            bw, bh = b.width * w, b.height * h
            out.append((ox + (b.xmin * w + bw / 2), oy + (b.ymin * h + bh / 2), max(bw, bh)))
        return out

    def _mesh_in_boxes(self, rgb: np.ndarray, boxes: list[tuple]) -> list[np.ndarray]:
        faces = []
        for cx, cy, side in boxes:
            crop = _Crop((cx, cy), side * BOX_CROP)
            f = self._mesh_on_crop(rgb, crop, "mesh_crop")
            if f is not None:
                faces.append(f)
        return faces

    def _search_boxes(self, rgb: np.ndarray, skip: list[np.ndarray] = ()) -> list[np.ndarray]:
        """Meshes in the full-range detector's boxes, except boxes of a face already in ``skip``."""
        return self._mesh_in_boxes(rgb, [b for b in self._detect_boxes(rgb) if not _seen(b, skip)])

    def _search_tiles(self, rgb: np.ndarray, skip: list[np.ndarray] = ()) -> list[np.ndarray]:
        """Meshes in detector boxes found on overlapping tiles, except faces already in ``skip``."""
        h, w = rgb.shape[:2]
        boxes = []
        for x, y, side in _tiles(w, h):
            boxes += self._detect_boxes(rgb[y:y + side, x:x + side], x, y)
        boxes = [b for b in boxes if not _seen(b, skip)]
        # the same face is seen by several overlapping tiles: mesh each place once
        uniq: list[tuple] = []
        for b in sorted(boxes, key=lambda b: -b[2]):
            if all(math.hypot(b[0] - u[0], b[1] - u[1]) > 0.5 * u[2] for u in uniq):
                uniq.append(b)
        return self._mesh_in_boxes(rgb, uniq)

    def _mesh_on_crop(self, rgb: np.ndarray, crop: _Crop, graph: str) -> np.ndarray | None:
        res = self._graph(graph).process(np.ascontiguousarray(crop.cut(rgb)))
        if not res.multi_face_landmarks:
            return None
        return crop.to_frame(_mesh_points(res.multi_face_landmarks[0], CROP_PX, CROP_PX))

    # --- following one face ---

    def _follow(self, rgb: np.ndarray, prev: np.ndarray) -> np.ndarray | None:
        """The face near ``prev`` found by the video mesh on a crop around it, or None."""
        centre, size = _centre_size(prev)
        pts = self._mesh_on_crop(rgb, _Crop(centre, size * TRACK_CROP), "mesh_video")
        if pts is None:
            return None
        c, s = _centre_size(pts)
        if s < MIN_FACE_PX or np.hypot(*(c - centre)) > MAX_JUMP * size or not 0.6 < s / size < 1.67:
            return None  # another face, or a bad fit: let the full search decide
        return pts

    def _near(self, rgb: np.ndarray, last: np.ndarray) -> np.ndarray | None:
        """A face found by a static mesh on a wide crop around where the face was last seen."""
        centre, size = _centre_size(last)
        pts = self._mesh_on_crop(rgb, _Crop(centre, size * REACQUIRE_CROP), "mesh_crop")
        if pts is None or _centre_size(pts)[1] < MIN_FACE_PX:
            return None
        return pts

    def _select_first(self, faces: list[np.ndarray], width: int, height: int,
                      path: str, frame: int) -> tuple[np.ndarray, str]:
        """The face to track among ``faces`` (left to right), and how it was chosen."""
        mode = self.settings["face_select"]
        if mode == "largest":
            return max(faces, key=_area), "the largest"
        if mode == "center":
            mid = np.array([width / 2, height / 2])
            return min(faces, key=lambda f: np.hypot(*(_centre_size(f)[0] - mid))), "the most central"
        if mode == "left":
            return faces[0], "the leftmost"
        if mode == "right":
            return faces[-1], "the rightmost"
        k = self.settings["face_index"]
        if k >= len(faces):
            raise FaceError(f"{len(faces)} face(s) on the first frame with faces; tracking.face_index={k} "
                            f"is out of range (0 is the leftmost)", path=path, frame=frame)
        return faces[k], f"face {k} from the left"

    def _first_face(self, rgb: np.ndarray, path: str, frame: int, notes: list[str], *,
                    tiles: bool) -> np.ndarray | None:
        """The face chosen by face_select on the first frame with faces (None: no face here)."""
        # a complete search (once per file): the choice and the multi-face note need every face
        faces = self._acquire(rgb, complete=True, tiles=tiles)
        if not faces:
            return None
        pts, how = self._select_first(faces, rgb.shape[1], rgb.shape[0], path, frame)
        if len(faces) > 1:
            notes.append(f"{len(faces)} faces seen at frame {frame}; tracking {how} (tracking.face_select)")
        return pts

    def _reacquire(self, rgb: np.ndarray, last: np.ndarray, *, tiles: bool) -> np.ndarray | None:
        """The lost face: first where it was last seen, else the face nearest that place."""
        self.tiny_rejected = 0
        pts = self._near(rgb, last)
        if pts is not None:
            return pts
        faces = self._acquire(rgb, complete=False, tiles=tiles)
        if not faces:
            return None
        c0 = _centre_size(last)[0]
        return min(faces, key=lambda f: np.hypot(*(_centre_size(f)[0] - c0)))

    def track_frames(self, frames: Iterable[tuple[int, np.ndarray]], *, path: str,
                     size: tuple[int, int], times: np.ndarray,
                     progress: Progress | None = None,
                     sink: Callable[[int, np.ndarray | None], None] | None = None
                     ) -> LandmarkTrack:
        """Track one person through ``frames`` ((index, rgb) pairs, streamed).

        Frames never yielded stay invalid.  The first face found is checked to be human
        (``verify_human``) at once; gaps are filled (``max_gap``) at the end.
        ``progress(done, total)`` is called per frame, ``sink(index, landmarks or None)`` with each
        frame's raw result as it is known (a render that starts before the tracking ends).
        """
        times = np.asarray(times, np.float64)
        total = len(times)
        points = np.zeros((total, N_LANDMARKS, 3), np.float32)
        valid = np.zeros(total, bool)
        notes: list[str] = []
        self._reset_video()
        last: np.ndarray | None = None       # the last landmarks tracked, however old
        ref_rgb, ref_index = None, None      # pixels of the first tracked frame, for the human check
        tiny_frames: list[int] = []
        reacquired = 0
        lost = 0                             # consecutive frames without a face

        for done, (i, rgb) in enumerate(frames, 1):
            if not 0 <= i < total:
                raise ValueError(f"frame index {i} outside the {total} times given")
            rgb = _as_rgb(rgb)
            if last is None:
                pts = self._first_face(rgb, path, i, notes, tiles=lost % LOST_TILE_EVERY == 0)
            else:
                pts = self._follow(rgb, last)
                if pts is None:
                    pts = self._reacquire(rgb, last, tiles=lost % LOST_TILE_EVERY == 0)
                    reacquired += pts is not None
            if pts is None:
                lost += 1
                if self.tiny_rejected:
                    tiny_frames.append(i)
            else:
                lost = 0
                points[i], valid[i], last = pts, True, pts
                if ref_rgb is None:
                    ref_rgb, ref_index = rgb, i
                    if self.settings["verify_human"]:
                        self._check_human(ref_rgb, pts, path, ref_index)
            if sink is not None:
                sink(i, pts)
            if progress is not None:
                progress(done, total)

        if ref_rgb is None:
            raise FaceError(self._no_face_message(total, tiny_frames), path=path)
        if tiny_frames:
            notes.append(f"{len(tiny_frames)} frame(s) (first: {tiny_frames[0]}) had only faces smaller "
                         f"than {MIN_FACE_PX} px, ignored as unusable")
        if reacquired:
            notes.append(f"the followed face was lost and searched for again {reacquired} time(s)")
        track = LandmarkTrack(path=path, size=(int(size[0]), int(size[1])), points=points,
                              valid=valid, times=times, notes=notes)
        return fill_gaps(track, self.settings["max_gap"])

    def _no_face_message(self, total: int, tiny_frames: list[int]) -> str:
        searched = "the face mesh on the whole frame"
        if self.settings["small_face_search"]:
            searched += ", the full-range face detector on the whole frame and on overlapping tiles"
        msg = f"no face found in any of the {total} frame(s) (searched: {searched})"
        if tiny_frames:
            msg += f"; faces smaller than {MIN_FACE_PX} px were seen but are too small to animate"
        elif not self.settings["small_face_search"]:
            msg += "; set tracking.small_face_search=true to look for small faces"
        return msg

    def _check_human(self, rgb: np.ndarray, pts: np.ndarray, path: str, frame: int):
        from .humanface import human_face_score
        thr = self.settings["human_threshold"]
        s = human_face_score(rgb, pts[:, :2])
        if s < thr:
            raise FaceError(
                f"the face found does not look like a human face (human-face score "
                f"{s:.2f} < {thr}); reenact-fx animates human faces. If this is a human face the "
                f"detector misses, set tracking.verify_human=false", path=path, frame=frame)

    def track_media(self, reader, progress: Progress | None = None, sink=None) -> LandmarkTrack:
        """Track the frames of a media.MediaReader."""
        info = reader.info
        return self.track_frames(reader.frames(), path=info.path, size=(info.width, info.height),
                                 times=info.times, progress=progress, sink=sink)


# --- after tracking --------------------------------------------------------------------------------

def fill_gaps(track: LandmarkTrack, max_gap_seconds: float) -> LandmarkTrack:
    """A copy of ``track`` with gaps of at most ``max_gap_seconds`` filled.

    A gap's length is the time the face is missing (first missing frame to the next tracked one).
    Inner gaps are interpolated linearly in time; leading/trailing ones hold the nearest tracked frame.
    Longer gaps stay invalid, so the target passes through untouched there, and get a note.
    """
    n = len(track)
    points, valid = track.points.copy(), track.valid.copy()
    filled = (track.filled if track.filled is not None else np.zeros(n, bool)).copy()
    notes = list(track.notes)
    t = np.asarray(track.times, np.float64)
    if n == 0 or not valid.any():
        return LandmarkTrack(track.path, track.size, points, valid, t, filled, notes)
    step = float(np.median(np.diff(t))) if n > 1 else 0.0

    for a, stop in runs(~track.valid):
        b = stop - 1   # inclusive end
        end = t[b + 1] if b + 1 < n else t[b] + step
        missing = end - t[a]
        if missing > max_gap_seconds + 1e-9:
            notes.append(f"frames {a}–{b} ({missing:.1f}s): no face; the target passes through untouched")
            continue
        if a > 0 and b + 1 < n:
            t0, t1 = t[a - 1], t[b + 1]
            w = ((t[a:b + 1] - t0) / max(t1 - t0, 1e-9)).astype(np.float32)[:, None, None]
            points[a:b + 1] = (1 - w) * track.points[a - 1] + w * track.points[b + 1]
        else:
            points[a:b + 1] = track.points[b + 1 if a == 0 else a - 1]
        valid[a:b + 1] = filled[a:b + 1] = True
    return LandmarkTrack(track.path, track.size, points, valid, t, filled, notes)


def reference_index(track: LandmarkTrack, mode: str | int = "first") -> int:
    """The reference (rest) frame of a track, that motion is measured from.

    "first": the first frame where a face was tracked (interpolated or held frames are skipped: their
    landmarks do not belong to their pixels); "neutral": among really tracked frames with the eyes at
    least half-way open (median), the one with the mouth most closed; an int, or an int as a string:
    that frame, which must be valid.
    """
    real = np.flatnonzero(track.valid & ~track.filled)
    if not len(real):
        real = np.flatnonzero(track.valid)
    if str(mode) in ("first", "neutral"):
        if not len(real):
            raise FaceError("no frame has a face to take as the reference", path=track.path)
        if mode == "first":
            return int(real[0])
        eyes = eye_opening(track.points[real])
        cand = real[eyes >= np.median(eyes)]
        return int(cand[np.argmin(mouth_opening(track.points[cand]))])
    try:
        i = int(mode)
    except (TypeError, ValueError):
        raise ParamError(f"expected 'first', 'neutral' or a frame index, found {mode!r}",
                         key="reference") from None
    if not 0 <= i < len(track):
        raise ParamError(f"frame {i} is outside the {len(track)} frames", key="reference")
    if not track.valid[i]:
        raise FaceError("no face was tracked in the reference frame", path=track.path, frame=i)
    return i
