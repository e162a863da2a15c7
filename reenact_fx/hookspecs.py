"""The one plugin contract.

A plugin is a plain module registered under the ``reenact_fx`` entry-point group that implements
``reenact_fx_components``; it returns component classes (see :mod:`reenact_fx.components`).
"""

from __future__ import annotations

import pluggy

PROJECT = "reenact_fx"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def reenact_fx_components() -> list[type]:
    """Return the component classes this plugin provides.

    Each is a subclass of one of Converter, Generator, Smoother or Mixer and declares ``name``,
    ``version``, ``summary`` and ``params`` (a tuple of :class:`reenact_fx.params.Param`).
    """
