"""The reenact-fx effect on an OpenTimelineIO clip.

An OTIO ``Effect`` with ``effect_name: "reenact_fx"`` whose settings are under
``metadata["reenact_fx"]`` (version 1)::

    version: 1                       # required
    driver: takes/speech.mp4         # media path, relative to the timeline file or absolute;
                                     # may be omitted when controls replace the driver
    driver_in: 2.5                   # seconds into the driver at the clip's first frame (0)
    preset: lips-only                # a preset name or a preset file (optional)
    set: {delta.expression: 1.2}     # component.param: value overrides (optional)
    controls: smile.yaml             # a keyframe file (optional; relative like driver)

Errors name the timeline, the track, the clip and the key at fault.  A clip carries at most one such
effect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import BatchError

EFFECT_NAME = "reenact_fx"
VERSION = 1
KEYS = ("version", "driver", "driver_in", "preset", "set", "controls")


@dataclass(frozen=True)
class Where:
    """Where an item sits: the timeline file, its track and its place in the track."""

    timeline: str
    track: str
    track_index: int
    clip: str
    clip_index: int

    def error(self, message: str, key: str | None = None) -> BatchError:
        return BatchError(f"track '{self.track}' (#{self.track_index}), clip '{self.clip}' "
                          f"(#{self.clip_index}): {message}", path=self.timeline,
                          key=f"{EFFECT_NAME}.{key}" if key else None)


@dataclass(frozen=True)
class ClipEffect:
    """The validated settings of one clip's reenact-fx effect (paths resolved, absolute)."""

    driver: str | None
    driver_in: float = 0.0
    preset: str | None = None
    set: Mapping[str, Any] = field(default_factory=dict)
    controls: str | None = None

    def settings(self):
        """The effective look: the preset (or the defaults), the ``set`` overrides laid over."""
        from ..config.presets import Settings, load, load_controls

        base = load(self.preset) if self.preset else Settings()
        out = base.overridden(None, _by_owner(self.set))
        if self.controls:
            out.controls = load_controls(self.controls)
        return out

    def to_metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": VERSION}
        if self.driver is not None:
            data["driver"] = self.driver
        data["driver_in"] = float(self.driver_in)
        if self.preset:
            data["preset"] = self.preset
        if self.set:
            data["set"] = dict(self.set)
        if self.controls:
            data["controls"] = self.controls
        return data


def _by_owner(assignments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in assignments.items():
        owner, _, name = str(key).rpartition(".")
        out.setdefault(owner, {})[name] = value
    return out


def find(clip) -> list:
    """The reenact-fx effects of a clip (by effect_name)."""
    return [e for e in getattr(clip, "effects", []) if getattr(e, "effect_name", "") == EFFECT_NAME]


def _resolve(path: str, base: str) -> str:
    if path.startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = unquote(urlparse(path).path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary / AnyVector as plain Python."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "AnyVector":
        return [_plain(v) for v in value]
    return value


def validate(data: Any, where: Where) -> ClipEffect:
    """A ClipEffect from an effect's ``metadata["reenact_fx"]``, or BatchError naming the key.

    A missing driver is the job's failure (like missing target media), not the timeline's: it is
    checked when the job runs; a missing keyframe or preset file is a settings error, checked here."""
    data = _plain(data)
    if not isinstance(data, dict):
        raise where.error(f"expected a mapping of settings, found {type(data).__name__}")
    for key in data:
        if key not in KEYS:
            import difflib

            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise where.error(f"unknown key{hint}; the effect has: {', '.join(KEYS)}", key)
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise where.error(f"expected version {VERSION}, found {version!r}", "version")
    if version > VERSION:
        raise where.error(f"version {version} is newer than this reenact-fx reads ({VERSION}); "
                          "upgrade reenact-fx", "version")
    base = os.path.dirname(os.path.abspath(where.timeline))

    def path_of(key: str, must_exist: bool) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise where.error(f"expected a file path, found {value!r}", key)
        p = _resolve(value, base)
        if must_exist and not os.path.isfile(p):
            raise where.error(f"file not found: {p}", key)
        return p

    driver, controls = path_of("driver", False), path_of("controls", True)
    driver_in = data.get("driver_in", 0.0)
    if isinstance(driver_in, bool) or not isinstance(driver_in, (int, float)) or driver_in < 0:
        raise where.error(f"expected seconds >= 0, found {driver_in!r}", "driver_in")
    preset = data.get("preset") or None
    if preset is not None and not isinstance(preset, str):
        raise where.error(f"expected a preset name or file, found {preset!r}", "preset")
    if preset and (preset.endswith((".yaml", ".yml")) or os.sep in preset):
        preset = _resolve(preset, base)
    sets = data.get("set") or {}
    if not isinstance(sets, dict):
        raise where.error(f"expected a mapping of component.param: value, found {sets!r}", "set")
    for key, value in sets.items():
        owner, dot, name = key.rpartition(".")
        if not dot or not owner or not name:
            raise where.error(f"expected component.param, found {key!r}", f"set.{key}")
        if not isinstance(value, (str, int, float, bool)):
            raise where.error(f"expected a single value, found {value!r}", f"set.{key}")
    fx = ClipEffect(driver, float(driver_in), preset, dict(sets), controls)
    _check_look(fx, where)
    return fx


def _check_look(fx: ClipEffect, where: Where) -> None:
    """The preset, overrides and controls checked the way a render would (components built)."""
    from ..errors import ReenactError
    from ..pipeline.effect import Effect

    try:
        settings = fx.settings()
    except ReenactError as exc:
        key = "controls" if fx.controls and fx.controls == exc.path else "preset"
        raise where.error(str(exc), key) from None
    try:
        with Effect(**settings.effect_kwargs(), cache=False):
            pass
    except ReenactError as exc:
        raise where.error(exc.message, f"set.{exc.key}" if exc.key else "set") from None
    replace = bool(settings.controls and settings.controls.get("mode") == "replace")
    if fx.driver is None and not replace:
        raise where.error("a driver is needed, unless keyframed controls replace it "
                          "(controls with mode: replace)", "driver")
    if fx.driver is not None and replace:
        raise where.error("controls with mode: replace take the driver's place; give no driver, "
                          "or use mode: add", "driver")


def read(clip, where: Where) -> ClipEffect | None:
    """The clip's validated reenact-fx effect, None when it has none."""
    found = find(clip)
    if not found:
        return None
    if len(found) > 1:
        raise where.error(f"{len(found)} reenact_fx effects on one clip; keep one")
    md = found[0].metadata
    if EFFECT_NAME not in md:
        raise where.error(f"the effect has no metadata['{EFFECT_NAME}'] settings")
    return validate(md[EFFECT_NAME], where)


def make_effect(fx: ClipEffect | Mapping[str, Any]):
    """An OTIO Effect carrying these settings."""
    from . import require_otio

    otio = require_otio()
    data = fx.to_metadata() if isinstance(fx, ClipEffect) else dict(fx)
    return otio.schema.Effect(name="reenact-fx", effect_name=EFFECT_NAME,
                              metadata={EFFECT_NAME: data})
