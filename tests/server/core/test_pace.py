"""``UpdatePace``: busy above a rate of updates, then ``minInterval``."""

from __future__ import annotations

import pytest

from jobwatch.server.core.pace import UpdatePace


def test_under_the_threshold_no_pacing() -> None:
    pace = UpdatePace(above=3, interval=5.0)
    assert [pace.hit(10.0 + i / 10) for i in range(3)] == [None, None, None]


def test_above_the_threshold_each_answer_carries_the_interval() -> None:
    pace = UpdatePace(above=3, interval=5.0)
    answers = [pace.hit(10.0 + i / 10) for i in range(6)]
    assert answers == [None, None, None, 5.0, 5.0, 5.0]


def test_the_previous_second_counts_by_how_much_of_it_is_still_in_the_window() -> None:
    pace = UpdatePace(above=3, interval=5.0)
    for i in range(4):
        pace.hit(10.0 + i / 10)
    assert pace.hit(11.1) == 5.0  # 4 * 0.9 + 1 > 3
    assert pace.hit(11.9) is None  # 4 * 0.1 + 2 < 3


def test_a_quiet_gap_forgets_the_old_rate() -> None:
    pace = UpdatePace(above=2, interval=5.0)
    for _ in range(10):
        pace.hit(10.5)
    assert pace.hit(20.0) is None


def test_zero_never_paces() -> None:
    pace = UpdatePace(above=0, interval=5.0)
    assert all(pace.hit(1.0) is None for _ in range(1000))


@pytest.mark.parametrize(
    ("above", "interval"), [(-1, 5.0), (float("nan"), 5.0), (3, 0), (3, float("inf"))]
)
def test_bad_settings_are_refused(above: float, interval: float) -> None:
    with pytest.raises(ValueError):
        UpdatePace(above, interval)
