"""ONNX weights of learned components: find them, open them, check them (onnxruntime, no torch).

Sessions use CUDA when onnxruntime-gpu is installed (the ``gpu`` extra, in place of onnxruntime)
and sees a GPU; when it is installed but CUDA cannot start (no GPU, no driver, missing CUDA
libraries), the session runs on the CPU and says so once (a ``RuntimeWarning`` naming the file).  Missing, unreadable, corrupt
or mismatched weights raise :class:`ReenactError` naming the file and the parameter key (e.g.
``freenet.ulc.weights``) the user sets to point elsewhere.
"""

from __future__ import annotations

import os
import sys
import threading
from importlib import resources
from typing import Any, ClassVar, Mapping, Sequence

from ..errors import ReenactError

# A dimension of None (or a string) is free: the batch axis, sequence lengths.
Signature = Mapping[str, Sequence[int | str | None]]


def shipped(package: str, filename: str) -> str:
    """Path of weights shipped as package data: ``<package>/weights/<filename>``."""
    return os.fspath(resources.files(package).joinpath("weights", filename))


def weights_path(value: str, package: str, filename: str) -> str:
    """A component's ``weights`` parameter resolved: "" means the weights shipped with it."""
    return os.path.expanduser(value) if value else shipped(package, filename)


def providers() -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have] \
        or ["CPUExecutionProvider"]


_warned_cpu = False


def _say_cpu_fallback(sess, wanted: list[str], path: str) -> None:
    """onnxruntime falls back to the CPU silently when the CUDA provider fails to load: say it."""
    global _warned_cpu
    if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in sess.get_providers() \
            and not _warned_cpu:
        import warnings

        _warned_cpu = True
        warnings.warn(f"onnxruntime-gpu could not start CUDA for {path}; running on the CPU "
                      "(check the GPU driver and CUDA libraries)", RuntimeWarning, stacklevel=3)


def _check(kind: str, got, want: Signature, path: str, key: str) -> None:
    found = {a.name: a.shape for a in got}
    if set(found) != set(want):
        raise ReenactError(f"these weights do not fit this component: {kind}s "
                           f"{sorted(found)}, expected {sorted(want)}", path=path, key=key)
    for name, dims in want.items():
        have = found[name]
        ok = len(have) == len(dims) and all(
            d is None or isinstance(d, str) or not isinstance(h, int) or h == d
            for h, d in zip(have, dims))
        if not ok:
            raise ReenactError(f"these weights do not fit this component: {kind} '{name}' has shape "
                               f"{list(have)}, expected {[d if isinstance(d, int) else 'N' for d in dims]}",
                               path=path, key=key)


_SESSIONS: dict[tuple, Any] = {}    # opened sessions, shared by every component of the process
_SESSIONS_MAX = 8
_sessions_lock = threading.Lock()


def load_session(path: str, *, owner: str, param: str = "weights", inputs: Signature | None = None,
                 outputs: Signature | None = None, threads: int | None = None):
    """An onnxruntime InferenceSession of ``path``, checked against the expected input and output
    names and shapes.  ``owner``/``param`` name the parameter in errors: ``freenet.ulc.weights``.

    Opened once per process: every later analysis (a service's clips, a batch's jobs) gets the same
    session (``run`` may be called from several threads), until the file changes (size or
    modification time) or it drops out of the last few used."""
    key = f"{owner}.{param}"
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReenactError("weights file not found (set the parameter to an ONNX file made by "
                           "`reenact-fx export`, or leave it empty for the shipped weights)",
                           path=path, key=key)
    st = os.stat(path)
    cache_key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, threads,
                 repr(sorted((inputs or {}).items())), repr(sorted((outputs or {}).items())))
    with _sessions_lock:
        sess = _SESSIONS.pop(cache_key, None)
        if sess is None:
            sess = _open(path, key, inputs, outputs, threads)
        _SESSIONS[cache_key] = sess       # the most recently used last
        while len(_SESSIONS) > _SESSIONS_MAX:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        return sess


def _open(path: str, key: str, inputs, outputs, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        wanted = providers()
        sess = ort.InferenceSession(path, sess_options=opts, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own (Fail, InvalidProtobuf, ...) for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReenactError(f"not readable as ONNX weights ({first[:200]})", path=path,
                           key=key) from None
    _say_cpu_fallback(sess, wanted, path)
    if inputs is not None:
        _check("input", sess.get_inputs(), inputs, path, key)
    if outputs is not None:
        _check("output", sess.get_outputs(), outputs, path, key)
    return sess


class OnnxWeights:
    """Mixin for a learned component: its ``weights`` parameter ("" = ``weights/<weights_file>``
    shipped in the component's own package) opened once, on first use from any thread, and checked
    against ``signature`` (``{"inputs": Signature, "outputs": Signature}``)."""

    weights_file: ClassVar[str] = ""
    signature: ClassVar[Mapping[str, Signature]] = {}
    _session_lock = threading.Lock()   # guards the first open only: a session is opened once

    def session(self) -> Any:
        with self._session_lock:
            sess = self.__dict__.get("_session")
            if sess is None:
                # the weights/ folder of the package the component's module belongs to
                module = sys.modules[type(self).__module__]
                package = module.__package__ or type(self).__module__
                path = weights_path(self.p["weights"], package, self.weights_file)
                sess = self._session = load_session(path, owner=self.name, **self.signature)
            return sess
