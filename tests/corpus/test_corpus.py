"""The bad-input corpus through `reenact-fx render` in this process: every case must end in a clear
error naming the file and the problem, or in a sensible render (see ``cases.classify``).  Faults that
need a process of their own (signals, a full disk, two renders at once) are in test_faults.py.

``python -m tests.corpus.measure`` runs the same cases each in a subprocess and counts the classes."""

from __future__ import annotations

import pytest

from .cases import CASES, argv_of, classify
from .media import Media
from .run import context, run_inprocess, slug

INPROCESS = [c for c in CASES if not c.fault]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, Media(root / "media"), root / "cache"


@pytest.mark.parametrize("case", INPROCESS, ids=[slug(c.name) for c in INPROCESS])
def test_case(corpus, case):
    root, media, cache = corpus
    if case.shared and not media.shared(case.shared).exists():
        pytest.skip(f"needs the shared face material ({case.shared})")
    ctx = context(case, media, root, cache)
    rc, err = run_inprocess(argv_of(case, ctx))
    cls, why = classify(case, ctx, rc, err)
    assert cls != "bad", f"{case.name}: {why}"
