"""The rule for a training run's folder, checked before any data is read or any file written:
a folder that holds a run is continued (``resume``) or knowingly replaced (``force``), never
silently overwritten; ``resume`` needs a checkpoint to continue from."""

from __future__ import annotations

import os

from ..errors import ReenactError

# what a run leaves in its folder (names of learning.torchkit's CHECKPOINT and BEST; this module
# must not import torch)
RUN_FILES = ("checkpoint.pt", "best.pt")


def check_run_folder(out: str, *, resume: bool, force: bool = False) -> None:
    out = os.fspath(out)
    if resume:
        path = os.path.join(out, RUN_FILES[0])
        if not os.path.isfile(path):
            raise ReenactError("--resume: no checkpoint to continue from"
                               + ("" if os.path.isdir(out) else " (no such folder)"), path=path,
                               key="out")
        return
    found = [f for f in RUN_FILES if os.path.isfile(os.path.join(out, f))]
    if found and not force:
        raise ReenactError(f"already holds a training run ({', '.join(found)}); --resume "
                           "continues it, --force starts a new one over it", path=out, key="out")
