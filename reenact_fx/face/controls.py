"""Interpretable expression controls: measured on any face's 478 landmarks, applied as deformations.

The sliders users know from portrait-animation tools (FACEGAN's action-unit idea): each control is a
number that :func:`measure` reads from a face and :func:`apply` writes into a face, such that
``measure(apply(p, {k: v}), reference=p)[k] == v`` (to float precision) and the other controls stay
where they were.

Face-aligned frame
    Everything is measured and deformed in a frame attached to the skull, computed from STABLE points
    (eye corners, nose ridge and tip, the face edge at the ears) that no deformation here moves:
    ``x`` = the face's left-right symmetry axis (sum of mirrored-pair differences, image right for a
    frontal face), ``y`` = down, orthogonal to x, from the nose tip towards the eye corners, tilted by a
    constant 40 degrees (PITCH0, about the median over 7 near-frontal portraits) so that frontal
    faces read pitch ~0, ``z`` = x cross y (away from the camera).  The origin
    is the STABLE points' centroid and the unit, ``IOD``, the 3-D distance between the outer eye
    corners.  So every measure is invariant to the face's position, size and head pose, and every
    deformation is specified in IOD in that frame (it scales and turns with the face).

Measures (``q`` = landmarks in that frame; "relative" = with a reference)
    blink_left/right  lid opening o = mean lower-upper lid gap of 3 lid pairs / eye width.
                      absolute: 1 - o / 0.33 (a typical open eye); relative: 1 - o / o_ref.
    brow_raise        brow height h = eye-corner line y - mean brow y, (h - 0.20) / 0.08.
    jaw_open          inner-lip gap g (3 pairs), g / 0.40 (a wide-open mouth reads 1).
    smile, stretch, pucker  from three mouth features: corner elevation e (inner-lip centre y - corner
                      y), width w (corner to corner along x) and upper-lip protrusion z (towards the
                      camera; upper lip only: the jaw does not move it).  smile = de / 0.08, pucker = dz / 0.06, stretch = (dw - 2 * 0.05 * smile
                      + 2 * 0.08 * pucker) / (2 * 0.08): the mouth's motion decomposed on the three
                      deformations below (a smile's oblique pull is not a stretch, a pucker's
                      narrowing is not a negative stretch).  Absolute values subtract typical
                      neutral features (e 0.01, w 0.52, z 0.11): only roughly 0 on a neutral face.
                      Note a real smile retracts the upper lip, so it also reads as negative pucker.
    gaze_x, gaze_y    iris centre relative to the eye-corner midpoint / eye width, in 0.2 (x) and 0.1
                      (y) eye widths; positive = towards image right / up.
    yaw, pitch, roll  degrees, Tait-Bryan Y-X-Z angles of the head frame (absolute: of the frame
                      itself, so a frontal, upright face reads 0; relative: of the rotation between the
                      reference's and this face's STABLE points (Kabsch), expressed in the reference's
                      head frame).  yaw > 0: the nose turns towards image right; pitch > 0: nose up;
                      roll > 0: counter-clockwise in the image.
    Relative values are ``measure(p) - measure(ref)``, except blink (a ratio of openings, so 1 is
    closed whatever the reference) and the angles (composed as rotations, not subtracted).

Deformations (unit amplitude; smooth weights in the face frame, STABLE points and irises pinned)
    blink       upper-lid contour onto its lower-lid partners; the region above follows with a falloff
                over 0.12 IOD; lower lid fixed.
    brow_raise  both brows 0.08 IOD up, forehead up to 0.6 of that, falling to 0 before the upper lid.
    smile       mouth corners 0.08 up and 0.05 out (anisotropic Gaussian around each), cheeks lifted.
    stretch     mouth stretched horizontally (corners 0.08 out) and both lips thinned towards the
                inner-lip line.
    pucker      lips and mouth region 0.06 towards the camera, corners 0.08 towards the midline.
    jaw_open    mandible (lower lip, chin, jaw line below a line through the mouth corners towards the
                ears) rotated about a hinge near the ears (linearised, z halved for the condyle's
                glide); around the mouth the lower lip drops uniformly, tapering to half at the
                corners (a lens-shaped opening; 0.40 IOD lower-lip drop).
    gaze        the 5 iris points of each eye translated within the eye.
    yaw/pitch/roll  rigid rotation of all points about the head centre (0.9 IOD behind the face).
    The nine expression fields are mixed through the inverse of their 9x9 measured response matrix
    (computed once per face by :class:`Rig`): each control reads back exactly and cross-talk is removed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import did_you_mean, ParamError
from .geometry import (EYE_CORNERS, INNER_CORNERS, LEFT_BROW, LEFT_IRIS, LIPS_INNER_LOWER,
                       LIPS_INNER_UPPER, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, MOUTH_BOTTOM,
                       MOUTH_CORNERS, MOUTH_TOP, RIGHT_BROW, RIGHT_IRIS, similarity)


@dataclass(frozen=True)
class Control:
    name: str
    help: str
    unit: str
    lo: float
    hi: float


CONTROLS: tuple[Control, ...] = (
    Control("blink_left", "closure of the subject's left eye (image right): 0 = as open as the "
            "reference, 1 = closed, < 0 = wider", "closure", -0.5, 1.0),
    Control("blink_right", "closure of the subject's right eye (image left)", "closure", -0.5, 1.0),
    Control("brow_raise", "both eyebrows up (< 0: lowered)", "x0.08 IOD", -1.0, 1.0),
    Control("smile", "mouth corners up and out, cheeks lifted (< 0: corners down)", "x0.08 IOD", -1.0, 1.0),
    Control("jaw_open", "mouth / jaw opening (1 = wide open; < 0 closes an open reference)",
            "x0.40 IOD", -0.5, 1.0),
    Control("pucker", "lips pushed forward and narrowed ('oo')", "x0.06 IOD", -0.5, 1.0),
    Control("stretch", "lips stretched wide and thin ('ee')", "x0.16 IOD", -0.5, 1.0),
    Control("gaze_x", "iris position within the eye, > 0 towards image right", "x0.2 eye width",
            -1.0, 1.0),
    Control("gaze_y", "iris position within the eye, > 0 up", "x0.1 eye width", -1.0, 1.0),
    Control("yaw", "head turn, > 0 the nose towards image right", "deg", -45.0, 45.0),
    Control("pitch", "head nod, > 0 the nose up", "deg", -30.0, 30.0),
    Control("roll", "head tilt, > 0 counter-clockwise in the image", "deg", -45.0, 45.0),
)
NAMES: tuple[str, ...] = tuple(c.name for c in CONTROLS)
BY_NAME = {c.name: c for c in CONTROLS}
EXPRESSION: tuple[str, ...] = NAMES[:9]
POSE: tuple[str, ...] = ("yaw", "pitch", "roll")

# --- landmark sets ---------------------------------------------------------------------------------
NOSE = (1, 4, 5, 195, 197, 6)
STABLE = EYE_CORNERS + NOSE + (234, 454)          # the skull frame; no deformation moves these
MIRROR_PAIRS = ((263, 33), (362, 133), (454, 234))  # (subject's left, subject's right)
IRIS = RIGHT_IRIS + LEFT_IRIS
# per eye: (upper lid contour, its lower partners, outer corner, inner corner, 3 measured lid pairs)
EYES = {
    "right": ((246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155), 33, 133,
              ((160, 144), (159, 145), (158, 153)), RIGHT_IRIS),
    "left": ((466, 388, 387, 386, 385, 384, 398), (249, 390, 373, 374, 380, 381, 382), 263, 362,
             ((387, 373), (386, 374), (385, 380)), LEFT_IRIS),
}
BROWS = ((RIGHT_BROW[:5], RIGHT_BROW[5:]), (LEFT_BROW[:5], LEFT_BROW[5:]))   # (top row, bottom row)
GAP_PAIRS = ((82, 87), (MOUTH_TOP, MOUTH_BOTTOM), (312, 317))
CORNER_R, CORNER_L = MOUTH_CORNERS
UPPER_LIP_FRONT = (0, 37, 267, 13, 82, 312)

# --- units and typical neutral values (IOD unless noted) -------------------------------------------
OPEN_TYP = 0.33                      # lid gap / eye width of a typical open eye
BROW_TYP, BROW_UNIT = 0.20, 0.08
JAW_UNIT = 0.40
SMILE_UP, SMILE_OUT = 0.08, 0.05     # corner motion of smile 1
STRETCH_OUT = 0.08                   # corner motion of stretch 1 (each side)
STRETCH_THIN = 0.45                  # lip-thinning gain of stretch 1
PUCKER_FWD, PUCKER_IN = 0.06, 0.08   # lip protrusion and corner narrowing of pucker 1
GAZE_X_UNIT, GAZE_Y_UNIT = 0.2, 0.1  # eye widths
E_TYP, W_TYP, Z_TYP = 0.01, 0.52, 0.11  # mouth features of a typical neutral face (see _features)
GAZE_Y_TYP = 0.075
PITCH0 = math.radians(40.0)                         # radians: frame tilt making frontal faces read pitch 0
HEAD_PIVOT = (0.0, 0.15, 0.9)        # head-rotation centre in the face frame (IOD)


# --- frame -----------------------------------------------------------------------------------------

def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def euler_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation (in the head frame) of the given angles in degrees (conventions in the module doc)."""
    return _ry(-math.radians(yaw)) @ _rx(-math.radians(pitch)) @ _rz(-math.radians(roll))


def matrix_to_euler(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yaw, pitch, roll) in degrees of rotation matrices (..., 3, 3); inverse of euler_to_matrix."""
    a = np.arctan2(r[..., 0, 2], r[..., 2, 2])
    b = np.arcsin(np.clip(-r[..., 1, 2], -1.0, 1.0))
    c = np.arctan2(r[..., 1, 0], r[..., 1, 1])
    return -np.degrees(a), -np.degrees(b), -np.degrees(c)


_RX0 = _rx(PITCH0)


def frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face frame of (..., 478, 3) points: centre (..., 3), axes H (..., 3, 3) as columns, unit (...)."""
    p = points
    ex = sum(p[..., a, :] - p[..., b, :] for a, b in MIRROR_PAIRS)
    ex = ex / np.linalg.norm(ex, axis=-1, keepdims=True)
    up = p[..., EYE_CORNERS, :].mean(-2) - p[..., 1, :]
    up = up - (up * ex).sum(-1, keepdims=True) * ex
    ey = -up / np.linalg.norm(up, axis=-1, keepdims=True)
    ez = np.cross(ex, ey)
    h = np.stack([ex, ey, ez], -1) @ _RX0
    c = p[..., STABLE, :].mean(-2)
    s = np.linalg.norm(p[..., 33, :] - p[..., 263, :], axis=-1) + 1e-9
    return c, h, s


def to_local(points: np.ndarray) -> np.ndarray:
    """Points in their face frame, in IOD units."""
    c, h, s = frame(points)
    return ((points - c[..., None, :]) @ h) / s[..., None, None]


def _features(q: np.ndarray) -> dict[str, np.ndarray]:
    """Raw measures of local points q (..., 478, 3)."""
    f = {}
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    gx, gy = [], []
    for side, (_, _, outer, inner, pairs, iris) in EYES.items():
        width = np.abs(x[..., inner] - x[..., outer]) + 1e-9
        gap = sum(y[..., lo] - y[..., up] for up, lo in pairs) / len(pairs)
        f["open_" + side] = gap / width
        cx = 0.5 * (x[..., inner] + x[..., outer])
        cy = 0.5 * (y[..., inner] + y[..., outer])
        gx.append((x[..., iris[0]] - cx) / width)
        gy.append((cy - y[..., iris[0]]) / width)
    f["gaze_x"], f["gaze_y"] = 0.5 * (gx[0] + gx[1]), 0.5 * (gy[0] + gy[1])
    brow = []
    for (top, bottom), corners in zip(BROWS, ((33, 133), (263, 362))):
        eye_y = y[..., list(corners)].mean(-1)
        brow.append(eye_y - y[..., list(top + bottom)].mean(-1))
    f["brow"] = 0.5 * (brow[0] + brow[1])
    f["gap"] = sum(y[..., lo] - y[..., up] for up, lo in GAP_PAIRS) / len(GAP_PAIRS)
    mid_y = 0.5 * (y[..., 13] + y[..., 14])
    f["e"] = mid_y - 0.5 * (y[..., CORNER_R] + y[..., CORNER_L])
    f["w"] = x[..., CORNER_L] - x[..., CORNER_R]
    f["z"] = -z[..., list(UPPER_LIP_FRONT)].mean(-1)
    return f


def _mouth(de, dw, dz):
    smile = de / SMILE_UP
    pucker = dz / PUCKER_FWD
    stretch = (dw - 2 * SMILE_OUT * smile + 2 * PUCKER_IN * pucker) / (2 * STRETCH_OUT)
    return smile, stretch, pucker


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations R (T, 3, 3) with b[t] ~ R a (a (N, 3), b (T, N, 3); centroids removed)."""
    return similarity(a, b, scale=False)[1]


def _as_points(points) -> tuple[np.ndarray, bool]:
    p = np.asarray(points, np.float64)
    if p.ndim == 2:
        return p[None], True
    if p.ndim != 3 or p.shape[-2:] != (478, 3):
        raise ValueError(f"expected (478, 3) or (T, 478, 3) landmarks, found shape {p.shape}")
    return p, False


def measure(points, reference=None) -> dict[str, np.ndarray | float]:
    """Every control measured on (478, 3) or (T, 478, 3) landmarks: floats or (T,) arrays.

    Without ``reference``: absolute measures (see the module doc; not all are 0 on a neutral face).
    With ``reference`` (478, 3): values relative to it, i.e. what apply() takes.
    """
    p, single = _as_points(points)
    c, h, s = frame(p)
    f = _features(((p - c[:, None]) @ h) / s[:, None, None])
    out: dict[str, np.ndarray] = {}
    if reference is None:
        out["blink_left"] = 1 - f["open_left"] / OPEN_TYP
        out["blink_right"] = 1 - f["open_right"] / OPEN_TYP
        out["brow_raise"] = (f["brow"] - BROW_TYP) / BROW_UNIT
        out["jaw_open"] = f["gap"] / JAW_UNIT
        out["smile"], out["stretch"], out["pucker"] = _mouth(f["e"] - E_TYP, f["w"] - W_TYP,
                                                             f["z"] - Z_TYP)
        out["gaze_x"] = f["gaze_x"] / GAZE_X_UNIT
        out["gaze_y"] = (f["gaze_y"] - GAZE_Y_TYP) / GAZE_Y_UNIT
        out["yaw"], out["pitch"], out["roll"] = matrix_to_euler(h)
    else:
        r = np.asarray(reference, np.float64)
        if r.shape != (478, 3):
            raise ValueError(f"expected a (478, 3) reference, found shape {r.shape}")
        rc, rh, rs = frame(r)
        fr = _features(((r - rc) @ rh) / rs)
        out["blink_left"] = 1 - f["open_left"] / (fr["open_left"] + 1e-9)
        out["blink_right"] = 1 - f["open_right"] / (fr["open_right"] + 1e-9)
        out["brow_raise"] = (f["brow"] - fr["brow"]) / BROW_UNIT
        out["jaw_open"] = (f["gap"] - fr["gap"]) / JAW_UNIT
        out["smile"], out["stretch"], out["pucker"] = _mouth(f["e"] - fr["e"], f["w"] - fr["w"],
                                                             f["z"] - fr["z"])
        out["gaze_x"] = (f["gaze_x"] - fr["gaze_x"]) / GAZE_X_UNIT
        out["gaze_y"] = (f["gaze_y"] - fr["gaze_y"]) / GAZE_Y_UNIT
        rot = _kabsch(r[list(STABLE)], p[:, list(STABLE)])
        q = np.einsum("ji,tjk,kl->til", rh, rot, rh)   # rh^T R rh
        out["yaw"], out["pitch"], out["roll"] = matrix_to_euler(q)
    out = {k: out[k] for k in NAMES}
    if single:
        return {k: float(v[0]) for k, v in out.items()}
    return out


def traces(points, reference=None) -> dict[str, np.ndarray]:
    """measure() over a (T, 478, 3) sequence: a (T,) array per control."""
    p = np.asarray(points, np.float64)
    return measure(p if p.ndim == 3 else p[None], reference)


# --- deformation fields ----------------------------------------------------------------------------

def _smoothstep(e0: float, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _flat(x, lo, hi, sigma):
    """1 on [lo, hi], Gaussian falloff outside."""
    d = np.maximum(np.maximum(lo - x, x - hi), 0.0)
    return np.exp(-0.5 * (d / sigma) ** 2)


def _interp(xq, xs, vals, sigma):
    """Gaussian-weighted (Nadaraya-Watson) interpolation of vals (n, ...) at xs to xq (m,)."""
    w = np.exp(-0.5 * ((xq[:, None] - xs[None, :]) / sigma) ** 2) + 1e-300
    w /= w.sum(1, keepdims=True)
    return w @ vals


def _bases(q: np.ndarray) -> np.ndarray:
    """(9, 478, 3) displacement per unit control in the face frame (IOD), EXPRESSION order."""
    n = len(q)
    x, y = q[:, 0], q[:, 1]
    out = np.zeros((len(EXPRESSION), n, 3))

    # blinks: upper lid onto the lower lid
    for k, side in ((0, "left"), (1, "right")):
        upper, lower, outer, inner, _, _ = EYES[side]
        u, lo = list(upper), list(lower)
        d = q[lo] - q[u]
        sig = 0.5 * np.abs(q[inner, 0] - q[outer, 0]) / len(u)
        disp = _interp(x, q[u, 0], d, sig)
        y_lid = _interp(x, q[u, 0], q[u, 1], sig)
        y_low = _interp(x, q[lo, 0], q[lo, 1], sig)
        above = (y < 0.5 * (y_lid + y_low)).astype(float)
        vert = 1 - _smoothstep(0.0, 0.12, y_lid - y)
        lat = _flat(x, min(q[inner, 0], q[outer, 0]), max(q[inner, 0], q[outer, 0]), 0.04)
        b = disp * (above * vert * lat)[:, None]
        b[u] = d
        b[lo] = 0
        out[k] = b

    # brow raise
    w = np.zeros(n)
    for top, bottom in BROWS:
        t, bt = list(top), list(bottom)
        xs = q[t + bt, 0]
        sig = 0.5 * (xs.max() - xs.min()) / len(t)
        y_top = _interp(x, q[t, 0], q[t, 1], sig)
        y_bot = _interp(x, q[bt, 0], q[bt, 1], sig)
        vert = np.where(y < y_top, 1 - 0.6 * _smoothstep(0.0, 0.45, y_top - y),
                        np.where(y > y_bot, 1 - _smoothstep(0.0, 0.12, y - y_bot), 1.0))
        w = np.maximum(w, vert * _flat(x, xs.min(), xs.max(), 0.12))
    out[2, :, 1] = -BROW_UNIT * w

    # smile: corners up and out, cheeks lifted
    for corner, sign in ((CORNER_R, -1.0), (CORNER_L, 1.0)):
        cx, cy = q[corner, 0], q[corner, 1]
        dx = x - cx
        sx = np.where(dx * sign < 0, 0.08, 0.12)
        wc = np.exp(-0.5 * ((dx / sx) ** 2 + ((y - cy) / 0.12) ** 2))
        wk = np.exp(-0.5 * (((x - cx - sign * 0.1) / 0.12) ** 2 + ((y - cy + 0.22) / 0.12) ** 2))
        out[3, :, 0] += sign * SMILE_OUT * wc
        out[3, :, 1] += -SMILE_UP * wc - 0.45 * SMILE_UP * wk

    # mouth geometry shared by jaw, pucker, stretch
    xr, xl = q[CORNER_R, 0], q[CORNER_L, 0]
    xm = q[[13, 14, 0, 17], 0].mean()
    hw = 0.5 * (xl - xr)
    yc = 0.5 * (q[CORNER_R, 1] + q[CORNER_L, 1])
    rel = (x - xm) / hw
    across = np.where(np.abs(rel) <= 1, rel,
                      np.sign(rel) * np.exp(-0.5 * ((np.abs(x - xm) - hw) / 0.12) ** 2))
    sig = 0.5 * hw / 5
    iu, il = list(LIPS_INNER_UPPER), list(LIPS_INNER_LOWER)
    y_ui = _interp(x, q[iu, 0], q[iu, 1], sig)
    y_li = _interp(x, q[il, 0], q[il, 1], sig)

    # jaw: mandible rotation about a hinge near the ears (linearised), z halved for the condyle glide
    hinge_y = q[[234, 454], 1].mean()
    hinge_z = q[[234, 454], 2].mean() + 0.1
    ear_x = 0.5 * (q[454, 0] - q[234, 0])
    line = np.where(np.abs(x - xm) <= hw, 0.5 * (y_ui + y_li),
                    yc + (hinge_y - yc) * np.clip((np.abs(x - xm) - hw) / max(ear_x - hw, 1e-3), 0, 1))
    wj = _smoothstep(-0.03, 0.03, y - line)
    wj[list(LIPS_INNER_LOWER[1:-1]) + list(LIPS_OUTER_LOWER)] = 1.0
    wj[list(LIPS_INNER_UPPER[1:-1]) + list(LIPS_OUTER_UPPER)] = 0.0
    out[4, :, 1] = wj * (q[:, 2] - hinge_z) * -1.0
    out[4, :, 2] = 0.5 * wj * (y - hinge_y)
    # around the mouth the lower lip drops as the middle of the lower lip does, tapering to half at
    # the corners (a lens-shaped opening; the corners go half way, so the smile measure is unmoved);
    # further out the mandible's rotation takes over
    wj[[CORNER_R, CORNER_L, *INNER_CORNERS]] = 1.0
    taper = np.clip(1 - 0.5 * rel ** 2, 0, 1)
    lips = _flat(x, xr, xl, 0.15) * _flat(y, q[0, 1], q[17, 1], 0.15)
    out[4, :, 1] = lips * wj * taper * out[4, 14, 1] + (1 - lips) * out[4, :, 1]
    out[4] *= JAW_UNIT / max(abs(out[4, 14, 1]), 1e-6)

    # pucker: lips forward, corners towards the midline
    y_top, y_bottom = q[0, 1], q[17, 1]
    wm = _flat(x, xr, xl, 0.08) * _flat(y, y_top - 0.03, y_bottom + 0.03, 0.08)
    out[5, :, 2] = -PUCKER_FWD * wm
    out[5, :, 0] = -PUCKER_IN * across * _flat(y, y_top - 0.03, y_bottom + 0.03, 0.1)

    # stretch: corners out, lips thinned towards the inner-lip line
    out[6, :, 0] = STRETCH_OUT * across * np.exp(-0.5 * ((y - yc) / 0.16) ** 2)
    lat = _flat(x, xr, xl, 0.06)
    hu = np.maximum(y_ui - y, 0.0)
    hl = np.maximum(y - y_li, 0.0)
    out[6, :, 1] = STRETCH_THIN * lat * (hu * np.exp(-(hu / 0.14) ** 2) - hl * np.exp(-(hl / 0.14) ** 2))

    # gaze: the irises within the eyes
    for side in ("right", "left"):
        _, _, outer, inner, _, iris = EYES[side]
        width = abs(q[inner, 0] - q[outer, 0])
        out[7, list(iris), 0] = GAZE_X_UNIT * width
        out[8, list(iris), 1] = -GAZE_Y_UNIT * width

    out[:, list(STABLE)] = 0
    out[:7, list(IRIS)] = 0
    return out


def _expr_vector(m: Mapping[str, Any]) -> np.ndarray:
    return np.array([m[k] for k in EXPRESSION], np.float64)


class Rig:
    """One face prepared for apply(): its frame, deformation fields and their response matrix.

    ``points`` is the face to deform; values are relative to ``reference`` (default: ``points``
    itself).  Building costs ~1-2 ms; each :meth:`apply` is a 9x(478*3) product and a rotation.
    """

    def __init__(self, points: np.ndarray, reference: np.ndarray | None = None):
        p = np.asarray(points, np.float64)
        if p.shape != (478, 3):
            raise ValueError(f"expected (478, 3) landmarks, found shape {p.shape}")
        self.points = p
        self.reference = None if reference is None else np.asarray(reference, np.float64)
        c, h, s = frame(p)
        self.centre, self.axes, self.unit = c, h, float(s)
        q = (p - c) @ h / s
        self.fields = (s * _bases(q)) @ h.T                     # (9, 478, 3) image space
        ref = p if self.reference is None else self.reference
        m0 = measure(p, ref)
        self.current = m0
        base = _expr_vector(m0)
        moved = p[None] + self.fields                           # unit step of each control
        mm = measure(moved, ref)
        jac = np.stack([mm[k] for k in EXPRESSION]) - base[:, None]   # (measure, control)
        self.response = jac
        self._solve = np.linalg.inv(jac + 1e-9 * np.eye(len(EXPRESSION)))
        # physical bounds: a lid cannot close past the lower lid (blink <= 1), lips not cross
        self._jaw_min = -_features(to_local(ref))["gap"] / JAW_UNIT
        # pose: the current relative rotation and the reference frame it is expressed in
        if self.reference is None:
            self._q_cur = np.eye(3)
            self._ref_axes = h
        else:
            rh = frame(self.reference)[1]
            rot = _kabsch(self.reference[list(STABLE)], p[None, list(STABLE)])[0]
            self._q_cur = rh.T @ rot @ rh
            self._ref_axes = rh
        self.pivot = c + s * h @ np.array(HEAD_PIVOT)

    def targets(self, values: Mapping[str, float]) -> np.ndarray:
        """Amplitudes (9,) of the expression fields that reach ``values`` (others unchanged)."""
        unknown = [k for k in values if k not in BY_NAME]
        if unknown:
            hint = did_you_mean(unknown[0], NAMES)
            raise ParamError(f"unknown control{hint}; known: {', '.join(NAMES)}", key=unknown[0])
        delta = np.zeros(len(EXPRESSION))
        for i, k in enumerate(EXPRESSION):
            if k in values:
                v = float(values[k])
                if k.startswith("blink"):
                    v = min(v, 1.0)
                elif k == "jaw_open":
                    v = max(v, self._jaw_min)
                delta[i] = v - self.current[k]
        return self._solve @ delta

    def apply(self, values: Mapping[str, float]) -> np.ndarray:
        """The face's landmarks (478, 3) with ``values`` applied (see module apply())."""
        amp = self.targets(values)
        out = self.points + np.tensordot(amp, self.fields, 1)
        if any(k in values for k in POSE):
            cur = dict(zip(POSE, matrix_to_euler(self._q_cur)))
            ang = [float(values.get(k, cur[k])) for k in POSE]
            rh = self._ref_axes
            g = rh @ euler_to_matrix(*ang) @ self._q_cur.T @ rh.T
            out = (out - self.pivot) @ g.T + self.pivot
        return out

    def apply_many(self, curves: Mapping[str, np.ndarray]) -> np.ndarray:
        """(T, 478, 3) landmarks for control curves (each a (T,) array, e.g. Keyframes.at())."""
        n = len(next(iter(curves.values()))) if curves else 0
        return np.stack([self.apply({k: float(v[i]) for k, v in curves.items()}) for i in range(n)])


_RIGS: OrderedDict = OrderedDict()


def rig(points: np.ndarray, reference: np.ndarray | None = None) -> Rig:
    """A cached Rig for these landmarks (keyed by content; the last 8 faces are kept)."""
    p = np.ascontiguousarray(points, np.float64)
    r = None if reference is None else np.ascontiguousarray(reference, np.float64)
    key = (hash(p.tobytes()), None if r is None else hash(r.tobytes()))
    hit = _RIGS.get(key)
    if hit is None:
        hit = _RIGS[key] = Rig(p, r)
        while len(_RIGS) > 8:
            _RIGS.popitem(last=False)
    else:
        _RIGS.move_to_end(key)
    return hit


def apply(points: np.ndarray, values: Mapping[str, float], reference: np.ndarray | None = None
          ) -> np.ndarray:
    """Deform (478, 3) landmarks so that ``measure(result, reference or points)[k] == values[k]`` for
    every control given and the others stay as they are in ``points``.

    Without ``reference`` the values are changes from ``points`` itself (smile 0.5 = half a smile
    more); with one they are targets relative to it (blink_left 1 closes that eye whatever it was).
    Blink is capped at 1 and jaw_open at the closed mouth.  Returns float64 (478, 3).
    """
    return rig(points, reference).apply(values)
