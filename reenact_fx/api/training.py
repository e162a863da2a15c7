"""The plugin API for training code: torch-side helpers a learned plugin's ``train.py`` may use.

Importing this module imports torch (the ``train`` extra); render-time plugin code must import
:mod:`reenact_fx.api` only.  Versioned with :data:`reenact_fx.api.API_VERSION`.
"""

from __future__ import annotations

from ..learning import dataset
from ..learning.dataset import LandmarkDataset, synthetic_identity
from ..learning.layers import DIM, N_POINTS, Standardise, mlp
from ..learning.pairs import PairBatch, PairSampler, motions, training_set, validation_batch
from ..learning.torchkit import Trainer, export_onnx, load_checkpoint, seed_all, tensor
from ..learning import facecrops, imagekit, labels
from ..learning.facecrops import LANDMARK_SIZE
from ..learning.image_data import (ImageDataset, ImagePairs, build_images, cached_images,
                                   into_reference)
from ..learning.imagekit import (ImageRun, PatchGAN, ResBlock, UNet, Up, VGGFeatures, conv,
                                 gan_loss, start_from)

__all__ = [
    "dataset", "LandmarkDataset", "synthetic_identity",
    "PairBatch", "PairSampler", "motions", "training_set", "validation_batch",
    "DIM", "N_POINTS", "Standardise", "mlp",
    "Trainer", "export_onnx", "load_checkpoint", "seed_all", "tensor",
    # learned image components
    "facecrops", "imagekit", "labels", "LANDMARK_SIZE", "ImageDataset", "ImagePairs",
    "build_images", "cached_images", "into_reference", "ImageRun", "PatchGAN", "ResBlock", "UNet", "Up", "VGGFeatures",
    "conv", "gan_loss", "start_from",
]
