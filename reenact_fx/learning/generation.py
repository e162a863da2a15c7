"""Render-time plumbing of a learned generator: from the effect's crop into the model's canonical
crop and back (numpy + OpenCV; the network itself runs through onnxruntime).

The effect hands a generator the target crop at its own size with ``src``/``dst`` landmarks in
crop pixels (:class:`GenerateInput`).  :func:`into_model` aligns the target by its *current*
landmarks (``src``: the reference image a self-reenactment pair was trained with) into the model's
square and draws ``dst`` in the same square, as the training pairs do; :func:`out_of_model` brings
the network's output back, blended into the effect's crop where the model's square does not reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import facecrops


def model_size(session) -> int:
    """The crop side an ONNX image model was exported for (its first input's height; a model with
    a free size runs at the CPU default)."""
    size = session.get_inputs()[0].shape[2]
    return int(size) if isinstance(size, int) else facecrops.DEFAULT_SIZE


@dataclass
class ModelCrop:
    affine: np.ndarray      # 2x3 effect crop -> model crop
    image: np.ndarray       # (S, S, 3) uint8 the target in the model's crop
    src: np.ndarray         # (478, 3) target landmarks in the model's crop
    dst: np.ndarray         # (478, 3) driving landmarks in the model's crop
    size: int


def _moved(points: np.ndarray, a: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64).copy()
    p[:, :2] = p[:, :2] @ a[:, :2].T + a[:, 2]
    p[:, 2] *= np.sqrt(abs(np.linalg.det(a[:, :2])))
    return p.astype(np.float32)


def into_model(image: np.ndarray, src: np.ndarray, dst: np.ndarray, size: int) -> ModelCrop:
    a = facecrops.alignment(src, size)
    return ModelCrop(a, facecrops.cut(image, a, size), _moved(src, a), _moved(dst, a), size)


def out_of_model(generated: np.ndarray, mc: ModelCrop, base: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(image, coverage): ``generated`` (model crop, uint8) at ``base``'s size, ``base`` kept
    where the model's square does not reach; coverage (float32) says where it does."""
    h, w = base.shape[:2]
    back = facecrops.uncut(generated, mc.affine, w, h)
    ones = np.ones((mc.size, mc.size), np.float32)
    # shrink by a pixel: the square's resampled edge is half background
    cov = facecrops.uncut(ones, mc.affine, w, h)
    cov = np.clip((cov - 0.5) * 2.0, 0.0, 1.0)
    img = back.astype(np.float32) * cov[..., None] + base.astype(np.float32) * (1 - cov[..., None])
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), cov


def face_region(src: np.ndarray, dst: np.ndarray, size: int, blur: float = 0.0) -> np.ndarray:
    """Where a generated face replaces the target: both the face's old and new oval (the old one,
    so a jaw that moves up leaves no old chin behind)."""
    return np.maximum(facecrops.face_mask(src, size, blur), facecrops.face_mask(dst, size, blur))
