"""The evaluation metrics, as pure functions on landmark arrays, images and embeddings.

Landmarks are mediapipe's (T, 478, 3) in pixels (z scaled like x), with a (T,) ``valid`` mask of the
frames where a face was really tracked (not interpolated).  Sequence metrics compare an output with a
driver frame by frame over the frames valid in both; the "reference" of a sequence is the first frame
valid in both, so output and driver are normalised at the same instant.

Definitions (the higher-is-better ones are similarities in [0, 1]):

``csim``    mean over output frames of the cosine similarity between the frame's dlib ResNet face
            embedding and the target's (the seeds' CSIM, with dlib standing in for ArcFace).
``psim``    head-pose similarity: per frame, the geodesic angle theta between the output's and the
            driver's head rotation relative to their reference frames (yaw, pitch, roll measured from
            the 3-D landmarks by :func:`reenact_fx.face.controls.measure`: Kabsch on the skull-fixed points);
            psim = mean(max(0, 1 - theta / 45 deg)).  Relative poses, because the effect transfers
            the driver's head *motion* onto the target's own pose.  psim(x, x) == 1 exactly.
            ``pose_deg`` is the mean theta itself, in degrees.
``ed``      expression distance: mean L2 distance between the output's and the driver's vectors of
            the nine expression controls (``controls.EXPRESSION``), each measured relative to its own
            reference frame (the identity normalisation: a face's shape at rest does not count).
            0 for identical sequences.
``lsim``    FACEGAN-style landmark similarity: the driver's motion (each frame similarity-aligned in
            2-D onto the driver's reference, minus that reference) is carried into the output's
            reference frame (by the similarity aligning the two references) and added to the output's
            reference shape: the "driver-converted target shape".  The output frame is similarity-
            aligned onto it; lsim = 1 - mean distance of the 468 mesh points, in output IODs (outer
            eye-corner distances), averaged over frames (clipped at 0).
``ssim``    self pairs only: SSIM (scikit-image, RGB, data range 255) between output frame t and the
            real frame t of the clip, on the real face's landmark box grown by 15% a side, over every
            frame t > 0 with a face.
``jitter``  mean |second temporal difference| of the output's 2-D landmarks (each point's L2 norm,
            in IODs), divided by the same of the driver's: 1 = as steady as the driver, < 1 steadier.
``face_rate`` share of output frames where the re-tracker found a face (interpolated ones do not count).
``fps``     output frames per wall-clock second of analyze + render (no analysis cache); the one
            non-deterministic number.
"""

from __future__ import annotations

import math

import numpy as np

from ..face.controls import EXPRESSION, euler_to_matrix, measure
from ..face.geometry import apply, umeyama

PSIM_SCALE_DEG = 45.0     # a pose error of this angle scores 0
MESH = 468                # the face mesh proper (the 10 iris points excluded from shape metrics)
SSIM_MARGIN = 0.15

HIGHER_IS_BETTER = {"csim": True, "psim": True, "ed": False, "lsim": True, "ssim": True,
                    "jitter": None, "face_rate": True, "fps": True, "pose_deg": False}


# ------------------------------------------------------------------------------------------ helpers
def _valid(points: np.ndarray, valid) -> np.ndarray:
    v = np.ones(len(points), bool) if valid is None else np.asarray(valid, bool).copy()
    if len(v) != len(points):
        raise ValueError(f"{len(v)} valid flags for {len(points)} frames")
    return v


def common(valid_a, valid_b) -> tuple[np.ndarray, int | None]:
    """The frames valid in both and the first of them (the reference), or None when there is none."""
    both = np.asarray(valid_a, bool) & np.asarray(valid_b, bool)
    idx = np.flatnonzero(both)
    return both, (int(idx[0]) if len(idx) else None)


def nearest_frames(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each time in ``at``, the index of the nearest of ``times`` (sorted): how output frames are
    matched with driver frames (nearest, not "last at or before": containers that round timestamps,
    such as Matroska's milliseconds, would otherwise shift every third frame of a 30 fps clip)."""
    times, at = np.asarray(times, np.float64), np.asarray(at, np.float64)
    if not len(times):
        return np.zeros(len(at), np.int64)
    j = np.clip(np.searchsorted(times, at), 1, max(len(times) - 1, 1))
    lo = np.clip(j - 1, 0, len(times) - 1)
    hi = np.clip(j, 0, len(times) - 1)
    pick = np.where(np.abs(times[hi] - at) < np.abs(at - times[lo]), hi, lo)
    return pick.astype(np.int64)


def iod(points: np.ndarray) -> np.ndarray:
    """3-D outer-eye-corner distance of (..., 478, 3) landmarks (a face size that barely changes with
    yaw, unlike any 2-D measure)."""
    p = np.asarray(points, np.float64)
    return np.linalg.norm(p[..., 33, :] - p[..., 263, :], axis=-1)


def _nan() -> float:
    return float("nan")


# ------------------------------------------------------------------------------------------ identity
def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def csim(embeddings, target: np.ndarray) -> float:
    """Mean cosine similarity of output-frame embeddings to the target's; nan without any."""
    sims = [cosine(e, target) for e in embeddings]
    return float(np.mean(sims)) if sims else _nan()


# ------------------------------------------------------------------------------------------ pose
def relative_rotations(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T, 3, 3) head rotations of each frame relative to ``reference`` (from measured yaw, pitch, roll)."""
    m = measure(np.asarray(points, np.float64), np.asarray(reference, np.float64))
    return np.stack([euler_to_matrix(y, p, r) for y, p, r in zip(m["yaw"], m["pitch"], m["roll"])])


def pose_errors(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> np.ndarray:
    """Per common valid frame, the geodesic angle (degrees) between the relative head rotations."""
    both, ref = common(_valid(out, valid_out), _valid(drv, valid_drv))
    if ref is None:
        return np.zeros(0)
    ro = relative_rotations(out[both], out[ref])
    rd = relative_rotations(drv[both], drv[ref])
    # ||Ra - Rb||_F = 2 sqrt(2) sin(theta / 2): exactly 0 for identical rotations (arccos of the
    # trace would not be, in floating point)
    f = np.linalg.norm((ro - rd).reshape(len(ro), -1), axis=1)
    return np.degrees(2 * np.arcsin(np.clip(f / (2 * math.sqrt(2)), 0.0, 1.0)))


def psim(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> float:
    err = pose_errors(out, drv, valid_out, valid_drv)
    if not len(err):
        return _nan()
    return float(np.mean(np.maximum(0.0, 1.0 - err / PSIM_SCALE_DEG)))


def pose_deg(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> float:
    err = pose_errors(out, drv, valid_out, valid_drv)
    return float(err.mean()) if len(err) else _nan()


# ------------------------------------------------------------------------------------------ expression
def expression_vectors(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T, 9) expression controls of each frame relative to ``reference`` (controls.EXPRESSION order)."""
    m = measure(np.asarray(points, np.float64), np.asarray(reference, np.float64))
    return np.stack([np.asarray(m[k], np.float64) for k in EXPRESSION], -1)


def ed(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> float:
    both, ref = common(_valid(out, valid_out), _valid(drv, valid_drv))
    if ref is None:
        return _nan()
    eo = expression_vectors(out[both], out[ref])
    edv = expression_vectors(drv[both], drv[ref])
    return float(np.linalg.norm(eo - edv, axis=1).mean())


# ------------------------------------------------------------------------------------------ landmarks
def converted_shapes(out_ref: np.ndarray, drv: np.ndarray, drv_ref: np.ndarray) -> np.ndarray:
    """(T, 468, 2) driver motion carried onto the output's reference shape (see lsim in the module doc)."""
    o = np.asarray(out_ref, np.float64)[:MESH, :2]
    r = np.asarray(drv_ref, np.float64)[:MESH, :2]
    s, rot, _ = umeyama(r, o)
    shapes = np.empty((len(drv), MESH, 2))
    for i, p in enumerate(np.asarray(drv, np.float64)[:, :MESH, :2]):
        motion = apply(*umeyama(p, r), p) - r
        shapes[i] = o + s * motion @ rot.T
    return shapes


def landmark_distances(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> np.ndarray:
    """Per common valid frame, the mean mesh-point distance (output IODs) between the output aligned
    onto the driver-converted output reference shape and that shape."""
    both, ref = common(_valid(out, valid_out), _valid(drv, valid_drv))
    if ref is None:
        return np.zeros(0)
    target = converted_shapes(out[ref], drv[both], drv[ref])
    unit = float(iod(out[ref]))
    d = []
    for p, q in zip(np.asarray(out, np.float64)[both][:, :MESH, :2], target):
        aligned = apply(*umeyama(p, q), p)
        d.append(np.linalg.norm(aligned - q, axis=1).mean() / unit)
    return np.asarray(d)


def lsim(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> float:
    d = landmark_distances(out, drv, valid_out, valid_drv)
    return float(np.mean(np.maximum(0.0, 1.0 - d))) if len(d) else _nan()


# ------------------------------------------------------------------------------------------ jitter
def jitter_series(points: np.ndarray, valid=None) -> np.ndarray:
    """(T,) per-frame jitter: mean over the 468 mesh points of |p[t+1] - 2 p[t] + p[t-1]| (2-D, in the
    sequence's median IOD); nan where t-1, t or t+1 has no face, and at both ends."""
    p = np.asarray(points, np.float64)
    v = _valid(p, valid)
    out = np.full(len(p), np.nan)
    if len(p) < 3 or not v.any():
        return out
    unit = float(np.median(iod(p[v])))
    xy = p[:, :MESH, :2] / max(unit, 1e-9)
    d2 = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1).mean(-1)
    ok = v[2:] & v[1:-1] & v[:-2]
    out[1:-1] = np.where(ok, d2, np.nan)
    return out


def jitter(points: np.ndarray, valid=None) -> float:
    """Mean of :func:`jitter_series` (absolute, in IODs per frame squared); nan when undefined."""
    s = jitter_series(points, valid)
    return float(np.nanmean(s)) if np.isfinite(s).any() else _nan()


def jitter_ratio(out: np.ndarray, drv: np.ndarray, valid_out=None, valid_drv=None) -> float:
    """The output's jitter relative to the driver's, over the frames valid in both."""
    both, ref = common(_valid(out, valid_out), _valid(drv, valid_drv))
    if ref is None:
        return _nan()
    a, b = jitter(out, both), jitter(drv, both)
    return a / b if b > 0 else _nan()


# ------------------------------------------------------------------------------------------ images
def face_box(landmarks: np.ndarray, shape: tuple[int, ...], margin: float = SSIM_MARGIN
             ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the landmarks' 2-D box grown by ``margin`` a side, clipped to the image."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    grow = (hi - lo) * margin
    x0, y0 = np.floor(lo - grow).astype(int)
    x1, y1 = np.ceil(hi + grow).astype(int)
    h, w = shape[:2]
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def ssim_face(output: np.ndarray, real: np.ndarray, landmarks: np.ndarray) -> float:
    """SSIM of two same-size RGB uint8 frames over the face box of ``landmarks`` (the real face's)."""
    from skimage.metrics import structural_similarity

    if output.shape != real.shape:
        raise ValueError(f"frames of different sizes: {output.shape} and {real.shape}")
    x0, y0, x1, y1 = face_box(landmarks, real.shape)
    if x1 - x0 < 7 or y1 - y0 < 7:
        return _nan()
    return float(structural_similarity(output[y0:y1, x0:x1], real[y0:y1, x0:x1], channel_axis=-1,
                                       data_range=255))


def face_rate(valid, filled=None) -> float:
    v = np.asarray(valid, bool)
    if filled is not None:
        v = v & ~np.asarray(filled, bool)
    return float(v.mean()) if len(v) else _nan()
