"""FReeNet's two stages: converter ``freenet.ulc`` (here) and generator ``freenet.gag``
(``generator.py``), both run through onnxruntime.

Converter ``freenet.ulc``: FReeNet's unified landmark converter.

Two landmark encoders (the target's reference landmarks; the driver's landmarks, as motion from the
driver's reference frame) and a shift decoder give ``l̂ = l_T,r + shift``: the driver's expression on
the target's face shape.  Landmarks: the full 478-point mesh (with irises) in the canonical frame of
``reenact_fx.face.canonical``; head pose is placed by ``learning.posing`` like ``delta``.
Model and training: ``model.py``, ``train.py``; shipped weights: ``WEIGHTS.md``.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import (Converter, ConvertInput, Param, Trainable, canonical, hookimpl, posing,
                            runtime)

SHAPE = (None, 478, 3)
INPUTS = {"target_ref": SHAPE, "driver": SHAPE, "driver_ref": SHAPE}
OUTPUTS = {"landmarks": SHAPE}


class FReeNetULC(runtime.OnnxWeights, Trainable, Converter):
    name = "freenet.ulc"
    version = "1.0"
    summary = ("FReeNet's unified landmark converter (learned; two landmark encoders + shift "
               "decoder, l = l_T,r + shift) on the full 478-point mesh, through onnxruntime")
    weights_file = "ulc.onnx"
    signature = {"inputs": INPUTS, "outputs": OUTPUTS}
    params = (
        *posing.PARAMS,
        Param("weights", "str", "", "ONNX weights from `reenact-fx export freenet.ulc` (empty: the "
              "shipped ones, trained on the shared talking-head faces); inputs target_ref, driver, "
              "driver_ref, output landmarks, each (N, 478, 3) canonical"),
    )

    @classmethod
    def training(cls):
        from . import train  # torch: the train extra
        return train

    def convert(self, x: ConvertInput) -> np.ndarray:
        n = len(x.driver)
        t_ref = canonical.normalize(x.target_ref)[0]
        d_ref = canonical.normalize(x.driver_ref)[0]
        drv = canonical.normalize(x.driver)[0]
        out = self.session().run(["landmarks"], {
            "target_ref": np.repeat(t_ref[None], n, 0), "driver": drv,
            "driver_ref": np.repeat(d_ref[None], n, 0)})[0]
        shapes = t_ref + self.p["expression"] * (out - t_ref)
        return posing.place(shapes, x, pose=self.p["pose"], pose_source=self.p["pose_source"])


@hookimpl
def reenact_fx_components():
    from .generator import FReeNetGAG

    return [FReeNetULC, FReeNetGAG]
