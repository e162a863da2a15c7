"""Versioned dataset files: typed arrays plus a JSON header in one ``.npz``, written atomically and
read without pickle.  The landmark and image datasets share this format."""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Mapping

import numpy as np

from ..errors import ReenactError


def write(path: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """Write ``arrays`` and ``meta`` to ``path`` (``.npz`` appended if missing); returns the path."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, meta=np.array(json.dumps(dict(meta))), **arrays)
    os.replace(tmp, path)
    return path


def read(path: str, types: Mapping[str, Any], *, what: str, version: int, missing: str = "",
         kind: str | None = None, wrong_kind: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a file written by :func:`write`; each array of ``types`` cast to its type.
    A missing, corrupt, newer-than-``version`` or (with ``kind``) other-kind file raises
    ReenactError naming it and ``what`` it should be."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReenactError(f"no such {what}{missing}", path=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if kind is not None and meta.get("kind") != kind:
                raise ReenactError(wrong_kind or f"not a {what}", path=path)
            if int(meta["version"]) > version:
                raise ReenactError(f"{what} version {meta['version']} is newer than this "
                                   f"reenact-fx reads ({version}); upgrade reenact-fx", path=path)
            arrays = {k: np.asarray(z[k], t) for k, t in types.items()}
    except ReenactError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise ReenactError(f"not a readable {what} ({type(exc).__name__}: {exc})",
                           path=path) from None
    return meta, arrays
