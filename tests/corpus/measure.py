"""Count the corpus's outcomes per class, every case in its own subprocess (time and memory limited,
so a hang or an OOM is a finding, not the end of the run):

    python -m tests.corpus.measure [--root DIR] [--only SUBSTRING] [--json OUT.json]

Prints one line per case (class, case, why) and the count per class."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .cases import CASES, argv_of, classify
from .media import Media
from .run import context, run_fault, run_subprocess


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", help="work folder (default: a new temporary one)")
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("--json", help="write the outcomes here")
    args = ap.parse_args(argv)
    root = Path(args.root or tempfile.mkdtemp(prefix="reenact-fx-corpus-"))
    media = Media(root / "media")
    cache = root / "cache"
    rows, counts = [], Counter()
    for case in CASES:
        if args.only and args.only.lower() not in case.name.lower():
            continue
        if case.shared and not media.shared(case.shared).exists():
            print(f"skip     {case.name} (needs shared {case.shared})", flush=True)
            continue
        ctx = context(case, media, root, cache)
        t0 = time.time()
        rc, err = run_fault(case, ctx) if case.fault else run_subprocess(argv_of(case, ctx))
        cls, why = classify(case, ctx, rc, err)
        dt = time.time() - t0
        counts[cls] += 1
        rows.append({"case": case.name, "group": case.group, "class": cls, "why": why, "seconds": dt})
        print(f"{cls:<8} {case.name:<52} {dt:6.1f}s  {why[:160]}", flush=True)
    print("\n" + ", ".join(f"{k}: {counts[k]}" for k in ("error", "handled", "bad")) +
          f" (of {sum(counts.values())})")
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "cases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
