"""Generator ``freenet.gag``: FReeNet's geometry-aware generator, run through onnxruntime.

The target crop is resampled into the model's canonical crop (``learning.generation``), the
converted landmarks are plotted into FReeNet's 64x64 landmark image, and the network reenacts the
target's face from the two; the result goes back into the effect's crop, with the mask covering the
face's old and new oval.  Model and training: ``gag_model.py``, ``gag_train.py``; shipped weights:
``WEIGHTS.md``.
"""

from __future__ import annotations

import numpy as np

from reenact_fx.api import (GenerateInput, GenerateOutput, Generator, Param, Trainable, facecrops,
                            generation, runtime)

IMAGE = (None, 3, None, None)


class FReeNetGAG(runtime.OnnxWeights, Trainable, Generator):
    name = "freenet.gag"
    version = "1.0"
    summary = ("FReeNet's geometry-aware generator (learned; image encoder + landmark encoder + "
               "3 landmark-fed ResBlock stages + decoder) in a canonical face crop, through "
               "onnxruntime")
    weights_file = "gag.onnx"
    signature = {"inputs": {"image": IMAGE, "landmarks": (None, 1, facecrops.LANDMARK_SIZE,
                                                           facecrops.LANDMARK_SIZE)},
                 "outputs": {"generated": IMAGE}}
    params = (
        Param("weights", "str", "", "ONNX weights from `reenact-fx export freenet.gag` (empty: the "
              "shipped ones, 128 px, trained on the shared faces); inputs image (N, 3, S, S) in "
              "[-1, 1] and landmarks (N, 1, 64, 64), output generated (N, 3, S, S)"),
    )

    @classmethod
    def training(cls):
        from . import gag_train  # torch: the train extra
        return gag_train

    def generate(self, x: GenerateInput) -> GenerateOutput:
        s = generation.model_size(self.session())
        mc = generation.into_model(x.image, x.src, x.dst, s)
        lm = facecrops.landmark_image(mc.dst, s)[None, None]
        out = self.session().run(["generated"], {"image": facecrops.to_net(mc.image),
                                                  "landmarks": lm})[0]
        image, cov = generation.out_of_model(facecrops.from_net(out)[0], mc, x.image)
        mask = generation.face_region(x.src, x.dst, x.image.shape[0]) * cov
        return GenerateOutput(image, mask.astype(np.float32))
