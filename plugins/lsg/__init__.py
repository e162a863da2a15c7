"""Smoother ``lsg``: the fine-grained landmark sequence generator (a Bi-LSTM over in-between frames).

Given two key landmark sets the generator makes the K sets in between as learned shifts over their
linear interpolation (``model.py``).  As a smoother it

- fills face-lost gaps (runs where ``valid`` is False, up to ``max_gap`` seconds, with tracked frames
  on both sides) with generated in-betweens, head motion included (the generator works in the frame of
  the first key: see ``model.py``);
- in ``smooth`` mode also re-predicts every tracked frame as the in-between of the frames 1, 2, ..
  ``span`` before and after it, and blends the mean prediction in with ``strength``: tracker jitter
  is not predictable from the neighbours, motion is;
- :meth:`LSGSmoother.densify` makes a sequence ``factor`` times denser (in-betweens of every pair).

All of it works on the full 478-point mesh and is a pure function of its inputs (onnxruntime, no
randomness).  The shipped weights and how they were made: ``WEIGHTS.md``.

In a render, the tracker has already bridged short face-lost gaps (``tracking.max_gap``, linearly) and
frames without a face pass the target through, so there ``smooth`` mode is what shows; gap filling
serves callers of :meth:`smooth` with their own ``valid`` masks (hosts, dataset tools).
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import Param, Smoother, Trainable, canonical, hookimpl, runs, runtime

DIM = 478 * 3
WEIGHTS = "lsg.onnx"
SIGNATURE = {"inputs": {"keys": (None, 4, DIM), "tau": (None, None)},
             "outputs": {"inbetween": (None, None, DIM)}}


def _apply(sims: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Similarities (B, 3, 4) applied to points (B, ..., 3) (matmul: far quicker than einsum)."""
    ones = (1,) * (points.ndim - 3)
    m = sims[:, :, :3].transpose(0, 2, 1).reshape(len(sims), *ones, 3, 3)
    return points @ m + sims[:, :, 3].reshape(len(sims), *ones, 1, 3)


def _windows(points: np.ndarray, rows: np.ndarray, key: np.ndarray):
    """Landmarks ``points[rows]`` (B, n) of each window in the frame of its key ``points[key]`` (B,):
    (window landmarks (B, n, 478, 3), the keys' canonical -> pixel similarities (B, 3, 4))."""
    sims = canonical.fit(points[key])
    return _apply(sims, points[rows].astype(np.float64)), canonical.invert(sims)


class LSGSmoother(runtime.OnnxWeights, Trainable, Smoother):
    name = "lsg"
    version = "1.0"
    summary = ("LSG (learned): a Bi-LSTM makes in-between landmarks from two keys; fills face-lost "
               "gaps and smooths by re-predicting each frame from its neighbours; full 478-point mesh")
    weights_file = WEIGHTS
    signature = SIGNATURE
    params = (
        Param("mode", "choice", "smooth", "smooth: fill gaps, then blend every frame with its "
              "in-between predicted from the frames around it; fill: only fill gaps",
              choices=("smooth", "fill")),
        Param("strength", "float", 0.6, "smooth mode: weight of the predicted in-between in each "
              "frame (0 = unchanged)", 0.0, 1.0),
        Param("span", "int", 1, "smooth mode: each frame is predicted from the frames 1, 2, .. span "
              "before and after it (the mean of the predictions)", 1, 6),
        Param("max_gap", "float", 1.0, "longest face-lost gap (seconds) filled with generated "
              "in-betweens; longer gaps are left as they are", 0.0, 10.0),
        Param("weights", "str", "", "ONNX weights made by `reenact-fx export lsg`; empty: the shipped "
              "weights (trained on the landmarks of the shared faces, see WEIGHTS.md)"),
    )

    @classmethod
    def training(cls):
        from . import train  # torch: the train extra
        return train

    def inbetween(self, keys: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Canonical keys (B, 4, 478, 3) = [before a, a, b, after b] and positions tau (B, K) ->
        in-between canonical shapes (B, K, 478, 3)."""
        b, k = tau.shape
        out = self.session().run(None, {
            "keys": np.ascontiguousarray(keys, np.float32).reshape(b, 4, DIM),
            "tau": np.ascontiguousarray(tau, np.float32)})[0]
        return out.reshape(b, k, 478, 3)

    # ------------------------------------------------------------------ the smoother
    def smooth(self, points: np.ndarray, valid: np.ndarray, fps: float) -> np.ndarray:
        out = np.array(points, np.float32, copy=True)
        valid = np.asarray(valid, bool)
        if len(out) == 0 or not valid.any():
            return out
        gaps = [(a, b) for a, b in runs(~valid) if a > 0 and b < len(valid)
                and (b - a) / fps <= self.p["max_gap"]]
        for a, b in gaps:                      # keys a - 1 and b, their outer neighbours if tracked
            before = a - 2 if a >= 2 and valid[a - 2] else a - 1
            after = b + 1 if b + 1 < len(valid) and valid[b + 1] else b
            k = b - a
            keys, back = _windows(out, np.array([[before, a - 1, b, after]]), np.array([a - 1]))
            made = self.inbetween(keys, (np.arange(1, k + 1) / (k + 1))[None])
            out[a:b] = _apply(back, made)[0]
        if self.p["mode"] == "smooth" and self.p["strength"] > 0:
            filled = valid.copy()
            for a, b in gaps:
                filled[a:b] = True
            out = self._resmooth(out, filled)
        return out

    def _resmooth(self, out: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Every frame with ``span + 1`` tracked frames on both sides, blended with the mean of the
        in-betweens the generator predicts for it from the frames 1, 2, .. ``span`` away (each
        prediction sees other frames, so their tracker noise averages out)."""
        span = self.p["span"]
        smoothed = out.copy()
        for a, b in runs(valid):
            t = np.arange(a + span + 1, b - span - 1)
            if len(t) == 0:
                continue
            pred = np.zeros((len(t), 478, 3))
            for s in range(1, span + 1):
                k = 2 * s - 1
                tau = np.arange(1, k + 1) / (k + 1)
                rows = np.stack([t - s - 1, t - s, t + s, t + s + 1], 1)
                keys, back = _windows(out, rows, t - s)
                made = self.inbetween(keys, np.broadcast_to(tau, (len(t), k)))[:, s - 1]
                pred += _apply(back, made) / span
            w = self.p["strength"]
            smoothed[t] = ((1 - w) * out[t] + w * pred).astype(np.float32)
        return smoothed

    # ------------------------------------------------------------------ densify
    def densify(self, points: np.ndarray, factor: int) -> np.ndarray:
        """(T, 478, 3) pixel landmarks of tracked frames -> ((T - 1) * factor + 1, 478, 3): the
        ``factor - 1`` generated in-betweens of every pair of neighbours (a frame-rate increase)."""
        points = np.asarray(points, np.float32)
        factor = int(factor)
        if factor < 1:
            raise ValueError(f"factor must be >= 1, found {factor}")
        if factor == 1 or len(points) < 2:
            return points.copy()
        n = len(points) - 1
        i = np.arange(n)
        keys, back = _windows(points, np.stack([np.maximum(i - 1, 0), i, i + 1,
                                                np.minimum(i + 2, n)], 1), i)
        tau = np.arange(1, factor) / factor
        made = _apply(back, self.inbetween(keys, np.broadcast_to(tau, (n, factor - 1))))
        out = np.empty((n * factor + 1, 478, 3), np.float32)
        out[::factor] = points
        for j in range(factor - 1):
            out[j + 1::factor][:n] = made[:, j]
        return out


@hookimpl
def reenact_fx_components():
    return [LSGSmoother]
