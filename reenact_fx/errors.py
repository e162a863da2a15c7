"""Errors a user can act on: each names the file, and where known the frame and the key at fault."""

from __future__ import annotations

import difflib


class ReenactError(Exception):
    """Base of every error reenact-fx raises on purpose (the CLI prints these without a traceback)."""

    def __init__(self, message: str, *, path: str | None = None, frame: int | None = None,
                 key: str | None = None):
        self.path, self.frame, self.key = path, frame, key
        where = []
        if path is not None:
            where.append(str(path))
        if frame is not None:
            where.append(f"frame {frame}")
        if key is not None:
            where.append(f"key '{key}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.message = message


class MediaError(ReenactError):
    """A file cannot be read or written as media (missing, empty, corrupt, truncated, unsupported)."""


class FaceError(ReenactError):
    """No usable human face where one is required."""


class ParamError(ReenactError):
    """A parameter name or value does not fit a component's schema."""


class PluginError(ReenactError):
    """A component is unknown, failed to load, or broke its contract."""


def did_you_mean(word: object, choices) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices`` to a misspelt ``word``, else ''."""
    near = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""
