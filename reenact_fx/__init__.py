"""reenact-fx: face reenactment as a video effect.

The core is host-agnostic and imports no plugin: components arrive through the ``reenact_fx``
entry-point group (see :mod:`reenact_fx.hookspecs`).
"""

from .errors import FaceError, MediaError, ParamError, PluginError, ReenactError

__version__ = "0.1.0"

__all__ = ["Effect", "FaceError", "MediaError", "ParamError", "PluginError", "ReenactError",
           "__version__"]


def __getattr__(name):  # Effect pulls in mediapipe and PyAV: import it only when asked for
    if name == "Effect":
        from .pipeline.effect import Effect
        return Effect
    raise AttributeError(name)
