"""Keyframes: animated expression controls, with per-key easing (what a keyframe file holds).

A file maps control names to lists of keys ``[t, v]`` or ``[t, v, ease]`` (or mappings with ``t``,
``v``, ``ease``); see :class:`Keyframes`.  ``animate`` makes a landmark sequence perform them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ParamError, did_you_mean
from .controls import BY_NAME, NAMES, Rig


INTERPOLATIONS = ("smooth", "linear")
_FIELD_ALIASES = {"time": "t", "value": "v", "val": "v", "easing": "ease", "interpolation": "ease"}


def _number(value, where: str, source: str, what: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParamError(f"expected {what}, found {value!r}", path=source, key=where)
    v = float(value)
    if not math.isfinite(v):
        raise ParamError(f"expected {what}, found {value!r}", path=source, key=where)
    return v


@dataclass(frozen=True)
class Key:
    t: float
    v: float
    ease: str | None = None     # interpolation from this key to the next (None: the curve's)


class Keyframes:
    """Keyframed control curves.

    Schema (YAML-friendly)::

        interpolation: smooth          # or linear; optional, default smooth
        keys:
          smile: [[0, 0], [1.0, 0.8], [2.5, 0]]        # [t seconds, value] or [t, value, ease]
          blink_left:
            - {t: 0.5, v: 0}
            - {t: 0.6, v: 1, ease: linear}            # ease: from this key to the next
            - {t: 0.7, v: 0}

    ``smooth`` is a monotone cubic Hermite (Fritsch-Carlson tangents, flat at the first and last key):
    C1, never overshoots its keys (so it stays inside the control's range); two keys give an
    ease-in-out.  Values are held before the first and after the last key.
    """

    def __init__(self, keys: Mapping[str, tuple[Key, ...]], interpolation: str = "smooth"):
        self.keys = {k: tuple(v) for k, v in keys.items()}
        self.interpolation = interpolation

    @classmethod
    def parse(cls, data: Mapping, *, source: str = "<keyframes>") -> "Keyframes":
        if not isinstance(data, Mapping):
            raise ParamError(f"expected a mapping with 'keys', found {type(data).__name__}", path=source)
        for k in data:
            if k not in ("interpolation", "keys"):
                raise ParamError(f"unknown key{did_you_mean(k, ('interpolation', 'keys'))}; expected "
                                 "interpolation, keys", path=source, key=str(k))
        interp = data.get("interpolation", "smooth")
        if interp not in INTERPOLATIONS:
            raise ParamError(f"expected one of {', '.join(INTERPOLATIONS)}, found {interp!r}"
                             f"{did_you_mean(interp, INTERPOLATIONS)}", path=source, key="interpolation")
        if "keys" not in data:
            raise ParamError("expected 'keys' (control: [[t, value], ...]), found none", path=source,
                             key="keys")
        raw = data["keys"]
        if not isinstance(raw, Mapping):
            raise ParamError(f"expected a mapping of control names, found {type(raw).__name__}",
                             path=source, key="keys")
        keys: dict[str, tuple[Key, ...]] = {}
        for name, seq in raw.items():
            where = f"keys.{name}"
            if name not in BY_NAME:
                raise ParamError(f"unknown control{did_you_mean(name, NAMES)}; known: {', '.join(NAMES)}",
                                 path=source, key=where)
            ctl = BY_NAME[name]
            if isinstance(seq, (str, bytes)) or not isinstance(seq, (list, tuple)) or not seq:
                raise ParamError(f"expected a non-empty list of [t, value] keys, found {seq!r}",
                                 path=source, key=where)
            out: list[Key] = []
            for i, item in enumerate(seq):
                at = f"{where}[{i}]"
                if isinstance(item, Mapping):
                    for f in item:
                        if f not in ("t", "v", "ease"):
                            alias = _FIELD_ALIASES.get(str(f).lower())
                            hint = f" (did you mean '{alias}'?)" if alias else did_you_mean(f, ("t", "v", "ease"))
                            raise ParamError(f"unknown field{hint}; expected "
                                             "t, v, ease", path=source, key=f"{at}.{f}")
                    for f in ("t", "v"):
                        if f not in item:
                            raise ParamError(f"expected field '{f}', found none", path=source,
                                             key=f"{at}.{f}")
                    t, v, ease = item["t"], item["v"], item.get("ease")
                    tk, vk, ek = f"{at}.t", f"{at}.v", f"{at}.ease"
                elif isinstance(item, (list, tuple)) and len(item) in (2, 3):
                    t, v = item[0], item[1]
                    ease = item[2] if len(item) == 3 else None
                    tk, vk, ek = f"{at}.t", f"{at}.v", f"{at}.ease"
                else:
                    raise ParamError(f"expected [t, value], [t, value, ease] or {{t:, v:}}, found "
                                     f"{item!r}", path=source, key=at)
                t = _number(t, tk, source, "a time in seconds >= 0")
                if t < 0:
                    raise ParamError(f"expected a time in seconds >= 0, found {t:g}", path=source, key=tk)
                if out and t <= out[-1].t:
                    raise ParamError(f"expected a time after the previous key's ({out[-1].t:g} s), "
                                     f"found {t:g}: times must be strictly increasing", path=source, key=tk)
                v = _number(v, vk, source, f"a {name} value in [{ctl.lo:g}, {ctl.hi:g}]")
                if not ctl.lo <= v <= ctl.hi:
                    raise ParamError(f"expected a {name} value in [{ctl.lo:g}, {ctl.hi:g}] ({ctl.unit}),"
                                     f" found {v:g}", path=source, key=vk)
                if ease is not None and ease not in INTERPOLATIONS:
                    raise ParamError(f"expected one of {', '.join(INTERPOLATIONS)}, found {ease!r}"
                                     f"{did_you_mean(ease, INTERPOLATIONS)}", path=source, key=ek)
                out.append(Key(t, v, ease))
            keys[name] = tuple(out)
        return cls(keys, interp)

    def duration(self) -> float:
        """Time of the last key of any control (0 without keys)."""
        return max((ks[-1].t for ks in self.keys.values()), default=0.0)

    def at(self, times) -> dict[str, np.ndarray]:
        """Each keyed control's value at ``times`` (seconds), arrays shaped like ``times``."""
        t = np.asarray(times, np.float64)
        return {name: self._curve(ks, t) for name, ks in self.keys.items()}

    def _curve(self, ks: tuple[Key, ...], t: np.ndarray) -> np.ndarray:
        kt = np.array([k.t for k in ks])
        kv = np.array([k.v for k in ks])
        if len(ks) == 1:
            return np.full(t.shape, kv[0])
        h = np.diff(kt)
        d = np.diff(kv) / h
        m = np.zeros(len(ks))                     # Fritsch-Carlson (PCHIP) tangents, 0 at the ends
        for i in range(1, len(ks) - 1):
            if d[i - 1] * d[i] > 0:
                w1, w2 = 2 * h[i] + h[i - 1], h[i] + 2 * h[i - 1]
                m[i] = (w1 + w2) / (w1 / d[i - 1] + w2 / d[i])
        seg = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(ks) - 2)
        s = np.clip((t - kt[seg]) / h[seg], 0.0, 1.0)
        v0, v1 = kv[seg], kv[seg + 1]
        s2, s3 = s * s, s * s * s
        hermite = ((2 * s3 - 3 * s2 + 1) * v0 + (s3 - 2 * s2 + s) * h[seg] * m[seg]
                   + (-2 * s3 + 3 * s2) * v1 + (s3 - s2) * h[seg] * m[seg + 1])
        linear = v0 + s * (v1 - v0)
        ease = np.array([(k.ease or self.interpolation) == "linear" for k in ks[:-1]])
        return np.where(ease[seg], linear, hermite)

    def to_dict(self) -> dict:
        """Plain data that parse() reads back to the same curves."""
        keys = {name: [[k.t, k.v] if k.ease is None else [k.t, k.v, k.ease] for k in ks]
                for name, ks in self.keys.items()}
        return {"interpolation": self.interpolation, "keys": keys}

    def __eq__(self, other) -> bool:
        return isinstance(other, Keyframes) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Keyframes({self.to_dict()!r})"


def animate(points: np.ndarray, keyframes: Keyframes, times, reference: np.ndarray | None = None
            ) -> np.ndarray:
    """(T, 478, 3) landmarks: ``points`` performing ``keyframes`` at ``times`` (seconds)."""
    return Rig(points, reference).apply_many(keyframes.at(np.asarray(times, np.float64)))
