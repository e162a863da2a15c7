"""Finds components: plugins registered under the ``reenact_fx`` entry-point group.

A plugin that fails to import, or returns something that is not a component, is reported in
``Registry.problems`` and skipped; the rest keep working.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from .. import hookspecs
from ..components import KINDS, Component
from ..errors import did_you_mean, PluginError

class Registry:
    def __init__(self, *, load_entry_points: bool = True, modules: tuple[ModuleType, ...] = ()):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.problems: list[str] = []
        self._components: dict[tuple[str, str], type[Component]] = {}
        self._origin: dict[tuple[str, str], str] = {}
        if load_entry_points:
            self._load_entry_points()
        for m in modules:
            self.register(m, m.__name__)

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self.problems.append(f"plugin '{ep.name}' ({ep.value}) failed to import: "
                                     f"{type(exc).__name__}: {exc}")
                continue
            self.register(module, ep.name)

    def register(self, module: object, name: str) -> None:
        try:
            self.pm.register(module, name=name)  # validates the hookimpl against the hookspec
            impls = [i for i in self.pm.hook.reenact_fx_components.get_hookimpls()
                     if i.plugin is module]
            if not impls:
                raise PluginError("it implements no reenact_fx_components hook")
            classes = list(impls[0].function())
        except Exception as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            self.problems.append(f"plugin '{name}' failed to register: {type(exc).__name__}: {exc}")
            return
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, Component) and cls.kind in KINDS
                    and cls.name):
                self.problems.append(f"plugin '{name}' returned {cls!r}, which is not a component")
                continue
            key = (cls.kind, cls.name)
            rival = [n for (k, n), c in self._components.items() if k == cls.kind and c.default]
            if cls.default and rival:
                self.problems.append(f"plugin '{name}': {cls.kind} '{cls.name}' declares itself the "
                                     f"default, but '{rival[0]}' already is; kept '{rival[0]}'")
            if key in self._components:
                self.problems.append(f"plugin '{name}': {cls.kind} '{cls.name}' already provided by "
                                     f"'{self._origin[key]}'; kept the first")
                continue
            self._components[key] = cls
            self._origin[key] = name

    def default(self, kind: str) -> str:
        """The name of the component of ``kind`` that declares itself the default (the first one
        registered if several do; an error naming the kind if none does)."""
        named = [n for (k, n), c in self._components.items() if k == kind and c.default]
        if not named:
            raise PluginError(f"no {kind} declares itself the default; choose one "
                              f"({', '.join(self.names(kind)) or 'none installed'})", key=kind)
        return named[0]

    def defaults(self) -> dict[str, str]:
        return {kind: self.default(kind) for kind in KINDS}

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self._components if k == kind)

    def all(self) -> list[type[Component]]:
        return [self._components[k] for k in sorted(self._components)]

    def origin(self, cls: type[Component]) -> str:
        return self._origin[(cls.kind, cls.name)]

    def get(self, kind: str, name: str) -> type[Component]:
        if kind not in KINDS:
            raise PluginError(f"unknown component kind '{kind}'; kinds: {', '.join(KINDS)}")
        try:
            return self._components[(kind, name)]
        except KeyError:
            known = self.names(kind)
            hint = did_you_mean(name, known)
            broken = [p for p in self.problems if f"'{name}'" in p]
            why = f"; {broken[0]}" if broken else ""
            raise PluginError(f"no {kind} named '{name}'{hint}; available: {', '.join(known) or 'none'}"
                              f"{why}", key=kind) from None


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry of installed plugins (loaded once)."""
    global _default
    if _default is None:
        _default = Registry()
    return _default
