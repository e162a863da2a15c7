"""Parameter schemas: the one source of truth for every tunable of a component.

A component declares ``params = (Param(...), ...)``.  Presets, the CLI's ``--set``, the compositor
bridge's parameter page and ``reenact-fx plugins`` all read these declarations; nothing restates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .errors import did_you_mean, ParamError

TYPES = ("float", "int", "bool", "choice", "str")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"param {self.name}: type must be one of {TYPES}")
        if self.type == "choice" and self.default not in self.choices:
            raise ValueError(f"param {self.name}: default {self.default!r} not in choices")

    def coerce(self, value: Any, *, where: str = "") -> Any:
        """Return ``value`` converted to this parameter's type, or raise ParamError saying why."""
        key = f"{where}.{self.name}" if where else self.name
        t = self.type
        try:
            if t == "bool":
                if isinstance(value, bool):
                    out = value
                elif isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                    out = True
                elif isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                    out = False
                else:
                    raise ValueError
            elif t == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out = int(value)
            elif t == "float":
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
                if out != out or out in (float("inf"), float("-inf")):
                    raise ValueError   # NaN would slip through every range check
            elif t == "choice":
                out = str(value)
                if out not in self.choices:
                    hint = did_you_mean(out, self.choices)
                    raise ParamError(f"expected one of {', '.join(self.choices)}, found {value!r}{hint}",
                                     key=key)
            else:
                out = str(value)
        except ParamError:
            raise
        except (TypeError, ValueError):
            raise ParamError(f"expected {t}, found {value!r}", key=key) from None
        if t in ("int", "float"):
            if self.min is not None and out < self.min or self.max is not None and out > self.max:
                raise ParamError(f"expected a value in [{self.min}, {self.max}], found {out}", key=key)
        return out

    def describe(self) -> str:
        rng = ""
        if self.type == "choice":
            rng = " {" + "|".join(self.choices) + "}"
        elif self.min is not None or self.max is not None:
            rng = f" [{'' if self.min is None else self.min}..{'' if self.max is None else self.max}]"
        return f"{self.name} ({self.type}{rng}, default {self.default!r}): {self.help}"


@dataclass(frozen=True)
class Schema:
    """The parameters of one named thing (a component or a core stage such as tracking)."""

    owner: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def get(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        hint = did_you_mean(name, self.names())
        known = ", ".join(self.names()) or "none"
        raise ParamError(f"unknown parameter{hint}; known: {known}", key=f"{self.owner}.{name}")

    def resolve(self, values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """Defaults overlaid with ``values``, every value checked; unknown names are refused."""
        out = {p.name: p.default for p in self.params}
        for name, value in (values or {}).items():
            out[name] = self.get(name).coerce(value, where=self.owner)
        return MappingProxyType(out)


def parse_assignments(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["meshwarp.mouth_fill=false", ...]`` -> ``{"meshwarp": {"mouth_fill": "false"}}``.

    The parameter is the part after the last dot (component names may hold dots: ``freenet.ulc``)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        owner, dot, name = key.strip().rpartition(".")
        if not sep or not dot or not owner or not name:
            raise ParamError(f"expected component.param=value, found {item!r}", key=key or item)
        out.setdefault(owner, {})[name] = value
    return out
