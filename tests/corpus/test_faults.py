"""Faults a render must survive, each in a subprocess: SIGTERM and SIGKILL mid-render (nothing left
behind; a rerun succeeds and sweeps the dead render's partial), two renders to one path, a full
disk (a clear error naming the file; needs root to mount a small tmpfs, skipped otherwise)."""

from __future__ import annotations

import os

import pytest

from .cases import CASES, classify
from .media import Media
from .run import context, run_fault, slug

FAULTS = [c for c in CASES if c.fault]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return root, Media(root / "media"), root / "cache"


@pytest.mark.parametrize("case", FAULTS, ids=[slug(c.name) for c in FAULTS])
def test_fault(corpus, case):
    root, media, cache = corpus
    if case.fault == "full_disk" and os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    ctx = context(case, media, root, cache)
    rc, err = run_fault(case, ctx)
    if "(skipped:" in err:
        pytest.skip(err.strip())
    cls, why = classify(case, ctx, rc, err)
    assert cls != "bad", f"{case.name}: {why}"
