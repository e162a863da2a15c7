"""The plugin API: everything a reenact-fx plugin may import from the core, and nothing else.

A plugin is a plain module registered under the ``reenact_fx`` entry-point group whose
``@hookimpl def reenact_fx_components()`` returns component classes (subclasses of
:class:`Converter`, :class:`Generator`, :class:`Smoother` or :class:`Mixer`).  Plugins import from
this module (and, in their torch training code only, from :mod:`reenact_fx.api.training`); the
import-boundary test in ``tests/test_plugin_api.py`` enforces it, and no plugin imports another.

``API_VERSION`` follows semantic versioning: a minor bump adds names, a major bump changes or
removes one (1.2 added ``Converter.lookahead`` and ``Smoother.lookahead``: how far ahead a
component reads, so that a render can start before the driver is tracked to its end).  Rendering needs numpy and onnxruntime only; nothing here imports torch.

The helper modules re-exported here are part of the API as namespaces:

- ``geometry``: landmark index tables (``LIPS_INNER``, ``FACE_OVAL``, ...), the mesh
  triangulation, the one similarity fit (``umeyama``) and small point helpers;
- ``canonical``: the canonical landmark frame every learned method works in;
- ``posing``: head-pose placement and its shared ``expression``/``pose``/``pose_source`` params;
- ``controls``: the twelve interpretable expression controls (measure and apply);
- ``runtime``: checked onnxruntime sessions (:class:`OnnxWeights`) for shipped or user weights;
- ``facecrops``: canonical face crops, FReeNet's landmark image, FACEGAN's heatmap;
- ``generation``: a learned generator's way into its model crop and back.
"""

from __future__ import annotations

from ..face import controls, geometry
from ..components import (Component, ConvertInput, Converter, GenerateInput, GenerateOutput,
                          Generator, MixOutput, Mixer, Smoother, Trainable)
from ..face.crop import SquareCrop
from ..errors import FaceError, MediaError, ParamError, PluginError, ReenactError
from ..hookspecs import hookimpl
from ..face import canonical, posing
from ..learning import facecrops, generation, runtime
from ..learning.runtime import OnnxWeights
from ..params import Param
from ..sequences import runs

API_VERSION = "1.2"

__all__ = [
    "API_VERSION",
    # the contract
    "hookimpl", "Component", "Converter", "Generator", "Smoother", "Mixer", "Param", "Trainable",
    # what components see and return
    "ConvertInput", "GenerateInput", "GenerateOutput", "MixOutput", "SquareCrop",
    # errors a component raises
    "ReenactError", "FaceError", "MediaError", "ParamError", "PluginError",
    # helpers
    "geometry", "canonical", "posing", "controls", "runtime", "OnnxWeights", "runs",
    # learned image components: canonical face crops, landmark pictures, crop in/out
    "facecrops", "generation",
]
