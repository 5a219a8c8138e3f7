"""The one backoff of every retry loop (:mod:`jobwatch.contract.backoff`): its two jitter
styles stay inside their bounds and bad parameters are refused."""

from __future__ import annotations

import random

import pytest

from jobwatch.contract.backoff import Backoff


@pytest.mark.parametrize(("jitter", "low_share"), [("full", 0.0), ("half", 0.5)])
def test_each_delay_lies_between_its_share_of_the_ceiling_and_the_ceiling(
    jitter: str, low_share: float
) -> None:
    backoff = Backoff(0.5, 30.0, random.Random(7), jitter=jitter)  # type: ignore[arg-type]
    for failures in range(12):
        ceiling = min(30.0, 0.5 * 2**failures)
        delay = backoff.next_delay()
        assert low_share * ceiling <= delay <= ceiling
    assert backoff.failures == 12


def test_half_jitter_never_retries_sooner_than_half_the_ceiling_but_still_spreads() -> None:
    delays = [Backoff(1.0, 8.0, jitter="half").next_delay() for _ in range(200)]
    assert min(delays) >= 0.5 and max(delays) <= 1.0
    assert len({round(d, 4) for d in delays}) > 150


def test_bad_parameters_are_refused_with_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="jitter must be 'full' or 'half'"):
        Backoff(jitter="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need 0 < base <= cap"):
        Backoff(base=2.0, cap=1.0)


def test_the_subscription_and_the_server_share_the_one_class() -> None:
    from jobwatch.client import subscription
    from jobwatch.server.events import redis_broker

    assert subscription.Backoff is Backoff
    assert redis_broker.Backoff is Backoff
