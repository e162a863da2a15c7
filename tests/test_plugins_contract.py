"""The plugin contract: what the registry finds, what `reenact-fx plugins` shows, and how a broken
third-party plugin is reported without taking the others down.  Needs no media."""

from __future__ import annotations

import importlib
import sys
import textwrap
import types

import pytest

from reenact_fx.cli import main
from reenact_fx.components import KINDS, Component, Converter, Generator, Mixer, Smoother
from reenact_fx.pipeline.schemas import CORE_SCHEMAS
from reenact_fx.errors import PluginError
from reenact_fx.hookspecs import hookimpl
from reenact_fx.params import TYPES, Param
from reenact_fx.pipeline.registry import Registry, default_registry

BUILTINS = {("converter", "delta"), ("generator", "meshwarp"), ("smoother", "one_euro"),
            ("smoother", "savgol"), ("mixer", "feather")}
BASES = {"converter": Converter, "generator": Generator, "smoother": Smoother, "mixer": Mixer}


# ------------------------------------------------------------------ the built-in components
def test_default_registry_lists_every_builtin_component():
    reg = default_registry()
    found = {(cls.kind, cls.name) for cls in reg.all()}
    assert BUILTINS <= found, f"missing: {BUILTINS - found}"
    for kind, name in BUILTINS:
        assert name in reg.names(kind)
        cls = reg.get(kind, name)
        assert issubclass(cls, BASES[kind]) and cls.kind == kind and cls.name == name
    assert reg.defaults() == {"converter": "delta", "generator": "meshwarp",
                              "smoother": "one_euro", "mixer": "feather"}
    for kind, name in reg.defaults().items():
        assert (kind, name) in found, f"the default {kind} '{name}' is not registered"
    mine = [p for p in reg.problems if any(f"'{n}'" in p for _, n in BUILTINS)]
    assert not mine, mine


@pytest.mark.parametrize("kind,name", sorted(BUILTINS))
def test_builtin_declares_name_version_summary_and_a_valid_schema(kind, name):
    cls = default_registry().get(kind, name)
    assert isinstance(cls.version, str) and cls.version.strip() and cls.version != "0"
    assert isinstance(cls.summary, str) and len(cls.summary.strip()) > 10
    schema = cls.schema()
    assert schema.owner == name
    assert len(schema.params) >= 1
    names = schema.names()
    assert len(names) == len(set(names)), f"duplicate parameter names in {name}: {names}"
    for p in schema.params:
        assert isinstance(p, Param) and p.type in TYPES
        assert p.help.strip(), f"{name}.{p.name} has no help"
        # the default must pass through its own coerce unchanged
        assert p.coerce(p.default, where=name) == p.default, f"{name}.{p.name}"
        if p.type in ("int", "float"):
            if p.min is not None:
                assert p.default >= p.min
            if p.max is not None:
                assert p.default <= p.max
            if p.min is not None and p.max is not None:
                assert p.min < p.max
        if p.type == "choice":
            assert p.default in p.choices
    # the resolved defaults are what an instance holds
    inst = cls()
    assert dict(inst.p) == {p.name: p.default for p in schema.params}


def test_core_schemas_defaults_validate():
    for owner, schema in CORE_SCHEMAS.items():
        assert schema.owner == owner
        for p in schema.params:
            assert p.coerce(p.default, where=owner) == p.default, f"{owner}.{p.name}"


# ------------------------------------------------------------------ `reenact-fx plugins`
def test_cli_plugins_prints_every_component_and_every_parameter(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    reg = default_registry()
    lines = out.splitlines()
    for cls in reg.all():
        header = [ln for ln in lines if ln.strip().startswith(f"{cls.name} {cls.version}")]
        assert header, f"component {cls.kind} '{cls.name}' is not listed"
        assert cls.summary in header[0]
        if reg.default(cls.kind) == cls.name:
            assert "(default)" in header[0]
        for p in cls.params:
            assert any(ln.strip().startswith(f"{p.name} ({p.type}") for ln in lines), \
                f"parameter {cls.name}.{p.name} is not listed"
    for owner, schema in CORE_SCHEMAS.items():
        assert any(ln.strip() == owner for ln in lines), f"core stage {owner} not listed"
        for p in schema.params:
            assert any(ln.strip().startswith(f"{p.name} ({p.type}") for ln in lines), \
                f"parameter {owner}.{p.name} is not listed"
    for kind in KINDS:
        assert f"{kind}s:" in lines


# ------------------------------------------------------------------ third-party plugins
GOOD_PLUGIN = '''
import numpy as np
from reenact_fx.components import Smoother
from reenact_fx.hookspecs import hookimpl
from reenact_fx.params import Param


class HoldSmoother(Smoother):
    name = "rfx_test_hold"
    version = "0.1"
    summary = "test smoother that returns its input"
    params = (Param("gain", "float", 1.0, "unused", 0.0, 2.0),)

    def smooth(self, points, valid, fps):
        return np.asarray(points, np.float32).copy()


@hookimpl
def reenact_fx_components():
    return [HoldSmoother]
'''


def _distribution(root, module: str, ep_name: str, source: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[reenact_fx]\n{ep_name} = {module}\n")


@pytest.fixture
def third_party(tmp_path):
    """Two real installed distributions on sys.path: one importable plugin, one that is broken."""
    _distribution(tmp_path, "brokenplug", "broken",
                  'raise ImportError("brokenplug needs a library that is not installed")\n')
    _distribution(tmp_path, "goodplug", "good", GOOD_PLUGIN)
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for m in ("brokenplug", "goodplug"):
            sys.modules.pop(m, None)
        importlib.invalidate_caches()


def test_broken_third_party_plugin_is_reported_and_skipped(third_party):
    reg = Registry()
    # the good plugin is found through its entry point and works
    assert "rfx_test_hold" in reg.names("smoother")
    cls = reg.get("smoother", "rfx_test_hold")
    assert reg.origin(cls) == "good"
    assert cls.version == "0.1" and cls().p["gain"] == 1.0
    # every built-in is still there
    found = {(c.kind, c.name) for c in reg.all()}
    assert BUILTINS <= found
    # the broken one is reported, by entry-point name and module, with the reason
    broken = [p for p in reg.problems if "'broken'" in p]
    assert len(broken) == 1, reg.problems
    assert "brokenplug" in broken[0] and "ImportError" in broken[0]
    assert "not installed" in broken[0]
    assert not [p for p in reg.problems if "'good'" in p], reg.problems
    # the process-wide registry was not touched
    assert "rfx_test_hold" not in default_registry().names("smoother")


def test_broken_plugin_problem_is_printed_by_cli(third_party, capsys, monkeypatch):
    import reenact_fx.pipeline.registry as registry

    monkeypatch.setattr(registry, "_default", None)   # let the CLI build a fresh default registry
    assert main(["plugins"]) == 0
    cap = capsys.readouterr()
    assert "rfx_test_hold" in cap.out
    assert "'broken'" in cap.err and "brokenplug" in cap.err
    for _, name in BUILTINS:
        assert name in cap.out


def _module(name: str, hook) -> types.ModuleType:
    m = types.ModuleType(name)
    m.reenact_fx_components = hookimpl(hook)
    return m


def test_plugin_returning_non_components_is_reported():
    class NotAComponent:
        kind, name = "smoother", "fake"

    class Nameless(Smoother):
        pass

    class GoodOne(Smoother):
        name = "rfx_test_fine"

        def smooth(self, points, valid, fps):
            return points

    m = _module("weird_plugin", lambda: [NotAComponent, "a string", 42, Nameless, GoodOne])
    reg = Registry(load_entry_points=False, modules=(m,))
    mine = [p for p in reg.problems if "'weird_plugin'" in p]
    assert len(mine) == 4, reg.problems
    assert all("not a component" in p for p in mine)
    assert reg.names("smoother") == ["rfx_test_fine"]


def test_plugin_whose_hook_fails_or_is_missing_is_reported():
    def boom():
        raise RuntimeError("hook exploded")

    bad = _module("exploding_plugin", boom)
    empty = types.ModuleType("empty_plugin")
    reg = Registry(load_entry_points=False, modules=(bad, empty))
    assert any("'exploding_plugin'" in p and "hook exploded" in p for p in reg.problems), reg.problems
    assert any("'empty_plugin'" in p and "no reenact_fx_components" in p for p in reg.problems)
    assert reg.all() == []
    assert not reg.pm.is_registered(bad)


def test_duplicate_component_name_keeps_the_first():
    class Impostor(Smoother):
        name = "one_euro"
        version = "9.9"

    reg = Registry(modules=(_module("impostor_plugin", lambda: [Impostor]),))
    assert reg.get("smoother", "one_euro") is not Impostor
    assert reg.get("smoother", "one_euro") is default_registry().get("smoother", "one_euro")
    assert any("'impostor_plugin'" in p and "already provided" in p for p in reg.problems)


# ------------------------------------------------------------------ lookups
@pytest.mark.parametrize("kind,typo,right", [("smoother", "one_eur", "one_euro"),
                                             ("smoother", "savgl", "savgol"),
                                             ("generator", "meshwrap", "meshwarp"),
                                             ("mixer", "feathr", "feather")])
def test_misspelt_component_suggests_the_right_one(kind, typo, right):
    with pytest.raises(PluginError) as e:
        default_registry().get(kind, typo)
    msg = str(e.value)
    assert f"did you mean '{right}'" in msg
    assert f"'{typo}'" in msg
    for name in default_registry().names(kind):
        assert name in msg     # the available ones are listed


def test_unknown_kind_is_refused():
    with pytest.raises(PluginError, match="unknown component kind"):
        default_registry().get("blender", "feather")


def test_get_of_a_broken_plugin_says_why(third_party):
    reg = Registry()
    with pytest.raises(PluginError) as e:
        reg.get("smoother", "broken")
    assert "brokenplug" in str(e.value) and "ImportError" in str(e.value)


def test_component_base_resolves_its_schema():
    class Tiny(Component):
        kind, name = "smoother", "tiny"
        params = (Param("k", "int", 3, "k", 1, 9),)

    assert dict(Tiny().p) == {"k": 3}
    assert dict(Tiny({"k": "5"}).p) == {"k": 5}
