"""FACEGAN's three stages, run through onnxruntime: converter ``facegan.lt`` (here), generator
``facegan.reenactor`` and mixer ``facegan.bgmix`` (``image_components.py``).

Converter ``facegan.lt``: FACEGAN's landmark transformer.

The driver enters only as 17 AU-like intensities and 3 head-pose angles (``aus.py``: computed from
the expression controls measured on the driver relative to its reference frame), never as
landmarks, so the driver's face shape cannot leak into the result; the transformer turns the
target's reference landmarks and those intensities into a landmark delta.  Because its input is the
controls, they can be edited here: ``--set facegan.lt.smile=0.3`` adds a third of a smile to the
driver's throughout (keyframed edits: ``--controls``).  Landmarks: the full 478-point mesh (with
irises) in the canonical frame of ``reenact_fx.face.canonical``; head pose is placed by
``learning.posing`` like ``delta``.  Model and training: ``model.py``, ``train.py``; shipped weights:
``WEIGHTS.md``.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import (Converter, ConvertInput, Param, Trainable, canonical, controls,
                            hookimpl, posing, runtime)

from .aus import N_AUS, from_controls

SHAPE = (None, 478, 3)
INPUTS = {"target_ref": SHAPE, "aus": (None, N_AUS), "pose": (None, 3)}
OUTPUTS = {"landmarks": SHAPE}
EDITS = tuple(Param(c.name, "float", 0.0, f"added to the driver's {c.name} ({c.unit}): "
                    f"{c.help}", c.lo - c.hi, c.hi - c.lo)
              for c in controls.CONTROLS if c.name in controls.EXPRESSION)


class FaceganLT(runtime.OnnxWeights, Trainable, Converter):
    name = "facegan.lt"
    version = "1.0"
    summary = ("FACEGAN's landmark transformer (learned; target landmarks + 17 AU-like intensities "
               "+ 3 pose angles -> landmark delta) on the full 478-point mesh; expressions "
               "editable through its AU input")
    weights_file = "lt.onnx"
    signature = {"inputs": INPUTS, "outputs": OUTPUTS}
    params = (
        *posing.PARAMS,
        Param("weights", "str", "", "ONNX weights from `reenact-fx export facegan.lt` (empty: the "
              "shipped ones, trained on the shared talking-head faces); inputs target_ref "
              "(N, 478, 3), aus (N, 17), pose (N, 3), output landmarks (N, 478, 3)"),
        *EDITS,
    )

    @classmethod
    def training(cls):
        from . import train  # torch: the train extra
        return train

    def driver_controls(self, x: ConvertInput) -> np.ndarray:
        """(T, 12) controls of the driver relative to its reference, with this component's edits."""
        m = controls.measure(x.driver, x.driver_ref)
        values = np.stack([np.asarray(m[k], np.float32) for k in controls.NAMES], 1)
        for i, k in enumerate(controls.NAMES):
            if k in self.p:
                values[:, i] += self.p[k]
        return values

    def convert(self, x: ConvertInput) -> np.ndarray:
        n = len(x.driver)
        t_ref = canonical.normalize(x.target_ref)[0]
        aus, pose = from_controls(self.driver_controls(x))
        out = self.session().run(["landmarks"], {"target_ref": np.repeat(t_ref[None], n, 0),
                                                 "aus": aus, "pose": pose * self.p["pose"]})[0]
        shapes = t_ref + self.p["expression"] * (out - t_ref)
        return posing.place(shapes, x, pose=self.p["pose"], pose_source=self.p["pose_source"])


@hookimpl
def reenact_fx_components():
    from .image_components import FaceganBgMix, FaceganReenactor

    return [FaceganLT, FaceganReenactor, FaceganBgMix]
