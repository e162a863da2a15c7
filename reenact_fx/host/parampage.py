"""The host parameter page (OFX bundle's Resources/params.tsv), generated from the schemas."""

from __future__ import annotations

import sys
from typing import Any

from ..face.controls import CONTROLS
from ..face.tracking import TRACKING
from ..pipeline.registry import default_registry
from ..pipeline.schemas import EFFECT

def param_page(registry=None) -> str:
    """The host parameter page as tab-separated lines, generated from the components' schemas (the
    one source of truth) and written into the OFX bundle by its build:

        component  KIND  DEFAULT  NAME|NAME...
        param      OWNER  NAME  TYPE  DEFAULT  MIN  MAX  CHOICE|CHOICE...  HELP
        control    NAME  LO  HI  HELP
    """
    reg = registry or default_registry()

    def clean(s: Any) -> str:
        return "" if s is None else str(s).replace("\t", " ").replace("\n", " ")

    lines = []
    kinds = ("converter", "generator", "smoother", "mixer")
    for kind in kinds:
        lines.append("\t".join(["component", kind, reg.default(kind), "|".join(reg.names(kind))]))
    schemas = [TRACKING, EFFECT] + [reg.get(k, n).schema() for k in kinds for n in reg.names(k)]
    for s in schemas:
        for p in s.params:
            default = (("1" if p.default else "0") if p.type == "bool" else clean(p.default))
            lines.append("\t".join(["param", s.owner, p.name, p.type, default, clean(p.min),
                                    clean(p.max), "|".join(p.choices), clean(p.help)]))
    for c in CONTROLS:
        lines.append("\t".join(["control", c.name, clean(c.lo), clean(c.hi),
                                clean(f"{c.help} ({c.unit})")]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # python -m reenact_fx.host.parampage  (used by the bridge's build)
    if sys.argv[1:] in ([], ["params"]):
        sys.stdout.write(param_page())
        sys.exit(0)
    print("usage: python -m reenact_fx.host.parampage", file=sys.stderr)
    sys.exit(2)
