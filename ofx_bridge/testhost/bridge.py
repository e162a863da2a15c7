"""Helpers shared by the bridge tests and bench: build the bridge, find the service program."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "ofx_bridge"
BUILD = BRIDGE / "build"
BUNDLE = BUILD / "ReenactFX.ofx.bundle"


def build() -> str | None:
    """Build the bridge (make -C ofx_bridge); None when it is built, else why it cannot be."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc or not shutil.which("make"):
        return "no C compiler or make on PATH: the bridge cannot be built"
    proc = subprocess.run(["make", "-s", "-C", str(BRIDGE), f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"make -C ofx_bridge failed:\n{proc.stdout}\n{proc.stderr}")
    return None


def serve_program() -> str:
    """The reenact-fx program of this interpreter's environment (what the plugin should start)."""
    exe = Path(sys.executable).parent / "reenact-fx"
    return str(exe) if exe.exists() else (shutil.which("reenact-fx") or str(exe))
