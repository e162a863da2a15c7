"""The one YAML reader of reenact-fx: ``yaml.safe_load`` with a budget.

Presets, keyframe files, evaluation manifests, dataset manifests and timelines are small documents
written by people.  A hostile or broken one must not hang or exhaust memory, so before anything is
constructed the document is held to:

- at most ``MAX_BYTES`` of text;
- at most ``MAX_NODES`` nodes *after aliases are expanded* (an alias counts as the whole node it
  points to, so a "billion laughs" chain of aliases is refused before it is ever built) and no alias
  that contains itself;
- at most ``MAX_DEPTH`` levels of nesting (flow brackets are counted on the raw text first, so a
  megabyte of ``[`` costs milliseconds, not the parser's seconds).

Errors are ``YamlError`` (a ``ReenactError``) naming the file, and where known the line and column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ReenactError

MAX_BYTES = 1 << 20        # 1 MiB: the shipped presets are under 1 KiB
MAX_NODES = 100_000        # scalars + collections after alias expansion
MAX_DEPTH = 64             # nesting levels


class YamlError(ReenactError):
    """A YAML document that cannot be read, is not valid YAML, or is over the budget."""


def _where(mark) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


# libyaml's parser when PyYAML has it (about 20x faster on a large file), else the Python one
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _bracket_depth(text: str) -> int:
    """The deepest nesting of flow brackets, counted over the raw text (cheap: no parsing; a
    bracket inside a quoted string counts too, so the limit applied to it is generous)."""
    import numpy as np

    b = np.frombuffer(text.encode("utf-8", "ignore"), np.uint8)
    step = np.isin(b, (0x5B, 0x7B)).astype(np.int32) - np.isin(b, (0x5D, 0x7D)).astype(np.int32)
    return int(np.cumsum(step).max()) if len(step) else 0


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes of the document with every alias expanded, counted without expanding anything: each
    distinct node's expanded size is computed once (aliases make the graph a DAG, or a cycle).
    Also refuses nesting deeper than MAX_DEPTH."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlError(f"an alias refers to a node that contains it{_where(node.start_mark)}",
                            path=source)
        if depth > MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep{_where(node.start_mark)}",
                            path=source)
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                n += size(child, depth + 1)
                if n > MAX_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                n += size(k, depth + 1) + size(v, depth + 1)
                if n > MAX_NODES:
                    break
        active.discard(key)
        sizes[key] = n
        return n

    return size(root, 0)


def parse(text: str | bytes, source: str = "<yaml>") -> Any:
    """The data of one YAML document, or YamlError (naming ``source``)."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise YamlError(f"too large for a settings file ({len(text):,} bytes; at most "
                            f"{MAX_BYTES:,})", path=source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(f"not UTF-8 text (byte {exc.start}): not a YAML file", path=source) from None
    if len(text) > MAX_BYTES:
        raise YamlError(f"too large for a settings file ({len(text):,} characters; at most "
                        f"{MAX_BYTES:,})", path=source)
    if "\x00" in text:
        raise YamlError("contains NUL bytes: not a YAML file", path=source)
    if _bracket_depth(text) > 4 * MAX_DEPTH:   # before the parser spends seconds on it
        raise YamlError(f"nested more than {MAX_DEPTH} levels deep", path=source)
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_size(node, source)
        if n > MAX_NODES:
            raise YamlError(f"too many values: more than {MAX_NODES:,} once its aliases are expanded "
                            "(an alias bomb?)", path=source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"not valid YAML{_where(mark)}: {problem}", path=source) from None
    except RecursionError:
        raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)", path=source) from None
    except ValueError as exc:   # libyaml's reader on characters YAML does not allow
        raise YamlError(f"not valid YAML: {exc}", path=source) from None
    finally:
        if loader is not None:
            loader.dispose()


def read(path: str | os.PathLike, what: str = "file") -> Any:
    """The data of the YAML file at ``path`` (``what`` names it in errors: "preset", ...)."""
    p = Path(path)
    try:
        if not p.is_file():
            raise YamlError(f"{what} not found" if not p.exists() else f"{what} is not a regular file",
                            path=str(p))
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise YamlError(f"too large for a {what} ({size:,} bytes; at most {MAX_BYTES:,})", path=str(p))
        data = p.read_bytes()
    except OSError as exc:
        raise YamlError(f"cannot read: {exc.strerror or exc}", path=str(p)) from None
    return parse(data, str(p))


def dumps(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
