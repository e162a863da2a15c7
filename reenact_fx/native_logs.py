"""Quiet native libraries: mediapipe's absl/glog lines, TFLite's INFO lines and the pkg_resources
deprecation warning of face-recognition-models, printed on every cold run, are kept off the
terminal unless the user asks for them (``--verbose``).

The absl and TFLite loggers inside mediapipe's wheel write straight to file descriptor 2 from the
graph's own threads (while tracking, not only while loading), and read none of the environment
variables (GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL) that would silence them.  So the program's fd 2
is turned into a pipe read by a small forked filter process that drops those lines and passes every
other byte through; Python's own ``sys.stderr`` keeps writing to the real stderr (progress bars,
messages and tracebacks never go through the filter).  A forked process rather than a thread: when
the program dies hard, whatever native code managed to print still reaches the terminal.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import time
import warnings

# absl / glog lines ("W0000 00:00:1796161361.05 14222 file.cc:114] ..."): info and warnings only,
# errors and fatal lines stay; TFLite's "INFO: ..." lines; absl's banner about its own init.
NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]*\] |INFO: |"
                   rb"WARNING: All log messages before absl::InitializeLog\(\) is called)")

_filter_pid: int | None = None


def quiet_warnings() -> None:
    """Python warnings of dependencies that the user can do nothing about."""
    # face-recognition-models finds its files through pkg_resources (deprecated by setuptools)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                            category=UserWarning)


def _pump(read_fd: int, out_fd: int) -> None:
    """Copy read_fd to out_fd, dropping NOISE lines; a partial line is held back only while it
    could still be one (it starts with I or W), so a native progress line is not delayed."""
    buf = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        buf += chunk
        out = []
        *lines, buf = buf.split(b"\n")
        out += [line + b"\n" for line in lines if not NOISE.match(line)]
        if buf and (buf[:1] not in (b"I", b"W") or len(buf) > 4096):
            out.append(buf)
            buf = b""
        if out:
            _write_all(out_fd, b"".join(out))
    if buf and not NOISE.match(buf):
        _write_all(out_fd, buf)


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass                # the terminal went away: nothing to tell it


def silence(verbose: bool = False) -> None:
    """Filter native log lines off fd 2 for the rest of the process (once; not with verbose)."""
    global _filter_pid
    if verbose or _filter_pid is not None or not hasattr(os, "fork"):
        return
    quiet_warnings()
    try:
        sys.stderr.flush()
        real = os.dup(2)
        r, w = os.pipe()
    except OSError:
        return
    pid = os.fork()
    if pid == 0:                                         # the filter
        try:
            os.close(w)
            for fd in (0, 1):                            # hold no pipe of the program's open
                try:
                    os.close(fd)
                except OSError:
                    pass
            _pump(r, real)
        finally:
            os._exit(0)
    os.close(r)
    os.dup2(w, 2)
    os.close(w)
    os.set_inheritable(2, True)
    # Python's stderr writes to the real one directly (and keeps its isatty for progress bars)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")
    _filter_pid = pid
    atexit.register(_finish, real)


def _finish(real: int) -> None:
    """Close the pipe and wait (briefly) for the filter to pass on the last native lines, so they
    arrive before the shell's prompt."""
    global _filter_pid
    pid, _filter_pid = _filter_pid, None
    if pid is None:
        return
    try:
        sys.stderr.flush()
        os.dup2(real, 2)                                 # closes this end of the pipe
    except OSError:
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.01)


def add_verbose_flag(parser) -> None:
    """``--verbose`` on every (sub)command of an argparse parser."""
    import argparse

    stack = [parser]
    while stack:
        p = stack.pop()
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            p.add_argument("--verbose", action="store_true",
                           help="also show the native libraries' log lines (mediapipe, TFLite)")
        for a in subs:
            stack.extend(a.choices.values())
