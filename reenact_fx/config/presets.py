"""Shareable YAML presets: which components, their parameters, and keyframed expression controls.

A preset is plain data, read with the bounded ``safeyaml`` reader (``yaml.safe_load`` with a size
budget) and validated against the components' own parameter schemas (nothing here restates a schema).  Errors name the file, the key path, what was
expected and what was found, and suggest the nearest valid key.  Format, version 1::

    version: 1
    description: what the look is for
    components: {converter: delta, generator: meshwarp, smoother: one_euro, mixer: feather}
    params:
      delta: {expression: 1.2}
      output: {codec: prores}
    controls:                       # optional, see reenact_fx.face.keyframes.Keyframes
      mode: add                     # add: on top of the driver; replace: no driver needed
      keys: {smile: [[0, 0], [1.5, 0.6]]}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping


from . import safeyaml
from ..components import KINDS
from ..face.keyframes import Keyframes
from ..errors import brief, did_you_mean, ParamError, ReenactError
from ..pipeline.schemas import CORE_SCHEMAS, component_values
from ..pipeline.registry import Registry, default_registry

VERSION = 1
TOP_KEYS = ("version", "description", "components", "params", "controls")
CONTROL_MODES = ("add", "replace")


class PresetError(ReenactError):
    """A preset that cannot be found, read or validated."""


@dataclass
class Settings:
    """The effective choice of components, parameters and controls of one effect."""

    components: dict[str, str] = field(default_factory=lambda: default_registry().defaults())
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    controls: dict[str, Any] | None = None
    description: str = ""

    def overridden(self, components: Mapping[str, str | None] | None = None,
                   params: Mapping[str, Mapping[str, Any]] | None = None) -> "Settings":
        """A copy with command-line choices laid over (None leaves a component as it is)."""
        comps = {**self.components, **{k: v for k, v in (components or {}).items() if v}}
        merged = {o: dict(v) for o, v in self.params.items()}
        for owner, values in (params or {}).items():
            merged.setdefault(owner, {}).update(values)
        return Settings(comps, merged, self.controls, self.description)

    def effect_kwargs(self) -> dict[str, Any]:
        return {**self.components, "params": self.params, "controls": self.controls}

    def to_data(self, registry: Registry | None = None) -> dict[str, Any]:
        """Version-1 preset data with every parameter of the chosen components and core stages at
        its effective value (so the look stays pinned if a default changes later)."""
        reg = registry or default_registry()
        params: dict[str, dict[str, Any]] = {}
        for kind, name in self.components.items():
            schema = reg.get(kind, name).schema()
            params[name] = dict(schema.resolve(component_values(self.params, kind, name)))
        for owner, schema in CORE_SCHEMAS.items():
            params[owner] = dict(schema.resolve(self.params.get(owner)))
        data: dict[str, Any] = {"version": VERSION}
        if self.description:
            data["description"] = self.description
        data["components"] = dict(self.components)
        data["params"] = params
        if self.controls is not None:
            data["controls"] = self.controls
        return data


    def to_yaml(self, registry: Registry | None = None) -> str:
        return safeyaml.dumps(self.to_data(registry))


# ------------------------------------------------------------------------- validation
def _expect_mapping(value: Any, source: str, key: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise PresetError(f"expected a mapping, found {type(value).__name__} {brief(value)}",
                          path=source, key=key)
    return value


def validate(data: Any, source: str = "<preset>", registry: Registry | None = None) -> Settings:
    """Settings from preset data, or PresetError naming ``source`` and the key path at fault."""
    reg = registry or default_registry()
    data = _expect_mapping(data, source, "(top level)")
    for key in data:
        if key not in TOP_KEYS:
            raise PresetError(f"unknown key{did_you_mean(key, TOP_KEYS)}; a preset has: "
                              f"{', '.join(TOP_KEYS)}", path=source, key=str(key))
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PresetError(f"expected an integer version (this reenact-fx writes {VERSION}), found "
                          f"{brief(version)}", path=source, key="version")
    if version > VERSION:
        raise PresetError(f"preset version {version} is newer than this reenact-fx reads "
                          f"({VERSION}); upgrade reenact-fx", path=source, key="version")
    if version < 1:
        raise PresetError(f"expected version >= 1, found {version}", path=source, key="version")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise PresetError(f"expected text, found {brief(description)}", path=source, key="description")

    components = default_registry().defaults()
    for kind, name in _expect_mapping(data.get("components", {}), source, "components").items():
        if kind not in KINDS:
            raise PresetError(f"unknown component kind{did_you_mean(kind, KINDS)}; kinds: "
                              f"{', '.join(KINDS)}", path=source, key=f"components.{kind}")
        known = reg.names(kind)
        if name not in known:
            raise PresetError(f"expected one of {', '.join(known)}, found {brief(name)}"
                              f"{did_you_mean(name, known)}", path=source, key=f"components.{kind}")
        components[kind] = name

    schemas = {reg.get(k, n).name: reg.get(k, n).schema() for k, n in components.items()}
    schemas.update({k: reg.get(k, n).schema() for k, n in components.items()})
    schemas.update(CORE_SCHEMAS)
    params: dict[str, dict[str, Any]] = {}
    for owner, values in _expect_mapping(data.get("params", {}), source, "params").items():
        if owner not in schemas:
            raise PresetError(f"no component or stage of this preset is named '{owner}'"
                              f"{did_you_mean(owner, schemas)}; settable: {', '.join(sorted(schemas))}",
                              path=source, key=f"params.{owner}")
        values = _expect_mapping(values, source, f"params.{owner}")
        try:
            schemas[owner].resolve(values)
        except ParamError as exc:
            raise PresetError(exc.message, path=source, key=f"params.{exc.key}") from None
        params[owner] = dict(values)

    controls = data.get("controls")
    if controls is not None:
        controls = validate_controls(controls, source, "controls")
    return Settings(components, params, controls, description)


def validate_controls(data: Any, source: str, where: str = "") -> dict[str, Any]:
    """Keyframed controls ({mode, interpolation, keys}) checked; errors name source and key."""
    data = dict(_expect_mapping(data, source, where or "(top level)"))
    prefix = f"{where}." if where else ""
    mode = data.get("mode", "add")
    if mode not in CONTROL_MODES:
        raise PresetError(f"expected one of {', '.join(CONTROL_MODES)}, found {brief(mode)}"
                          f"{did_you_mean(mode, CONTROL_MODES)}", path=source, key=f"{prefix}mode")

    try:
        Keyframes.parse({k: v for k, v in data.items() if k != "mode"}, source=source)
    except ParamError as exc:
        raise PresetError(exc.message, path=source,
                          key=f"{prefix}{exc.key}" if exc.key else where or None) from None
    return data


def _read_yaml(path: Path, what: str = "preset") -> Any:
    """The file's data through the bounded YAML reader (no alias bombs, no huge files)."""
    try:
        return safeyaml.read(path, what)
    except safeyaml.YamlError as exc:
        raise PresetError(exc.message, path=str(path)) from None


def load_controls(path: str) -> dict[str, Any]:
    """A keyframe file: the ``controls`` section of a preset, on its own."""
    p = Path(path)
    return validate_controls(_read_yaml(p, "keyframe file"), str(p))


# ------------------------------------------------------------------------- finding presets
def shipped_dir() -> Path:
    return Path(str(resources.files("reenact_fx_presets")))


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "reenact-fx" / "presets"


def search_path() -> list[Path]:
    """Where preset names are looked up, first match wins: $REENACT_FX_PRESET_PATH (os.pathsep
    separated), the user's config folder, then the presets shipped with reenact-fx."""
    extra = [Path(p) for p in os.environ.get("REENACT_FX_PRESET_PATH", "").split(os.pathsep) if p]
    return extra + [user_dir(), shipped_dir()]


def available() -> dict[str, Path]:
    """Every preset name on the search path and the file it resolves to."""
    found: dict[str, Path] = {}
    for folder in reversed(search_path()):   # earlier folders override later ones
        if folder.is_dir():
            for p in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
                found[p.stem] = p
    return dict(sorted(found.items()))


def resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path or p.exists():
        if not p.is_file():
            raise PresetError("preset file not found", path=str(p))
        return p
    names = available()
    if name_or_path not in names:
        raise PresetError(f"no preset named '{name_or_path}'{did_you_mean(name_or_path, names)}; "
                          f"available: {', '.join(names) or 'none'} (searched: "
                          f"{', '.join(str(d) for d in search_path())})")
    return names[name_or_path]


def load(name_or_path: str, registry: Registry | None = None) -> Settings:
    """Settings of a preset given by name (on the search path) or by file path."""
    path = resolve(name_or_path)
    return validate(_read_yaml(path), str(path), registry)


def save(settings: Settings, path: str, registry: Registry | None = None) -> str:
    """Write ``settings`` as a preset file, atomically."""
    text = settings.to_yaml(registry)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PresetError("the folder to save into does not exist", path=path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.partial-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
