"""Cost over price changes without a server: ``jobwatch.server.core.pricing`` and the
estimates built on it. A property test checks, over arbitrary price changes, that
the row's running integral, the stored segments and a sum worked out here agree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch.contract.requests import JobSpec
from jobwatch.server.core import pricing, rules
from jobwatch.server.core.job_row import JobRow, with_changes

T0 = 1_800_000_000.0


def job(**fields: Any) -> JobRow:
    return with_changes(rules.new_job("j", JobSpec(), T0), fields)


def test_a_change_while_running_closes_the_segment_up_to_now() -> None:
    row = job(price_per_hour=10.0, started_at=T0, status="running")
    changes = pricing.price_change(row, 40.0, T0 + 3600)
    assert changes == {"price_per_hour": 40.0, "price_from": T0 + 3600, "price_cost": 10.0}
    assert pricing.closed_segment(row, changes) == {
        "job_id": "j",
        "start_at": T0,
        "end_at": T0 + 3600,
        "price_per_hour": 10.0,
    }


def test_no_segment_before_the_start_without_an_earlier_price_or_for_the_same_price() -> None:
    pending = job(price_per_hour=10.0)
    assert pricing.price_change(pending, 5.0, T0 + 60) == {"price_per_hour": 5.0}
    unpriced = job(started_at=T0, status="running")
    assert pricing.price_change(unpriced, 5.0, T0 + 60) == {"price_per_hour": 5.0}
    priced = job(price_per_hour=10.0, started_at=T0, status="running")
    assert pricing.price_change(priced, 10.0, T0 + 60) == {}
    same_instant = pricing.price_change(priced, 3.0, T0)
    assert same_instant == {"price_per_hour": 3.0, "price_from": T0}
    assert pricing.closed_segment(priced, same_instant) is None


def test_the_timeline_gives_cost_at_any_moment_and_between_any_two() -> None:
    row = job(
        price_per_hour=4.0,
        started_at=T0,
        status="running",
        price_from=T0 + 7200,
        price_cost=30.0,
    )
    closed = [
        {"start_at": T0 + 3600, "end_at": T0 + 7200, "price_per_hour": 20.0},
        {"start_at": T0, "end_at": T0 + 3600, "price_per_hour": 10.0},
    ]
    timeline = pricing.PriceTimeline(row, closed, T0 + 3 * 3600)
    assert timeline.cost_at(T0 - 10) == 0.0
    assert timeline.cost_at(T0 + 1800) == pytest.approx(5.0)
    assert timeline.cost_at(T0 + 3600) == pytest.approx(10.0)
    assert timeline.cost_at(T0 + 5400) == pytest.approx(20.0)
    assert timeline.cost_at(T0 + 3 * 3600) == pytest.approx(34.0)
    assert timeline.cost_at(T0 + 9 * 3600) == pytest.approx(34.0)  # the run ends now
    assert timeline.cost_between(T0 + 1800, T0 + 5400) == pytest.approx(15.0)
    unpriced = pricing.PriceTimeline(job(started_at=T0, status="running"), [], T0 + 60)
    assert not unpriced.priced and unpriced.cost_at(T0 + 30) is None


changes_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=20_000, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=0, max_value=500, allow_nan=False)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(first=st.one_of(st.none(), st.floats(0, 500)), steps=changes_strategy)
def test_the_running_integral_the_segments_and_the_sum_agree(
    first: float | None, steps: list[tuple[float, float | None]]
) -> None:
    row = job(price_per_hour=first, started_at=T0, status="running")
    closed: list[dict[str, Any]] = []
    now = T0
    held: list[tuple[float, float | None]] = [(T0, first)]  # (from, price), worked out here
    for gap, price in steps:
        now += gap
        if price is None:
            continue  # a PUT that gives no price changes none
        changes = pricing.price_change(row, price, now)
        segment = pricing.closed_segment(row, changes)
        if segment is not None:
            closed.append(segment)
        row = with_changes(row, changes)
        if held[-1][1] is None:
            held = [(T0, price)]  # a first price counts from the start
        elif price != held[-1][1]:
            held.append((now, price))
    end = now + 1234.5
    expected = sum(
        (b - a) / 3600 * p
        for (a, p), (b, _) in zip(held, [*held[1:], (end, None)], strict=True)
        if p is not None
    )
    figures = rules.job_estimates(row, end)
    timeline = pricing.PriceTimeline(row, closed, end)
    if held[-1][1] is None:
        assert figures.cost_so_far is None and timeline.cost_at(end) is None
        return
    assert figures.cost_so_far == pytest.approx(expected, rel=1e-9, abs=1e-5)
    assert timeline.cost_at(end) == pytest.approx(expected, rel=1e-9, abs=1e-5)
    assert timeline.cost_between(T0, end) == pytest.approx(expected, rel=1e-9, abs=1e-5)


def test_a_hang_across_a_price_change_costs_each_price_for_its_part() -> None:
    """Hung from 1,000 s at 6 an hour; repriced to 60 an hour at 2,800 s; moving again at
    4,600 s: 1,800 s at 6 (3.00) and 1,800 s at 60 (30.00), not 3,600 s at 60."""
    from jobwatch.server.core.alerts import hangs

    row = job(
        price_per_hour=6.0,
        started_at=T0,
        status="running",
        hung=1,
        hung_at=T0 + 1000,
        last_call_at=T0 + 1000,
    )
    row = with_changes(row, pricing.price_change(row, 60.0, T0 + 2800))
    ended = with_changes(row, hangs.end_hang(row, T0 + 4600))
    assert ended["hung_seconds"] == pytest.approx(3600)
    assert ended["hung_cost"] == pytest.approx(33.0)
