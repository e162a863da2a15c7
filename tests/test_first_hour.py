"""A new user's first hour: clean logs, honest help, runs that are not silently overwritten, an
analysis that talks, an install that resolves at once and a README whose commands work as pasted."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reenact_fx import native_logs
from reenact_fx.cli import AUDIO_CHOICES, CODEC_CHOICES, _parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROGRAM = [sys.executable, "-m", "reenact_fx.cli"]


def run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([*PROGRAM, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


# ------------------------------------------------------------------------- native log noise
def test_filter_drops_native_log_lines_and_passes_the_rest():
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    lines = [b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
             b"WARNING: All log messages before absl::InitializeLog() is called are written to "
             b"STDERR\n",
             b"W0000 00:00:1796161360.956645   14223 inference_feedback_manager.cc:114] Feedback "
             b"manager requires a model with a single signature inference.\n",
             b"I0000 00:00:1796161360.9 14 gl_context.cc:369] GL version: 3.2\n",
             b"E0000 00:00:1796161361.0 14 graph.cc:1] a real error\n",     # errors stay
             b"track    [####....] 3/8\r", b"Warning from someone else\n"]
    os.write(w, b"".join(lines))
    os.close(w)
    native_logs._pump(r, out_w)
    os.close(out_w)
    got = os.read(out_r, 65536)
    assert got == lines[4] + lines[5] + lines[6]


def test_a_cold_command_prints_no_native_log_line(astronaut_png, tmp_path):
    """A real cold analyze (empty cache: mediapipe graphs and dlib's detector are loaded) in a
    subprocess, as a user runs it: nothing on stderr but our own lines; --verbose brings the
    native ones back (which shows the check looks at the right stream)."""
    quiet = run("analyze", astronaut_png, "--cache-dir", tmp_path / "c1", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    noise = [ln for ln in quiet.stderr.splitlines()
             if native_logs.NOISE.match(ln.encode()) or "pkg_resources" in ln
             or "Warning" in ln]
    assert not noise, quiet.stderr
    assert "a still" in quiet.stdout
    loud = run("analyze", astronaut_png, "--cache-dir", tmp_path / "c2", "--verbose", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert any(native_logs.NOISE.match(ln.encode()) for ln in loud.stderr.splitlines()), loud.stderr


def test_errors_still_reach_the_user_through_the_filter(tmp_path):
    p = run("analyze", tmp_path / "missing.mp4", cwd=tmp_path)
    assert p.returncode == 2 and "reenact-fx: error:" in p.stderr and "missing.mp4" in p.stderr


# ------------------------------------------------------------------------------ help, version
def test_version_and_help_with_choices():
    p = run("--version")
    assert p.returncode == 0 and re.fullmatch(r"reenact-fx \d+\.\d+\.\d+\s*", p.stdout)
    from reenact_fx.pipeline.schemas import CORE_SCHEMAS

    out = {prm.name: prm for prm in CORE_SCHEMAS["output"].params}
    assert tuple(out["codec"].choices) == CODEC_CHOICES
    assert tuple(out["audio"].choices) == AUDIO_CHOICES
    render_help = _parser()._subparsers._group_actions[0].choices["render"].format_help()
    assert all(c in render_help for c in CODEC_CHOICES) and "--verbose" in render_help


def _help(*path) -> str:
    p = _parser()
    for name in path:
        p = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    return p.format_help()


@pytest.mark.parametrize("path,option", [(("export",), "--checkpoint"), (("train",), "--seed"),
                                         (("train",), "--force"), (("presets", "validate"), "FILE"),
                                         (("analyze",), "--cache-dir"), (("analyze",), "--quiet")])
def test_every_option_has_help(path, option):
    text = _help(*path)
    # the option's line in the help, with the words that follow it (argparse wraps them)
    block = text[text.index(option, text.index("options:") if option.startswith("-")
                            else text.index("positional")):]
    first = block.split("\n")[0] + block.split("\n")[1]
    assert len(re.sub(r"[A-Z_.\-\[\] ,{}]+", "", first.split(option, 1)[1])) > 10, text


def test_pipe_into_head_ends_quietly():
    p = subprocess.run(f"{shlex.join(PROGRAM)} plugins | head -1", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("converters:")
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_progress_rates_are_honest():
    import io
    import time

    from reenact_fx.pipeline.progress import Progress

    cached = Progress("track", 1, stream=io.StringIO())
    cached(1, 1)                         # a cached stage: all at once, no rate to speak of
    assert "- fps" in cached.line() and not re.search(r"\d{4,}\.\d fps", cached.line())
    train = Progress("train", 100, stream=io.StringIO(), unit="steps/s")
    time.sleep(0.06)
    train(3)
    assert "steps/s" in train.line() and " fps" not in train.line()


# ------------------------------------------------------------------------------------ analyze
def test_analyze_progress_quiet_cache_dir_and_units(faces, tmp_path, capsys):
    clip = faces / "driving/d0.mp4"
    cache = tmp_path / "cache"
    assert main(["analyze", str(clip), "--cache-dir", str(cache), "--plot",
                 str(tmp_path / "p.png")]) == 0
    out, err = capsys.readouterr()
    assert "track" in err and "78/78" in err             # a progress line on stderr
    assert any(cache.rglob("*")), "nothing cached in --cache-dir"
    header, *rows = [ln for ln in out.splitlines() if ln.startswith("  ")][:13]
    cols = [header.index(h) + len(h) for h in ("min", "mean", "max")]   # right-aligned columns
    for row in rows:
        nums = [m.end() for m in re.compile(r"-?\d+\.\d\d").finditer(row, cols[0] - 8)][:3]
        assert nums == cols, (header, row)
    assert main(["analyze", str(clip), "--cache-dir", str(cache), "-q", "--plot",
                 str(tmp_path / "p.png")]) == 0
    assert "track" not in capsys.readouterr().err


def test_analyze_explains_a_still(astronaut_png, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", str(astronaut_png), "-q"]) == 0
    out = capsys.readouterr().out
    assert "a still" in out and "no motion" in out
    values = [float(v) for v in re.findall(r"^\s+\w+\s+.*?(-?\d+\.\d\d)$", out, re.M)]
    assert len(values) == 12 and any(abs(v) > 0.05 for v in values)   # not a table of zeros
    assert not list(tmp_path.glob("*.png"))                            # no plot of one point


# -------------------------------------------------------------------------------------- train
def test_train_refuses_to_overwrite_a_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"a 2,100-step run")
    (run_dir / "best.pt").write_bytes(b"its best")
    assert main(["train", "freenet.ulc", "--data", str(tmp_path / "none.npz"), "--out",
                 str(run_dir), "-q"]) == 2
    err = capsys.readouterr().err
    assert "already holds a training run" in err and "--force" in err and "--resume" in err
    assert (run_dir / "checkpoint.pt").read_bytes() == b"a 2,100-step run"
    # --force goes on (here to the missing dataset: the refusal is passed)
    assert main(["train", "freenet.ulc", "--data", str(tmp_path / "none.npz"), "--out",
                 str(run_dir), "-q", "--force"]) == 2
    assert "already holds" not in capsys.readouterr().err


def test_resume_on_a_missing_folder_leaves_nothing(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["train", "freenet.ulc", "--data", str(tmp_path / "none.npz"), "--out",
                 str(missing), "--resume", "-q"]) == 2
    assert "no checkpoint to continue from" in capsys.readouterr().err
    assert not missing.exists()


def test_trainer_makes_its_folder_only_when_it_saves(tmp_path):
    torch = pytest.importorskip("torch")
    from reenact_fx.errors import ReenactError
    from reenact_fx.learning.torchkit import Trainer

    net = torch.nn.Linear(2, 2)
    out = tmp_path / "later"
    t = Trainer("x", out, modules={"n": net}, optimizers={"o": torch.optim.SGD(net.parameters(),
                                                                                  lr=0.1)},
                steps=1, seed=0)
    with pytest.raises(ReenactError):
        t.resume(required=True)
    assert not out.exists()
    t.run(lambda i: {"loss": 1.0})
    assert (out / "checkpoint.pt").is_file()


# ------------------------------------------------------------------------------------ install
def test_dependency_bounds_hold_and_match_this_environment():
    """The bounds that keep pip from backtracking through numpy-2-only releases are there, and the
    environment the tests run in satisfies every bound pyproject.toml states."""
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement

    deps = [Requirement(d) for d in
            tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    by_name = {r.name.lower().replace("_", "-"): r for r in deps}
    for name in ("numpy", "opencv-contrib-python", "jax", "jaxlib", "ml-dtypes"):
        assert any(s.operator in ("<", "<=", "==") for s in by_name[name].specifier), name
    for r in deps:
        assert md.version(r.name) in r.specifier, (r.name, md.version(r.name), str(r.specifier))


# --------------------------------------------------------------------------------- the README
def _sh_lines() -> list[str]:
    """Every command line of the README's sh blocks (continuations joined, comments dropped)."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", "").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


PROGRAMS = {"reenact-fx", "pip", "python", "make", "melt", "ffmpeg", "ffprobe", "export"}


def test_readme_commands_parse_as_pasted():
    """Each README command, split at shell pipes and &&, starts with a real program, and each
    reenact-fx command is one the CLI accepts (a `a | b | c` list of subcommands would not)."""
    for line in _sh_lines():
        for part in re.split(r"\s(?:\||&&)\s", line):
            argv = shlex.split(part)
            while argv and re.match(r"^[A-Z][A-Z0-9_]*=", argv[0]):          # VAR=value prefixes
                argv = argv[1:]
            assert argv and argv[0] in PROGRAMS, f"not a command: {part!r} (in {line!r})"
            if argv[0] == "reenact-fx":
                try:
                    _parser().parse_args(argv[1:])
                except SystemExit:
                    pytest.fail(f"the CLI refuses the README's {part!r}")


def test_readme_outputs_are_ignored_by_git():
    """What the README's commands write in the current folder is in .gitignore."""
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    outputs = set()
    for line in _sh_lines():
        argv = shlex.split(line.split(" | ")[0].split(" && ")[-1])
        if not argv or argv[0] != "reenact-fx":
            continue
        for flag in ("-o", "--out", "--output", "--plot", "--csv", "--preview"):
            if flag in argv[:-1]:
                outputs.add(argv[argv.index(flag) + 1])
        if argv[1] == "analyze":
            outputs.add(Path(argv[2]).stem + ".controls.png")
        if argv[1] == "demo":
            outputs.add(Path(argv[argv.index("-o") + 1]).with_suffix(".png").name)
        if "--preview" in argv:
            outputs.add(Path(argv[argv.index("-o") + 1]).stem + ".preview.mp4")
    outputs = sorted(o for o in outputs if not o.startswith((".", "/")) and not o.startswith("-"))
    assert {"demo.mp4", "faces.npz", "runs/freenet", "ulc.onnx"} <= set(outputs), outputs
    p = subprocess.run(["git", "check-ignore", "--no-index", *outputs], cwd=ROOT,
                       capture_output=True, text=True)
    ignored = set(p.stdout.split())
    assert ignored == set(outputs), f"not ignored: {set(outputs) - ignored}"
    p = subprocess.run(["git", "check-ignore", "--no-index", ".ci-venv/"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.stdout.strip(), ".ci-venv/ is not ignored"


def test_readme_says_what_lsg_does():
    """The README claims only the lsg modes its schema offers."""
    from reenact_fx.pipeline.registry import default_registry

    lsg = default_registry().get("smoother", "lsg")
    modes = set(next(p for p in lsg.params if p.name == "mode").choices)
    row = next(ln for ln in README.splitlines() if ln.startswith("| smoother | `lsg`"))
    claimed = set(re.findall(r"`mode=(\w+)`", row))
    assert claimed and claimed <= modes, (claimed, modes)
    assert "densif" not in row or "densify" in modes
