"""Converter ``ldnet``: LD-Net's landmark disentanglement (Xiang et al. 2020), one-shot.

The driver's landmarks go through the pose/expression encoder ``E_P``, the target's single reference
shape through the identity encoder ``E_I``, and the generator ``G`` recombines them: the driver's
expression on the target's face, for targets never seen in training.  By default (``mode=swap``) the
network's answer is used as a correction of the driver's own motion: ``G(E_P(d), E_I(target)) -
G(E_P(d), E_I(driver))`` is how the same expression looks different on the target's face, and the
generator's reconstruction error, the same in both terms, cancels; with the landmark data at hand that
error is as large as an expression itself, so the paper's absolute form (``mode=absolute``) is
offered but not the default.  Everything happens in the
canonical frame (:mod:`reenact_fx.face.canonical`) on the full 478-point mesh (irises included);
head pose is placed by :mod:`reenact_fx.face.posing`, like ``delta``.  Runs through onnxruntime;
the networks and their training are in ``model.py`` / ``train.py`` (torch, the ``train`` extra), the
shipped weights and how they were made in ``WEIGHTS.md``.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import (Converter, ConvertInput, Param, Trainable, canonical, hookimpl, posing,
                            runtime)

DIM = 478 * 3
WEIGHTS = "ldnet.onnx"
SIGNATURE = {"inputs": {"driver": (None, DIM), "target": (None, DIM)},
             "outputs": {"shape": (None, DIM)}}


class LDNetConverter(runtime.OnnxWeights, Trainable, Converter):
    name = "ldnet"
    version = "1.0"
    summary = ("LD-Net (learned, one-shot): the driver's pose/expression code and the target's "
               "identity code from its reference shape, recombined by a generator; full 478-point mesh")
    weights_file = WEIGHTS
    signature = SIGNATURE
    params = posing.PARAMS + (
        Param("mode", "choice", "swap", "swap: the driver's motion with its identity swapped for the "
              "target's, G(E_P(d), E_I(target)) - G(E_P(d), E_I(driver)) added to it (the generator's "
              "own errors cancel); relative: G's motion away from the driver's reference frame on the "
              "target's reference shape; absolute: G's face as it is (the paper's form); swap and "
              "relative keep the target's rest face exactly", choices=("swap", "relative", "absolute")),
        Param("weights", "str", "", "ONNX weights made by `reenact-fx export ldnet`; empty: the "
              "shipped weights (trained on the landmarks of the shared faces, see WEIGHTS.md)"),
    )

    @classmethod
    def training(cls):
        from . import train  # torch: the train extra
        return train

    def shapes(self, driver: np.ndarray, target: np.ndarray) -> np.ndarray:
        """G(E_P(driver), E_I(target)) for canonical shapes (B, 478, 3) each -> (B, 478, 3)."""
        feed = {"driver": np.ascontiguousarray(driver, np.float32).reshape(-1, DIM),
                "target": np.ascontiguousarray(target, np.float32).reshape(-1, DIM)}
        return self.session().run(None, feed)[0].reshape(-1, 478, 3)

    def convert(self, x: ConvertInput) -> np.ndarray:
        target = canonical.normalize(x.target_ref)[0]
        driver = canonical.normalize(np.concatenate([x.driver, x.driver_ref[None]]))[0]
        mode = self.p["mode"]
        if mode == "swap":   # one batch: every driver frame with the target's and the driver's identity
            both = self.shapes(np.concatenate([driver, driver]),
                               np.concatenate([np.broadcast_to(target, driver.shape),
                                               np.broadcast_to(driver[-1], driver.shape)]))
            made = driver + both[:len(driver)] - both[len(driver):]
        else:
            made = self.shapes(driver, np.broadcast_to(target, driver.shape))
        k = self.p["expression"]
        if mode == "absolute":
            shapes = target + k * (made[:-1] - target)
        else:                # the motion away from the driver's reference frame, on the target
            shapes = target + k * (made[:-1] - made[-1])
        return posing.place(shapes, x, pose=self.p["pose"], pose_source=self.p["pose_source"])


@hookimpl
def reenact_fx_components():
    return [LDNetConverter]
