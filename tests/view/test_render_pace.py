"""``RenderPace``: a change after a quiet moment is drawn at once; a steady stream is paced."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobwatch.view.render_pace import RenderPace


def test_a_change_after_a_quiet_moment_is_drawn_at_once() -> None:
    pace = RenderPace(0.25, burst=4)
    assert pace.wait(100.0) == 0.0
    pace.drew(100.0)
    # Long after: the bucket is full again.
    assert pace.wait(200.0) == 0.0


def test_a_burst_goes_at_once_then_one_draw_per_gap() -> None:
    pace = RenderPace(0.25, burst=3)
    for _ in range(3):
        assert pace.wait(10.0) == 0.0
        pace.drew(10.0)
    assert pace.wait(10.0) == pytest.approx(0.25)
    assert pace.wait(10.1) == pytest.approx(0.15)
    assert pace.wait(10.25) == 0.0


def test_burst_one_is_a_minimum_gap() -> None:
    pace = RenderPace(0.1)
    pace.drew(5.0)
    assert pace.wait(5.04) == pytest.approx(0.06)
    assert pace.wait(5.1) == 0.0


def test_gap_zero_never_waits() -> None:
    pace = RenderPace(0.0)
    for _ in range(100):
        pace.drew(1.0)
    assert pace.wait(1.0) == 0.0


@given(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200))
def test_draws_that_obey_it_average_at_most_one_per_gap_beyond_the_burst(
    pauses: list[float],
) -> None:
    gap, burst = 0.25, 4
    pace = RenderPace(gap, burst)
    now, draws = 0.0, 0
    for pause in pauses:
        now += pause
        now += pace.wait(now)  # a caller that waits as told
        pace.drew(now)
        draws += 1
    assert draws <= burst + now / gap + 1e-9


@pytest.mark.parametrize(
    ("gap", "burst"), [(-1.0, 1), (float("inf"), 1), (float("nan"), 1), (0.1, 0)]
)
def test_bad_settings_are_refused(gap: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RenderPace(gap, burst)
