"""Effect.analyze(timing=...) and Effect.frames(range): the two public calls batch rendering uses."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from reenact_fx.demo import PERFORMANCE
from reenact_fx.errors import ReenactError
from reenact_fx.pipeline.effect import Effect
from reenact_fx.pipeline.timing import Timing


def test_timing_sets_the_output_grid_and_frames_match_render_frame(astronaut_png):
    n = 9
    # a still target and keyframed controls: 9 frames at 30 fps, the performance entered at 1.0 s
    timing = Timing(Fraction(30), np.zeros(n), 1.0 + np.arange(n) / 30)
    with Effect(controls=PERFORMANCE) as fx:
        a = fx.analyze(str(astronaut_png), timing=timing)
        assert a.frame_count == n and a.fps == 30
        chunk = list(fx.frames(range(3, 7)))
        assert [t for t, _, _ in chunk] == [3, 4, 5, 6]
        for t, rgb, a8 in chunk:
            assert a8 is None and np.array_equal(rgb, fx.render_frame(t))
        with_alpha = list(fx.frames(range(0, 2), alpha=True))
        assert with_alpha[0][2].dtype == np.uint8 and with_alpha[0][2].max() > 0
        with pytest.raises(ReenactError):
            list(fx.frames(range(5, n + 1)))


def test_timing_is_checked():
    with pytest.raises(ReenactError):
        Timing(Fraction(25), np.zeros(3), np.zeros(2))
    with pytest.raises(ReenactError):
        Timing(Fraction(0), np.zeros(3), np.zeros(3))
    with pytest.raises(ReenactError):
        Timing(Fraction(25), np.array([0.0, np.nan]), np.zeros(2))
