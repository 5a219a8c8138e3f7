"""Time remaining and cost, with the fake clock.

The expected numbers are worked out here from the documented rules
(docs/api.md "Estimates", ``jobwatch.server.core.rules.estimate``), not taken from
the server: the seed's average rate ``elapsed * (100 - p) / p`` from the
first update with progress > 0, then tqdm's EMA (smoothing 0.3) of progress
steps over their durations once progress has moved; a worker that declares a
resume (``resumedFrom``) has no time remaining until progress moves.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.contract.helpers import iso, js, strict_loads

PRICE = 7.2  # per hour: 0.002 per second
EPS = 1e-6


class TqdmRate:
    """tqdm.std.EMA (smoothing 0.3, bias-corrected) of progress steps and of their
    durations; the rate is their ratio, as tqdm's ``format_meter`` computes it."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.alpha = smoothing
        self.dn = 0.0
        self.dt = 0.0
        self.calls = 0

    def observe(self, dn: float, dt: float) -> None:
        beta = 1 - self.alpha
        self.dn = self.alpha * dn + beta * self.dn
        self.dt = self.alpha * dt + beta * self.dt
        self.calls += 1

    def rate(self) -> float:
        correction = 1 - (1 - self.alpha) ** self.calls
        return (self.dn / correction) / (self.dt / correction)


def cost(elapsed: float, price: float = PRICE) -> float:
    return elapsed / 3600 * price


def update(api: Any, job_id: str, p: float, **extra: Any) -> dict[str, Any]:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": p, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = js(r)
    return body


def monitor(api: Any, job_id: str) -> dict[str, Any]:
    r = api.get(f"/api/jobs/{job_id}/monitor")
    assert r.status_code == 200
    body: dict[str, Any] = js(r)
    return body


def figures(body: dict[str, Any]) -> tuple[Any, Any, Any]:
    return body["timeRemaining"], body["costSoFar"], body["estimatedTotalCost"]


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=EPS)


def test_nothing_is_known_before_the_first_update(api: Any, clock: Any, job: str) -> None:
    clock.advance(30)
    assert figures(monitor(api, job)) == (None, None, None)
    assert monitor(api, job)["job"]["startedAt"] is None


def test_at_progress_zero_time_remaining_is_null_but_cost_counts(
    api: Any, clock: Any, job: str
) -> None:
    reply = update(api, job, 0)
    assert reply["timeRemaining"] is None
    assert reply["costSoFar"] == 0
    assert reply["estimatedTotalCost"] is None

    clock.advance(100)
    body = monitor(api, job)
    assert body["timeRemaining"] is None
    assert body["costSoFar"] == approx(cost(100))
    assert body["estimatedTotalCost"] is None
    assert body["currency"] == "QUBIC"

    # from 0 to 20 % in 100 s: one rate observation
    reply = update(api, job, 20)
    rate = TqdmRate()
    rate.observe(20, 100)
    remaining = 80 / rate.rate()
    assert remaining == pytest.approx(400)
    assert reply["timeRemaining"] == approx(remaining)
    assert reply["costSoFar"] == approx(cost(100))
    assert reply["estimatedTotalCost"] == approx(cost(100 + remaining))
    assert figures(monitor(api, job)) == figures(reply)


def test_a_seed_worker_posting_45_twice_gets_a_number_at_once(
    api: Any, clock: Any, job: str
) -> None:
    """The seed's own example body, twice a second apart: its troubleshooting
    promises a time remaining once the job has ``startedAt`` and progress > 0,
    the seed's average ``elapsed * (100 - p) / p`` (at least 0.001 s)."""
    first = update(api, job, 45, currentOperation="Training epoch 5/10")
    assert first["timeRemaining"] == 0.001  # elapsed is 0 at the first update
    assert figures(monitor(api, job)) == figures(first)
    clock.advance(1)
    second = update(api, job, 45, currentOperation="Training epoch 5/10")
    assert second["timeRemaining"] == approx(1 * 55 / 45)
    assert second["estimatedTotalCost"] == approx(cost(1 + 55 / 45))
    assert figures(monitor(api, job)) == figures(second)
    clock.advance(9)
    assert monitor(api, job)["timeRemaining"] == approx(10 * 55 / 45)


def test_a_declared_resume_has_no_estimate_until_progress_moves(
    api: Any, clock: Any, job: str
) -> None:
    assert update(api, job, 40, resumedFrom=40)["timeRemaining"] is None
    clock.advance(30)
    assert update(api, job, 40, resumedFrom=40)["timeRemaining"] is None
    assert monitor(api, job)["timeRemaining"] is None
    clock.advance(30)
    reply = update(api, job, 50, resumedFrom=40)
    assert reply["timeRemaining"] == approx(50 / (10 / 60))  # the movement since the first
    assert figures(monitor(api, job)) == figures(reply)


def test_no_rate_until_progress_moves_then_tqdm_ema(api: Any, clock: Any, job: str) -> None:
    update(api, job, 10, resumedFrom=10)
    clock.advance(50)

    # a declared resume, one progress value so far: nothing was seen moving, so no rate yet
    elapsed = 50
    body = monitor(api, job)
    assert body["timeRemaining"] is None
    assert body["costSoFar"] == approx(cost(elapsed))
    assert body["estimatedTotalCost"] is None

    # a second progress value: tqdm's EMA from here on
    rate = TqdmRate()
    previous, last_change = 10.0, 0.0
    reply: dict[str, Any] = {}
    for p, wait in [(30, 0), (40, 50), (70, 10), (75, 40)]:  # (progress, seconds before it)
        clock.advance(wait)
        elapsed += wait
        reply = update(api, job, p)
        rate.observe(p - previous, elapsed - last_change)
        previous, last_change = p, elapsed
        remaining = (100 - p) / rate.rate()
        assert reply["timeRemaining"] == approx(remaining), p
        assert reply["costSoFar"] == approx(cost(elapsed))
        assert reply["estimatedTotalCost"] == approx(cost(elapsed + remaining))
        assert figures(monitor(api, job)) == figures(reply)
    # the EMA differs from the seed's average on this job, whose speed changes
    assert reply["timeRemaining"] != approx(elapsed * 25 / 75)


def test_an_unchanged_progress_value_is_not_a_rate_observation(
    api: Any, clock: Any, job: str
) -> None:
    update(api, job, 10)
    clock.advance(20)
    first = update(api, job, 30)
    assert first["timeRemaining"] == approx(70 / (20 / 20))
    second = update(api, job, 30, currentOperation="still 30")  # same time, same value
    assert second["timeRemaining"] == first["timeRemaining"]


def test_a_stalled_job_estimate_grows_instead_of_counting_down(
    api: Any, clock: Any, job: str
) -> None:
    update(api, job, 10)
    clock.advance(10)
    at_update = update(api, job, 20)["timeRemaining"]
    assert at_update == approx(80)
    previous = at_update
    for _ in range(3):
        clock.advance(300)  # no progress for far longer than a step
        now = monitor(api, job)["timeRemaining"]
        assert now is not None
        assert now > previous
        previous = now


def test_steady_job_read_between_updates_does_not_jump(api: Any, clock: Any, job: str) -> None:
    """A job that moves 10 % every 10 s, read 5 s after an update (half a normal
    step): the estimate must not exceed the one given at the update (80 s); the
    truth is 75 s and the seed's average says 60 s."""
    update(api, job, 10)
    clock.advance(10)
    assert update(api, job, 20)["timeRemaining"] == approx(80)
    clock.advance(5)
    mid_step = monitor(api, job)["timeRemaining"]
    assert mid_step is not None
    assert mid_step <= 80 + EPS, f"time remaining jumped from 80 s to {mid_step} s mid-step"


def test_without_a_price_cost_is_null(api: Any, clock: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    update(api, job_id, 0)
    clock.advance(40)
    reply = update(api, job_id, 40)
    assert reply["timeRemaining"] == approx(60 / (40 / 40))
    assert reply["costSoFar"] is None
    assert reply["estimatedTotalCost"] is None
    body = monitor(api, job_id)
    assert (body["costSoFar"], body["estimatedTotalCost"]) == (None, None)


def test_price_set_later_with_put_counts_from_the_start(api: Any, clock: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    update(api, job_id, 0)
    clock.advance(100)
    # The job is bound to worker "w" by its first update: only "w" may reprice it.
    priced = api.put(f"/api/jobs/{job_id}", json={"pricePerHour": PRICE, "workerId": "w"})
    assert priced.status_code == 200
    assert monitor(api, job_id)["costSoFar"] == approx(cost(100))


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_finished_job_has_zero_remaining_and_frozen_cost(
    api: Any, clock: Any, job: str, ws_factory: Any, status: str
) -> None:
    update(api, job, 0)
    clock.advance(200)
    update(api, job, 40)
    clock.advance(100)
    ws = ws_factory()
    assert ws.subscribe(job)["type"] == "subscribed"
    r = api.post(f"/api/jobs/{job}/complete", json={"workerId": "w", "status": status})
    assert r.status_code == 200, r.text
    ws.conn.settimeout(5)
    event = strict_loads(ws.conn.recv())
    if status == "failed":  # an extension: the failure's alert comes just before
        assert event["type"] == "JOB_ALERT"
        event = strict_loads(ws.conn.recv())
    assert event["type"] == "JOB_COMPLETED"
    assert event["data"]["costSoFar"] == approx(cost(300))

    for wait in (0, 1000, 86400):
        clock.advance(wait)
        body = monitor(api, job)
        assert body["timeRemaining"] == 0
        assert body["costSoFar"] == approx(cost(300))
        assert body["estimatedTotalCost"] == approx(cost(300))

    # a subscriber arriving a day later gets the same frozen cost
    late = ws_factory()
    assert late.subscribe(job)["type"] == "subscribed"
    late.conn.settimeout(5)
    event = strict_loads(late.conn.recv())
    assert event["type"] == "JOB_COMPLETED"
    assert event["data"]["costSoFar"] == approx(cost(300))


def test_progress_100_while_running_has_zero_remaining(api: Any, clock: Any, job: str) -> None:
    update(api, job, 0)
    clock.advance(60)
    reply = update(api, job, 100)
    assert reply["status"] == "running"
    assert reply["timeRemaining"] == 0
    assert reply["estimatedTotalCost"] == approx(cost(60))


# -- the worker's clock ------------------------------------------------------------


def test_an_older_worker_timestamp_never_moves_progress_back(
    api: Any, clock: Any, job: str
) -> None:
    t = clock()
    first = update(api, job, 50, currentOperation="A", timestamp=iso(t + 10))
    assert first["progress"] == 50
    clock.advance(1)
    late = update(
        api,
        job,
        40,
        currentOperation="B",
        timestamp=iso(t + 5),
        logLines=[{"level": "info", "message": "sent before A, arrived after"}],
        metrics={"gpuUtilization": 33},
    )
    assert late["progress"] == 50
    job_ = js(api.get(f"/api/jobs/{job}"))["job"]
    assert (job_["progress"], job_["currentOperation"]) == (50, "A")
    # its log lines and its sample are kept
    logs = js(api.get(f"/api/jobs/{job}/logs"))["logs"]
    assert [x["message"] for x in logs] == ["sent before A, arrived after"]
    assert monitor(api, job)["metrics"]["latest"]["gpuUtilization"] == 33

    clock.advance(1)
    newer = update(api, job, 60, currentOperation="C", timestamp=iso(t + 20))
    assert newer["progress"] == 60
    assert js(api.get(f"/api/jobs/{job}"))["job"]["currentOperation"] == "C"


def test_timestamps_with_offsets_are_compared_as_instants(api: Any, clock: Any, job: str) -> None:
    t = clock()
    update(api, job, 50, timestamp=iso(t + 10))
    # 09:00:05+01:00 is 08:00:05Z: five seconds older than the last one
    older = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + 5 + 3600)) + "+01:00"
    assert update(api, job, 40, timestamp=older)["progress"] == 50


@pytest.mark.parametrize(
    "worker_ts",
    ["9999-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z", "1970-01-01T00:00:00Z"],
)
def test_odd_worker_clocks_never_make_anything_negative(
    api: Any, clock: Any, job: str, worker_ts: str
) -> None:
    start = clock()
    reply = update(
        api,
        job,
        10,
        timestamp=worker_ts,
        logLines=[{"level": "info", "message": "m", "timestamp": worker_ts}],
    )
    for key in ("timeRemaining", "costSoFar", "estimatedTotalCost"):
        assert reply[key] is None or reply[key] >= 0
    clock.advance(20)
    body = monitor(api, job)
    assert body["job"]["startedAt"] == iso(start)  # the server's clock, not the worker's
    assert body["costSoFar"] == approx(cost(20))
    assert body["timeRemaining"] == approx(20 * 90 / 10)  # the seed's average
    for key in ("timeRemaining", "costSoFar", "estimatedTotalCost"):
        assert body[key] is None or body[key] >= 0
    (line,) = body["logs"]
    assert line["timestamp"] <= iso(start)  # never in the server's future


def test_server_clock_stepping_back_never_makes_anything_negative(
    api: Any, clock: Any, job: str
) -> None:
    update(api, job, 0)
    clock.advance(10)
    update(api, job, 10)
    clock.advance(-3600)  # NTP steps the server's clock back an hour
    try:
        body = monitor(api, job)
        for key in ("timeRemaining", "costSoFar", "estimatedTotalCost"):
            assert body[key] is None or body[key] >= 0, (key, body[key])
        reply = update(api, job, 20)
        for key in ("timeRemaining", "costSoFar", "estimatedTotalCost"):
            assert reply[key] is None or reply[key] >= 0, (key, reply[key])
    finally:
        clock.advance(3600)
