"""The plugin API is the one boundary between the core and the plugins (import-graph checks)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
CORE = ROOT / "reenact_fx"
API = {"reenact_fx.api"}
TRAINING_API = {"reenact_fx.api", "reenact_fx.api.training"}


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, absolute module name or '' for a relative import, relative level) of every import."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, node.module or "", node.level))
    return out


def _uses_torch(path: Path) -> bool:
    return any(name == "torch" or name.startswith("torch.") for _, name, _ in _imports(path))


PLUGIN_FILES = sorted(PLUGINS.rglob("*.py"))


def test_there_are_plugins_to_check():
    assert len({p.relative_to(PLUGINS).parts[0] for p in PLUGIN_FILES}) >= 9


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_the_core_only_through_the_api(path):
    allowed = TRAINING_API if _uses_torch(path) else API
    for line, name, level in _imports(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if level:
            # relative imports stay inside the plugin's own package
            assert level == 1 or len(path.relative_to(PLUGINS).parts) > level, where
            continue
        if name.split(".")[0] == "reenact_fx":
            assert name in allowed, f"{where} imports {name}; plugins import {sorted(allowed)}"
        assert name.split(".")[0] != "reenact_fx_plugins", f"{where}: a plugin imports a plugin"


def test_render_time_plugin_code_never_imports_torch():
    # the part a render loads: each plugin's __init__ and what it imports relatively, minus training
    for init in PLUGINS.glob("*/__init__.py"):
        for line, name, level in _imports(init):
            assert name != "torch", f"{init}:{line}"
            if level == 1 and name:
                mod = init.parent / f"{name}.py"
                if mod.exists():
                    assert not _uses_torch(mod), f"{init}:{line} imports torch code at render time"


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_plugin(path):
    for line, name, _ in _imports(path):
        assert not name.startswith("reenact_fx_plugins"), f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize("module", ["reenact_fx.api", "reenact_fx.api.training"])
def test_the_api_exports_exactly_what_it_lists(module):
    if module.endswith("training"):
        pytest.importorskip("torch")
    mod = importlib.import_module(module)
    assert len(set(mod.__all__)) == len(mod.__all__)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing
    public = {n for n in vars(mod) if not n.startswith("_") and n != "annotations"}
    assert public <= set(mod.__all__) | {"training"}, sorted(public - set(mod.__all__))


def test_api_version_is_semver():
    from reenact_fx import api

    major, minor = map(int, api.API_VERSION.split("."))
    assert major >= 1 and minor >= 0


def test_learned_components_declare_training_through_the_contract():
    from reenact_fx.api import Trainable
    from reenact_fx.pipeline.registry import default_registry

    reg = default_registry()
    learned = {c.name for c in reg.all() if issubclass(c, Trainable)}
    assert {"freenet.ulc", "facegan.lt", "ldnet", "lsg"} <= learned
    assert "delta" not in learned
    for cls in reg.all():
        assert not hasattr(cls, "training") or issubclass(cls, Trainable), cls
