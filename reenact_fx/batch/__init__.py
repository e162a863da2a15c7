"""Headless batch rendering of the reenact-fx effects of an OpenTimelineIO timeline.

    schema     the effect on an OTIO clip (``effect_name: reenact_fx``, ``metadata["reenact_fx"]``)
    timeline   reading a timeline (any installed adapter) and mapping clips to frame-exact jobs
    jobs       jobs, their content keys and the journal that makes a batch resumable
    work       what a worker runs: analyse, render a job or a frame chunk, join chunks
    executors  a local process pool (default) or Ray (local or an existing cluster)
    runner     the driver: schedule, progress, report, relink
    relink     the relinked timeline (input format and .otio)
    annotate   add a reenact-fx effect to a clip of an existing timeline
    cli        the ``reenact-fx batch`` subcommand

OpenTimelineIO (and Ray, for ``--executor ray``) come with the ``batch`` extra:
``pip install "reenact-fx[batch]"``; rendering itself never needs them.
"""

from __future__ import annotations

from ..errors import ReenactError


class BatchError(ReenactError):
    """A timeline, an effect on it, or a batch folder that cannot be used as it is."""


def require_otio():
    """The opentimelineio module, or a clear error naming the extra that brings it."""
    try:
        import opentimelineio as otio
    except ImportError:
        raise BatchError('batch rendering needs OpenTimelineIO: pip install "reenact-fx[batch]"'
                         ) from None
    return otio
