"""The target's head region: a person matte (hair included), fixed body points and a background plate.

A generator that moves the whole head (``meshwarp``) needs to know what belongs to the moving head
and what must stay: the person matte comes from mediapipe's selfie-segmentation model, the shoulders
from its pose-landmark model (both ship in the 0.10.21 wheel: no download).  Where the moving head
uncovers background it was hiding, the plate shows what was behind it: for a still, the person
removed and the hole filled from the surrounding background (a coarse-to-fine fill, smooth and free
of copied ears); for a video target, the background each pixel shows in the frames where the person
is elsewhere (a median), filled like a still's where the person never leaves.

Everything per clip is computed once at analysis time (``HeadRegion.of_still`` /
``HeadRegion.of_video``); per frame, a video target's matte is a pure function of that frame
(:meth:`HeadRegion.matte_at`), so random access renders stay exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

SEG_SIZE = 256          # the segmentation model's own input is 256 px: no gain above
_local = threading.local()   # one mediapipe graph per thread (graphs are not thread-safe)


def _segmenter():
    seg = getattr(_local, "seg", None)
    if seg is None:
        import mediapipe as mp
        seg = _local.seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    return seg


def person_matte(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the person (hair, neck and clothes included) in an RGB frame."""
    h, w = rgb.shape[:2]
    s = SEG_SIZE / max(h, w)
    small = cv2.resize(rgb, (max(1, int(round(w * s))), max(1, int(round(h * s)))),
                       interpolation=cv2.INTER_AREA) if s < 1 else rgb
    m = _segmenter().process(np.ascontiguousarray(small)).segmentation_mask
    m = np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) if m.shape != (h, w) else m


def body_points(rgb: np.ndarray) -> np.ndarray:
    """(K, 2) pixel points of the body that must not move with the head: the shoulders (mediapipe
    pose landmarks 11 and 12) when found and visible in the frame, else none."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        res = pose.process(np.ascontiguousarray(rgb))
    if res.pose_landmarks is None:
        return np.zeros((0, 2), np.float32)
    lm = res.pose_landmarks.landmark
    pts = [(lm[i].x * w, lm[i].y * h) for i in (11, 12)
           if lm[i].visibility > 0.5 and 0 <= lm[i].x <= 1 and 0 <= lm[i].y <= 1]
    return np.asarray(pts, np.float32).reshape(-1, 2)


def fill_holes(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``rgb`` with the pixels where ``hole`` is True filled from the rest: a pyramid of masked
    averages (push-pull), so large holes get a smooth continuation of their surroundings."""
    img = rgb.astype(np.float32)
    known = (~hole).astype(np.float32)
    levels = []
    a, k = img * known[..., None], known
    while min(a.shape[:2]) > 4:
        levels.append((a, k))
        a = cv2.pyrDown(a)
        k = cv2.pyrDown(k[..., None] if k.ndim == 2 else k)
        if k.ndim == 3:
            k = k[..., 0]
    fill = a / np.maximum(k, 1e-6)[..., None]
    for a, k in reversed(levels):
        up = cv2.resize(fill, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)
        w = np.clip(k * 4.0, 0.0, 1.0)[..., None]   # trust a level where it saw enough pixels
        fill = (a / np.maximum(k, 1e-6)[..., None]) * w + up * (1 - w)
    out = img.copy()
    out[hole] = fill[hole]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    return cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * px + 1,) * 2)) > 0


@dataclass
class HeadRegion:
    """What a whole-head generator needs of one target, at the target's resolution."""

    plate: np.ndarray          # (H, W, 3) uint8 background without the person
    body: np.ndarray           # (K, 2) fixed body points (shoulders), frame pixels
    matte: np.ndarray | None   # (H, W) float32 person matte of a still; None: per frame (video)

    @classmethod
    def of_still(cls, rgb: np.ndarray) -> "HeadRegion":
        m = person_matte(rgb)
        return cls(plate=plate_of_still(rgb, m), body=body_points(rgb), matte=m)

    @classmethod
    def of_video(cls, frames: list[np.ndarray]) -> "HeadRegion":
        """From a few frames sampled over the clip (their mattes give the plate)."""
        mattes = [person_matte(f) for f in frames]
        return cls(plate=plate_of_frames(frames, mattes), body=body_points(frames[0]), matte=None)

    def matte_at(self, rgb: np.ndarray) -> np.ndarray:
        """The person matte of the frame shown (the still's, or this video frame's own)."""
        return self.matte if self.matte is not None else person_matte(rgb)

    def plate_at(self, rgb: np.ndarray, matte: np.ndarray) -> np.ndarray:
        """The background behind the frame shown: a still's plate; for a video frame its own
        background wherever it shows it (a moving camera moves the background too), the clip's
        plate only where this frame's person hides it."""
        if self.matte is not None:
            return self.plate
        grow = max(2, int(round(0.015 * max(rgb.shape[:2]))))
        hole = _grow(matte > 0.2, grow)
        return np.where(hole[..., None], self.plate, rgb)


def plate_of_still(rgb: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """The still without its person: the matte (grown past its soft edge and any halo) filled."""
    grow = max(2, int(round(0.015 * max(rgb.shape[:2]))))
    return fill_holes(rgb, _grow(matte > 0.2, grow))


def plate_of_frames(frames: list[np.ndarray], mattes: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the median of the frames where the person is not there; filled where it always is."""
    grow = max(2, int(round(0.015 * max(frames[0].shape[:2]))))
    stack = np.stack(frames).astype(np.float32)
    free = np.stack([~_grow(m > 0.2, grow) for m in mattes])
    stack[~free] = np.nan
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(stack, axis=0)
    hole = ~free.any(0)
    med = np.where(np.isnan(med), 0, med)
    return fill_holes(np.clip(med + 0.5, 0, 255).astype(np.uint8), hole)
