"""Temporary outputs that a crash cannot strand.

A render writes to a hidden sibling of its output (``.NAME.partial-TOKEN.EXT``, or a folder for PNG
sequences) and renames it into place when done.  The writing process holds an exclusive ``flock`` on
that partial for as long as it lives; the kernel drops the lock when the process dies, however it
dies (SIGKILL, OOM, power loss of a local disk).  So any later render into the same folder (and
``reenact-fx doctor``) can tell a dead render's partial from a live one and remove it: ``sweep``.
Partials written by reenact-fx versions before the lock (never locked) are removed once they have not
changed for ``OLD_STYLE_AGE`` seconds.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import time

# .NAME.partial-TOKEN[-av][.EXT]: TOKEN is 8 hex digits (the writer's), -av its audio remux
PARTIAL = re.compile(r"^\..+\.partial-(?P<token>[0-9a-f]{8})(?P<lock>L)?(-av)?(\.[A-Za-z0-9]+)?(\.old)?$")
GRACE = 1.0              # s: a partial this young may be between creation and locking
OLD_STYLE_AGE = 600.0    # s: an unlocked old-style partial unchanged this long is a dead render's


class Partial:
    """A new, locked temporary file (or folder) next to ``final``; ``path`` is where to write."""

    def __init__(self, final: str, ext: str = "", *, folder: bool = False, suffix: str = ""):
        parent = os.path.dirname(os.path.abspath(final))
        name = os.path.basename(final.rstrip(os.sep))
        stem = name if folder or not ext else name[: -len(ext)] if name.endswith(ext) else name
        # "L" marks a locked partial (see sweep); the real extension stays last: FFmpeg picks the
        # container by it
        self.path = os.path.join(parent, f".{stem}.partial-{secrets.token_hex(4)}L{suffix}{ext}")
        self.folder = folder
        if folder:
            os.mkdir(self.path)
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def sibling(self, suffix: str, ext: str = "") -> "Partial":
        """Another locked partial next to this one (the audio remux of a video)."""
        root = self.path[: -len(ext)] if ext and self.path.endswith(ext) else self.path
        p = Partial.__new__(Partial)
        p.path, p.folder = f"{root}{suffix}{ext}", False
        p._fd = os.open(p.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(p._fd, fcntl.LOCK_EX)
        return p

    def release(self) -> None:
        """Drop the lock (after the partial was renamed into place or removed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        try:
            if self.folder:
                shutil.rmtree(self.path, ignore_errors=True)
            elif os.path.lexists(self.path):
                os.remove(self.path)
        finally:
            self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass


def _stale(path: str, locked_style: bool, now: float) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    age = now - st.st_mtime
    if age < GRACE:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0) | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False           # a live render holds it
    finally:
        os.close(fd)           # (closing drops the probe's own lock)
    return locked_style or age > OLD_STYLE_AGE


def sweep(folder: str) -> list[str]:
    """Remove the partial outputs of dead renders in ``folder``; returns the names removed."""
    removed = []
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = PARTIAL.match(name)
        if not m:
            continue
        path = os.path.join(folder, name)
        if not _stale(path, bool(m.group("lock")), now):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(name)
        except OSError:
            pass
    return removed
