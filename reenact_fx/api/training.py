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

__all__ = [
    "dataset", "LandmarkDataset", "synthetic_identity",
    "PairBatch", "PairSampler", "motions", "training_set", "validation_batch",
    "DIM", "N_POINTS", "Standardise", "mlp",
    "Trainer", "export_onnx", "load_checkpoint", "seed_all", "tensor",
]
