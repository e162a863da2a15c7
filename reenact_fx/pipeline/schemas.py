"""The core's own parameter schemas (tracking, effect, output) and the rule that routes settings.

A settings mapping is ``{owner: {param: value}}`` where an owner is a core stage (``tracking``,
``effect``, ``output``), a component's name (``delta``) or a component kind (``converter``); a
component's values are its kind's overridden by its name's.  Presets, the CLI, the effect and the
render service all route settings through :func:`component_values`, so the rule exists once.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..face.tracking import TRACKING
from ..params import Param, Schema

EFFECT = Schema("effect", (
    Param("reference", "choice", "first", "the driver's reference (rest) frame that its motion is "
          "measured from: the first frame with a face, the most neutral one (mouth closed, eyes "
          "open), or the frame given by reference_frame", choices=("first", "neutral", "frame")),
    Param("reference_frame", "int", 0, "driver frame used when reference=frame", 0, None),
    Param("crop_size", "int", 768, "largest size in pixels of the aligned face crop the face is "
          "generated in; a face whose crop is smaller is generated at the frame's own resolution, "
          "a larger one is shrunk to this (faster, softer)", 128, 2048),
    Param("crop_margin", "float", 2.0, "crop side relative to the face's extent (the generator's "
          "anchor ring must fit inside)", 1.6, 4.0),
))

OUTPUT = Schema("output", (
    Param("codec", "choice", "h264", "video codec of the rendered file",
          choices=("h264", "prores", "prores4444", "dnxhr", "ffv1", "png")),
    Param("audio", "choice", "driver", "audio track of the rendered file: the driver's (its speech "
          "goes with the mouth), the target's, or none", choices=("driver", "target", "none")),
    Param("alpha", "bool", False, "write the face matte as alpha (needs prores4444 or png)"),
))

CORE_SCHEMAS = {s.owner: s for s in (TRACKING, EFFECT, OUTPUT)}


def component_values(params: Mapping[str, Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The values for component ``name`` of ``kind``: addressed by kind, overridden by name."""
    return {**params.get(kind, {}), **params.get(name, {})}
