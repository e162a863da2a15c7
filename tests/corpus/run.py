"""Running corpus cases: in-process (``main(argv)``), as a subprocess with a time and memory limit,
and with a fault injected (SIGTERM / SIGKILL mid-render, two renders to one path, a full disk)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .cases import Case, Ctx, argv_of

TIMEOUT = 120.0            # seconds a subprocess case may take before it counts as a hang
MEMORY = 6 << 30           # address-space limit of a subprocess case (an OOM becomes a MemoryError)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def context(case: Case, media, root: Path, shared_cache: Path) -> Ctx:
    work = root / "cases" / slug(case.name)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return Ctx(media, work, work / "cache" if case.early else shared_cache)


def run_inprocess(argv: list[str]) -> tuple[int, str]:
    """``reenact-fx ARGV`` in this process: (exit code, stderr)."""
    from reenact_fx.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:      # argparse
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException:          # noqa: BLE001 - an escaping exception is the finding
            traceback.print_exc(file=err)
            rc = -1
    return rc, err.getvalue()


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def command(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", "import sys; from reenact_fx.cli import main; sys.exit(main())", *argv]


def _env() -> dict:
    """The subprocess's environment: this one (set PYTHONPATH to measure another checkout)."""
    return dict(os.environ)


def start(argv: list[str], cwd=None) -> subprocess.Popen:
    # cwd: the case's folder, so that `python -c` finds the installed reenact_fx (or PYTHONPATH's)
    # rather than a checkout in the current folder
    return subprocess.Popen(command(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_limits, env=_env(), cwd=cwd or tempfile.gettempdir())


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return -999, (err or "")[-2000:] + f"\n(hang: killed after {timeout:.0f} s)"


def run_subprocess(argv: list[str], timeout: float = TIMEOUT) -> tuple[int, str]:
    return finish(start(argv), timeout)


# ----------------------------------------------------------------------------- faults
def _wait_for_partial(folder: Path, proc: subprocess.Popen, limit: float = 90.0) -> bool:
    t0 = time.time()
    while time.time() - t0 < limit and proc.poll() is None:
        if any("partial" in p.name for p in folder.iterdir()):
            return True
        time.sleep(0.05)
    return False


def run_fault(case: Case, ctx: Ctx) -> tuple[int, str]:
    argv = argv_of(case, ctx)
    if case.fault in ("sigterm", "sigkill"):
        proc = start(argv)
        if not _wait_for_partial(ctx.out, proc):
            rc, err = finish(proc)
            return rc, err + "\n(fault: the render never started writing)"
        proc.send_signal(signal.SIGTERM if case.fault == "sigterm" else signal.SIGKILL)
        rc, err = finish(proc, 30)
        if case.fault == "sigterm":
            # a clean stop is what a signal should give: count it as a clear error (exit 2 form)
            if rc in (128 + signal.SIGTERM, 130, 143) and "Traceback" not in err:
                return 2, err if "error:" in err else err + "\nreenact-fx: error: interrupted (SIGTERM)"
            return rc, err
        return run_subprocess(argv)               # SIGKILL: a rerun must succeed and sweep
    if case.fault == "concurrent":
        procs = [start(argv) for _ in range(2)]
        results = [finish(p) for p in procs]
        bad = [r for r in results if r[0] != 0]
        if not bad:
            return 0, "".join(r[1] for r in results)
        return bad[0]
    if case.fault == "full_disk":
        full = ctx.work / "full"
        full.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(full)],
                          capture_output=True).returncode:
            return 0, "(skipped: cannot mount a small tmpfs here)"
        try:
            rc, err = run_subprocess(argv)
            leftovers = [p.name for p in full.iterdir()]
            if leftovers and rc != 0:
                err += f"\npartial files left: {leftovers}"
                rc = -2
            return rc, err
        finally:
            subprocess.run(["umount", "-l", str(full)], capture_output=True)
    raise ValueError(case.fault)
