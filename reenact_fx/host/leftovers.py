"""What crashed peers leave behind, removed by the service: shared-memory frames of host processes
that died (``/dev/shm/reenactfx-{c,py}-PID-...``: the C and Python clients put their pid in the
name) and half-written uploads of a service that was killed (``.upload.PID....partial.*``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .protocol import SHM_DIR

_SHM = re.compile(r"^reenactfx-(?:c|py)-(\d+)-")
_UPLOAD = re.compile(r"^\.upload\.(\d+)\..*\.partial\.(?:png|mkv)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True    # someone else's live process
    return True


def _sweep(folder: str | Path, pattern: re.Pattern) -> list[str]:
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = pattern.match(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def sweep_shm(folder: str = SHM_DIR) -> list[str]:
    """Remove the shared-memory frames of dead client processes; returns their names."""
    return _sweep(folder, _SHM)


def sweep_uploads(folder: str | Path) -> list[str]:
    """Remove partial uploads written by a service process that is gone."""
    return _sweep(folder, _UPLOAD)
