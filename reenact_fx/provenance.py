"""Every render says it is synthetic: container metadata, an optional signed C2PA manifest, an
optional visible watermark, and ``reenact-fx verify FILE`` to read them back.

- **Container metadata** (always): ``comment`` ("synthetic media: face reenactment made by
  reenact-fx VERSION") and ``reenact_fx``, a JSON record: tool, version, ``synthetic: true``, the
  components, a SHA-256 of the effective settings (``preset_sha256``: the same look gives the same
  hash) and a SHA-256 of every source file.  No clock time, so a render stays byte-for-byte
  reproducible.  A PNG sequence carries the record as ``provenance.json`` beside its frames.
- **C2PA** (``--c2pa-key KEY.pem [--c2pa-cert CHAIN.pem]``, needs ``pip install c2pa-python``; works
  offline): a manifest with a ``c2pa.created`` action whose digital source type is
  ``trainedAlgorithmicMedia``, the record as a ``reenact_fx.provenance`` assertion, signed with the
  user's key and certificate chain (ES256/384/512, PS256, Ed25519 keys).
- **Watermark** (``--watermark [TEXT]``): TEXT (default "SYNTHETIC") drawn in a corner of every frame.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping

import numpy as np

from .errors import ReenactError

KEY = "reenact_fx"
SIDECAR = "provenance.json"
DIGITAL_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_CHUNK = 1 << 20


class ProvenanceError(ReenactError):
    """Provenance cannot be written (signing key, certificate) or read."""


def _version() -> str:
    from . import __version__

    return __version__


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def settings_sha256(settings: Mapping[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record(settings: Mapping[str, Any], sources: Mapping[str, str | None],
           components: Mapping[str, str] | None = None) -> dict:
    """The provenance record of one render (``sources``: role -> file; None roles are skipped)."""
    return {
        "synthetic": True,
        "tool": "reenact-fx",
        "version": _version(),
        "method": "face reenactment",
        "components": dict(components or {}),
        "preset_sha256": settings_sha256(settings),
        "sources": {role: {"file": os.path.basename(p), "sha256": file_sha256(p)}
                    for role, p in sources.items() if p and os.path.isfile(p)},
    }


def container_tags(rec: Mapping[str, Any]) -> dict[str, str]:
    return {"comment": f"synthetic media: face reenactment made by reenact-fx {rec['version']}",
            KEY: json.dumps(rec, sort_keys=True, separators=(",", ":"))}


# ------------------------------------------------------------------------------ watermark
def watermark(rgb: np.ndarray, text: str = "SYNTHETIC") -> np.ndarray:
    """``rgb`` with ``text`` drawn in its lower right corner (in place; returned), legible on any
    background (white on a dark box), sized to the frame."""
    import cv2

    h, w = rgb.shape[:2]
    scale = max(0.35, min(w, h) / 900)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, int(th * 0.4))
    x1, y1 = w - pad, h - pad
    x0, y0 = max(0, x1 - tw - 2 * pad), max(0, y1 - th - base - 2 * pad)
    box = rgb[y0:y1, x0:x1]
    box[...] = (box.astype(np.uint16) * 2 // 5).astype(np.uint8)        # darken behind the text
    cv2.putText(rgb, text, (x0 + pad, y1 - pad - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thick, cv2.LINE_AA)
    return rgb


# ------------------------------------------------------------------------------ C2PA
def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise ProvenanceError("signing a C2PA manifest needs the c2pa-python package: "
                              "pip install c2pa-python") from None
    return c2pa


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as exc:
        raise ProvenanceError(f"cannot read the {what} ({exc.strerror or exc})", path=path) from None
    if b"-----BEGIN" not in data:
        raise ProvenanceError(f"not a PEM file (the {what} must be PEM)", path=path)
    return data


def _split_pem(data: bytes) -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEMs) of a PEM bundle."""
    keys, certs, block = [], [], []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN"):
            block = [line]
        elif block:
            block.append(line)
            if line.startswith(b"-----END"):
                (certs if b"CERTIFICATE" in block[0] else keys).append(b"".join(block))
                block = []
    return b"".join(keys), b"".join(certs)


def _algorithm(c2pa, key_pem: bytes, path: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"cannot load the private key ({exc}); an unencrypted PEM key is "
                              "needed", path=path) from None
    A = c2pa.C2paSigningAlg
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: A.ES256, 384: A.ES384, 521: A.ES512}.get(key.curve.key_size)
        return _bad_key(path) if alg is None else alg      # (ES256 is 0: no `or` here)
    if isinstance(key, rsa.RSAPrivateKey):
        return A.PS256
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return A.ED25519
    return _bad_key(path)


def _bad_key(path):
    raise ProvenanceError("unsupported key type; use an EC (P-256/384/521), RSA or Ed25519 key",
                          path=path)


def check_signing(key_path: str, cert_path: str | None = None) -> tuple[Any, bytes, bytes]:
    """(algorithm, certificate chain, key) ready to sign, checked before a render starts."""
    c2pa = _c2pa()
    key_pem, certs = _split_pem(_read_pem(key_path, "C2PA signing key"))
    if cert_path:
        certs = _split_pem(_read_pem(cert_path, "C2PA certificate chain"))[1]
    if not key_pem:
        raise ProvenanceError("holds no private key", path=key_path)
    if not certs:
        raise ProvenanceError("no certificate chain: give --c2pa-cert CHAIN.pem (the signing "
                              "certificate first, then its issuers), or put it in the key file",
                              path=cert_path or key_path)
    return _algorithm(c2pa, key_pem, key_path), certs, key_pem


def sign_c2pa(path: str, rec: Mapping[str, Any], key_path: str, cert_path: str | None = None) -> None:
    """Embed a signed C2PA manifest in the video at ``path`` (replaced atomically)."""
    c2pa = _c2pa()
    alg, certs, key_pem = check_signing(key_path, cert_path)
    manifest = {
        "claim_generator_info": [{"name": "reenact-fx", "version": rec["version"]}],
        "title": os.path.basename(path),
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE,
                 "softwareAgent": f"reenact-fx {rec['version']}"}]}},
            {"label": "reenact_fx.provenance", "data": dict(rec)},
        ],
    }
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.c2pa-{os.getpid()}{os.path.splitext(name)[1]}")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, certs, key_pem, None))
        builder = c2pa.Builder(json.dumps(manifest))
        builder.sign_file(path, tmp, signer)
        os.replace(tmp, path)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {exc}", path=path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------ reading back
def read(path: str) -> dict:
    """What ``path`` says about itself: {"file", "metadata": record or None, "comment",
    "c2pa": {"state", "manifest"} or None or {"error"}}."""
    path = os.fspath(path)
    out: dict[str, Any] = {"file": path, "metadata": None, "comment": None, "c2pa": None}
    if os.path.isdir(path):
        side = os.path.join(path, SIDECAR)
        if os.path.isfile(side):
            try:
                with open(side, encoding="utf-8") as f:
                    out["metadata"] = json.load(f)
            except (OSError, ValueError) as exc:
                out["metadata_error"] = str(exc)
        return out
    if not os.path.isfile(path):
        raise ProvenanceError("file not found", path=path)
    import av

    try:
        with av.open(path, metadata_errors="ignore") as c:
            tags = {k.lower(): v for k, v in c.metadata.items()}
    except av.error.FFmpegError as exc:
        raise ProvenanceError(f"cannot be read as media ({getattr(exc, 'strerror', exc)})",
                              path=path) from None
    out["comment"] = tags.get("comment")
    if KEY in tags:
        try:
            out["metadata"] = json.loads(tags[KEY])
        except ValueError:
            out["metadata_error"] = "the reenact_fx tag is not JSON"
    try:
        import c2pa
    except ImportError:
        out["c2pa"] = {"error": "c2pa-python is not installed (pip install c2pa-python)"}
        return out
    try:
        reader = c2pa.Reader(path)
    except Exception as exc:  # c2pa raises its own errors for "no manifest" too
        text = str(exc)
        out["c2pa"] = None if "ManifestNotFound" in text or "no JUMBF" in text.lower() \
            or "not found" in text.lower() else {"error": text[:300]}
        return out
    try:
        manifest = json.loads(reader.json())
        out["c2pa"] = {"state": reader.get_validation_state(), "manifest": manifest}
    finally:
        reader.close()
    return out


def summary(info: Mapping[str, Any]) -> tuple[str, bool]:
    """(text for the terminal, whether the file declares itself synthetic)."""
    lines = [f"{info['file']}:"]
    rec = info.get("metadata")
    synthetic = bool(rec and rec.get("synthetic"))
    if rec:
        lines.append(f"  made by {rec.get('tool')} {rec.get('version')} ({rec.get('method', '?')}); "
                     f"synthetic: {rec.get('synthetic')}")
        if rec.get("components"):
            lines.append("  components: " + ", ".join(f"{k} {v}" for k, v in rec["components"].items()))
        lines.append(f"  settings sha256: {rec.get('preset_sha256')}")
        for role, s in (rec.get("sources") or {}).items():
            lines.append(f"  {role}: {s.get('file')} sha256 {s.get('sha256')}")
    else:
        lines.append("  no reenact-fx provenance metadata")
    c = info.get("c2pa")
    if c is None:
        lines.append("  C2PA: no manifest")
    elif "error" in c:
        lines.append(f"  C2PA: {c['error']}")
    else:
        m = c["manifest"]
        active = m.get("manifests", {}).get(m.get("active_manifest"), {})
        gen = ", ".join(f"{g.get('name')} {g.get('version')}" for g in active.get("claim_generator_info", []))
        lines.append(f"  C2PA: {c['state']} manifest by {gen or '?'}")
        synthetic = synthetic or DIGITAL_SOURCE in json.dumps(active)
    return "\n".join(lines), synthetic
