"""FACEGAN's image stages, run through onnxruntime: generator ``facegan.reenactor`` and mixer
``facegan.bgmix``.

``facegan.reenactor``: the target crop goes into the model's canonical crop
(``learning.generation``), the converted landmarks become FACEGAN's Gaussian heatmap, and the U-Net
returns the reenacted face and its face / hair / background segmentation; the mask handed on is
the segmentation's face (or face and hair) probability, within the face's old and new oval grown a
little.

``facegan.bgmix``: behind any generator.  The generator's crop is cut by its mask into the face
I'_f, the target crop with that region removed is the background I_b, and the mixer predicts I_c
and M; the frame gets ``M * I_c + (1 - M) * I_b``.  The network runs at its own size (128) on the
effect's crop; inside the generator's mask its full-resolution pixels are kept, with the mixer's
colour correction (I_c - I'_f, low frequency) added, so the face loses no detail to the mixer.
Model and training: ``image_model.py``, ``reenactor_train.py``, ``bgmix_train.py``; shipped weights:
``WEIGHTS.md``.
"""

from __future__ import annotations

import cv2
import numpy as np

from reenact_fx.api import (GenerateInput, GenerateOutput, Generator, Mixer, MixOutput, Param,
                            SquareCrop, Trainable, facecrops, generation, runtime)

IMAGE = (None, 3, None, None)
PLANE = (None, 1, None, None)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


class FaceganReenactor(runtime.OnnxWeights, Trainable, Generator):
    name = "facegan.reenactor"
    version = "1.0"
    summary = ("FACEGAN's face reenactor (learned; U-Net on the target image + Gaussian landmark "
               "heatmap, with a face/hair/background segmentation head) in a canonical face crop, "
               "through onnxruntime")
    weights_file = "reenactor.onnx"
    signature = {"inputs": {"image": IMAGE, "heatmap": PLANE},
                 "outputs": {"generated": IMAGE, "segmentation": IMAGE}}
    params = (
        Param("weights", "str", "", "ONNX weights from `reenact-fx export facegan.reenactor` "
              "(empty: the shipped ones, 128 px, trained on the shared faces); inputs image "
              "(N, 3, S, S) in [-1, 1] and heatmap (N, 1, S, S), outputs generated (N, 3, S, S) "
              "and segmentation logits (N, 3, S, S)"),
        Param("mask", "choice", "face", "what of the reenacted crop is used: face (the "
              "segmentation's face), face_hair (face and hair: the hair follows the head), oval "
              "(the mesh's face oval, as freenet.gag)", choices=("face", "face_hair", "oval")),
    )

    @classmethod
    def training(cls):
        from . import reenactor_train  # torch: the train extra
        return reenactor_train

    def generate(self, x: GenerateInput) -> GenerateOutput:
        sess = self.session()
        s = generation.model_size(sess)
        mc = generation.into_model(x.image, x.src, x.dst, s)
        rgb, seg = sess.run(["generated", "segmentation"], {
            "image": facecrops.to_net(mc.image),
            "heatmap": facecrops.heatmap(mc.dst, s)[None, None]})
        image, cov = generation.out_of_model(facecrops.from_net(rgb)[0], mc, x.image)
        size = x.image.shape[0]
        oval = generation.face_region(x.src, x.dst, size)
        if self.p["mask"] == "oval":
            return GenerateOutput(image, (oval * cov).astype(np.float32))
        p = _softmax(seg[0])
        prob = p[1] + (p[2] if self.p["mask"] == "face_hair" else 0.0)
        prob = facecrops.uncut(prob.astype(np.float32), mc.affine, size, size)
        if self.p["mask"] == "face":   # the segmentation decides, near the face's ovals only
            near = cv2.dilate(oval, np.ones((max(3, size // 16) | 1,) * 2, np.uint8))
            prob = prob * near
        return GenerateOutput(image, np.clip(prob * cov, 0, 1).astype(np.float32),
                              extra={"segmentation": prob})


class FaceganBgMix(runtime.OnnxWeights, Trainable, Mixer):
    name = "facegan.bgmix"
    version = "1.0"
    summary = ("FACEGAN's background mixer (learned; predicts I_c and a mask M, output "
               "M * I_c + (1 - M) * I_b) behind any generator, through onnxruntime")
    weights_file = "bgmix.onnx"
    signature = {"inputs": {"face": IMAGE, "background": IMAGE, "mask": PLANE},
                 "outputs": {"mixed": IMAGE, "colour": IMAGE, "alpha": PLANE}}
    params = (
        Param("weights", "str", "", "ONNX weights from `reenact-fx export facegan.bgmix` (empty: "
              "the shipped ones, 128 px, trained on the shared faces); inputs face, background "
              "(N, 3, S, S) in [-1, 1] and mask (N, 1, S, S), outputs mixed, colour (N, 3, S, S) "
              "and alpha (N, 1, S, S)"),
        Param("band", "float", 0.03, "how far beyond the generator's mask the mixer may change "
              "the frame, as a fraction of the crop size", 0.0, 0.5),
        Param("color_match", "float", 0.0, "how much of the mixer's colour correction of the "
              "face is applied (0 = none: the shipped mixer's I_c is too coarse inside the face "
              "and veils it)", 0.0, 1.0),
    )

    @classmethod
    def training(cls):
        from . import bgmix_train  # torch: the train extra
        return bgmix_train

    def mix(self, frame: np.ndarray, out: GenerateOutput, crop: SquareCrop) -> MixOutput:
        sess = self.session()
        n = generation.model_size(sess)
        h, w = frame.shape[:2]
        target = crop.cut(frame)
        size = target.shape[0]
        m_full = (out.mask > 0.5).astype(np.float32)

        def small(a, interp=cv2.INTER_AREA):
            return cv2.resize(a, (n, n), interpolation=interp)

        m = small(m_full)
        face = small(out.image).astype(np.float32) * m[..., None]
        bg = small(target).astype(np.float32) * (1 - m[..., None])
        _, colour, alpha = sess.run(["mixed", "colour", "alpha"], {
            "face": facecrops.to_net(face.astype(np.uint8)),
            "background": facecrops.to_net(bg.astype(np.uint8)), "mask": m[None, None]})
        colour = (colour[0].transpose(1, 2, 0) + 1) * 127.5
        # inside the generator's mask: its own pixels plus the mixer's (low-frequency) correction
        fix = cv2.GaussianBlur((colour - face) * m[..., None], (0, 0), 2.0)
        norm = cv2.GaussianBlur(m, (0, 0), 2.0)[..., None]
        fix = np.where(norm > 1e-3, fix / np.maximum(norm, 1e-3), 0.0) * self.p["color_match"]
        up = cv2.resize(fix.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        colour_up = cv2.resize(colour.astype(np.float32), (size, size),
                               interpolation=cv2.INTER_LINEAR)
        soft = cv2.GaussianBlur(m_full, (0, 0), max(1.0, size / 256))[..., None]
        comp = soft * (out.image.astype(np.float32) + up) + (1 - soft) * colour_up
        a = cv2.resize(alpha[0, 0].astype(np.float32), (size, size),
                       interpolation=cv2.INTER_LINEAR)
        # the mixer's own pixels only in a band around the face: the far background stays the
        # frame's (a mask M that has not gone to 0 there would blur it with I_c)
        k = max(3, int(size * self.p["band"])) | 1
        band = cv2.GaussianBlur(cv2.dilate(m_full, np.ones((k, k), np.uint8)), (0, 0), k / 4)
        a = np.clip(np.maximum(a * band, soft[..., 0]), 0.0, 1.0)
        a[a < 1.0 / 512] = 0.0
        comp = np.clip(comp + 0.5, 0, 255).astype(np.uint8)
        alpha_f, box = crop.uncut(a, w, h)
        face_f, _ = crop.uncut(comp, w, h)
        alpha_f = np.clip(alpha_f, 0.0, 1.0)
        x0, y0, x1, y1 = box
        region = frame[y0:y1, x0:x1]
        region[:] = cv2.blendLinear(face_f, region, alpha_f, 1.0 - alpha_f)
        return MixOutput(frame, alpha_f, box)
