"""``reenact-fx doctor``: the checks a user runs before filing a bug.

Each check prints ``ok``, ``warn`` or ``FAIL`` with what it found; the exit code is 1 when any check
failed.  Nothing is downloaded and nothing the user made is changed, except that partial outputs of
dead renders in the cache folder are removed (see ``media.partials``)."""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

Check = tuple[str, str, str]     # (status, item, detail)

FACE_MODELS = ("face_landmark/face_landmark_with_attention.tflite", "face_landmark/face_landmark.tflite",
               "face_detection/face_detection_full_range_sparse.tflite",
               "face_detection/face_detection_short_range.tflite")


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""


def check_face_models() -> Iterator[Check]:
    v = _version("mediapipe")
    if not v:
        yield "FAIL", "mediapipe", "not installed (pip install mediapipe==0.10.21)"
        return
    spec = __import__("importlib.util").util.find_spec("mediapipe")
    root = Path(spec.origin).parent / "modules"
    missing = [m for m in FACE_MODELS if not (root / m).is_file()]
    if missing:
        yield "FAIL", "face models", f"mediapipe {v} carries no {', '.join(missing)} (0.10.21 is the " \
              "last release whose wheel carries its models)"
    else:
        yield "ok", "face models", f"mediapipe {v}: face mesh and face detection models present"
    try:
        import face_recognition_models

        dlib_model = face_recognition_models.cnn_face_detector_model_location()
        ok = os.path.isfile(dlib_model)
    except Exception as exc:   # noqa: BLE001 - report, do not crash the doctor
        ok, dlib_model = False, f"({type(exc).__name__}: {exc})"
    yield ("ok" if ok else "FAIL"), "human-face check", \
        f"dlib CNN face detector {'present' if ok else 'missing'}: {dlib_model}"


def check_codecs() -> Iterator[Check]:
    import av

    from .media import CODECS

    have, missing = [], []
    for name, spec in CODECS.items():
        try:
            av.codec.Codec(spec[0], "w")
            have.append(name)
        except Exception:   # noqa: BLE001
            missing.append(f"{name} ({spec[0]})")
    try:
        av.codec.Codec("aac", "w")
    except Exception:   # noqa: BLE001
        missing.append("aac (audio)")
    yield ("warn" if missing else "ok"), "codecs", f"PyAV {av.__version__}: can write {', '.join(have)}" + \
        (f"; missing: {', '.join(missing)}" if missing else "")


def check_onnxruntime() -> Iterator[Check]:
    try:
        import onnxruntime as ort
    except ImportError:
        yield "warn", "onnxruntime", "not installed: the learned components cannot render"
        return
    both = _version("onnxruntime") and _version("onnxruntime-gpu")
    yield ("warn" if both else "ok"), "onnxruntime", \
        f"{ort.__version__}, providers: {', '.join(ort.get_available_providers())}" + \
        ("; both onnxruntime and onnxruntime-gpu are installed and conflict: uninstall one" if both else "")


def check_plugins() -> Iterator[Check]:
    from .pipeline.registry import default_registry

    reg = default_registry()
    n = len(list(reg.all()))
    yield ("warn" if reg.problems else "ok"), "plugins", f"{n} components" + \
        ("".join(f"; {p}" for p in reg.problems))
    missing = []
    for cls in reg.all():
        wf = getattr(cls, "weights_file", "")
        if wf:
            mod = sys.modules.get(cls.__module__)
            folder = Path(getattr(mod, "__file__", "")).parent / "weights"
            if not (folder / wf).is_file():
                missing.append(f"{cls.name} ({folder / wf})")
    if missing:
        yield "warn", "shipped weights", "missing: " + ", ".join(missing)
    else:
        yield "ok", "shipped weights", "every learned component's weights file is present"


def check_cache(root: str | None = None) -> Iterator[Check]:
    from .media.partials import sweep
    from .pipeline.cache import default_root

    path = Path(root) if root else default_root()
    if not path.exists():
        yield "ok", "cache", f"{path}: not created yet"
        return
    if not os.access(path, os.W_OK | os.X_OK):
        yield "FAIL", "cache", f"{path}: not writable (set --cache-dir or $REENACT_FX_CACHE)"
        return
    files = [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    swept = [n for d in {p.parent for p in files} | {path} for n in sweep(str(d))]
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    status = "warn" if free < 1 << 30 else "ok"
    yield status, "cache", f"{path}: {len(files)} files, {size / 1e6:.1f} MB; {free / 1e9:.1f} GB free" + \
        (f"; removed {len(swept)} partial file(s) of dead renders" if swept else "")


def check_service(path: str | None = None) -> Iterator[Check]:
    from .host.service import default_socket_path

    sock_path = path or default_socket_path()
    if not os.path.exists(sock_path):
        yield "ok", "service", f"{sock_path}: no service running (hosts start it on demand)"
        return
    try:
        from .host.service import Client

        with Client(sock_path, timeout=5) as c:
            h = c.hello
            stats = c.request({"op": "stats"})
        yield "ok", "service", f"{sock_path}: {h.get('server')} (pid {h.get('pid')}, protocol " \
              f"{h.get('protocol')}); {stats.get('clips', 0)} clip(s) in memory"
    except Exception as exc:   # noqa: BLE001
        yield "warn", "service", f"{sock_path}: a socket file but no answer ({exc}); a stale socket " \
              "from a killed service is replaced when the next one starts"


def check_shm() -> Iterator[Check]:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return
    mine = [p for p in shm.glob("reenactfx-*")]
    if mine:
        size = sum(p.stat().st_size for p in mine if p.is_file())
        yield "warn", "shared memory", f"{len(mine)} reenactfx-* file(s) in /dev/shm ({size / 1e6:.1f} MB)" \
              "; a host that crashed may have left them"
    else:
        yield "ok", "shared memory", "no reenactfx-* files left in /dev/shm"


CHECKS: tuple[Callable[[], Iterator[Check]], ...] = (
    check_face_models, check_codecs, check_onnxruntime, check_plugins, check_cache, check_service,
    check_shm)


def run(out=sys.stdout, cache_dir: str | None = None, socket_path: str | None = None) -> int:
    from . import __version__

    print(f"reenact-fx {__version__}, Python {sys.version.split()[0]} on {sys.platform}", file=out)
    failed = False
    for check in CHECKS:
        kwargs = {"root": cache_dir} if check is check_cache else \
            {"path": socket_path} if check is check_service else {}
        try:
            results = list(check(**kwargs))
        except Exception as exc:   # noqa: BLE001 - a broken check is itself a finding
            results = [("FAIL", check.__name__.removeprefix("check_"), f"{type(exc).__name__}: {exc}")]
        for status, item, detail in results:
            failed |= status == "FAIL"
            print(f"{status:<5} {item:<18} {detail}", file=out)
    return 1 if failed else 0
