"""The progress rules without a server: ``jobwatch.server.core.rules`` called directly.

Unit tests of each rule and hypothesis property tests of the estimates over
arbitrary sequences of updates and reads.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch.contract.requests import CompleteRequest, JobSpec, ProgressUpdate, parse_body
from jobwatch.errors import JobFinished, WorkerMismatch
from jobwatch.server.core import rules

T0 = 1_800_000_000.0


def job(**fields: Any) -> dict[str, Any]:
    return {**rules.new_job("j", JobSpec(), T0), **fields}


def update(progress: float, **fields: Any) -> ProgressUpdate:
    body = {"workerId": "w", "progress": progress, **fields}
    return parse_body(ProgressUpdate, json.dumps(body).encode())


def run(steps: list[tuple[float, float]], start: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply (seconds after the start, progress) updates in order; the final row."""
    row = start or job()
    for at, p in steps:
        row = rules.apply_progress(row, update(p), T0 + at).job
    return row


def test_the_rules_import_no_web_framework_or_database() -> None:
    code = (
        "import sys, jobwatch.server.core.rules; "
        "print(sorted(m for m in ('flask', 'flask_sock', 'sqlalchemy', 'psycopg', 'redis') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_first_update_binds_starts_and_publishes() -> None:
    outcome = rules.apply_progress(
        job(), update(0, logLines=[{"level": "INFO", "message": "hi"}]), T0
    )
    assert outcome.changes["worker_id"] == "w"
    assert outcome.changes["status"] == "running"
    assert outcome.changes["started_at"] == T0
    assert [e.type for e in outcome.events] == ["JOB_PROGRESS", "JOB_LOGS"]
    assert [e.seq for e in outcome.events] == [1, 2]
    assert outcome.reply["seq"] == 2
    assert outcome.log_rows[0]["level"] == "info"
    assert outcome.job["n_info"] == 1


def test_another_worker_and_a_finished_job_are_refused() -> None:
    with pytest.raises(WorkerMismatch):
        rules.apply_progress(job(worker_id="other"), update(5), T0)
    with pytest.raises(JobFinished):
        rules.apply_progress(job(status="completed"), update(5), T0)


def test_a_repeated_update_id_changes_nothing_and_answers_the_stored_reply() -> None:
    first = rules.apply_progress(job(), update(5, updateId="u1"), T0)
    assert first.applied_update == {
        "job_id": "j",
        "update_id": "u1",
        "seq": 1,
        "reply": first.reply,
    }
    again = rules.apply_progress(
        first.job, update(5, updateId="u1"), T0 + 1, applied_reply=first.reply
    )
    assert (again.changes, again.events, again.reply) == ({}, [], first.reply)


def test_a_seed_worker_gets_the_seed_average_until_a_smoothed_rate_exists() -> None:
    """The seed's troubleshooting: a number once the job has ``startedAt`` and
    progress > 0, its average ``elapsed * (100 - p) / p``, at least the minimum."""
    first = rules.apply_progress(job(), update(45), T0)
    assert first.reply["timeRemaining"] == rules.MIN_REMAINING  # elapsed is 0 at the start
    again = rules.apply_progress(first.job, update(45), T0 + 1)
    assert again.reply["timeRemaining"] == pytest.approx(1 * 55 / 45)
    assert rules.job_estimates(again.job, T0 + 100).time_remaining == pytest.approx(100 * 55 / 45)
    # progress moved: 5 % in the 11 s since it was last seen changing; tqdm's rate takes over
    moved = rules.apply_progress(again.job, update(50), T0 + 11)
    assert moved.reply["timeRemaining"] == pytest.approx(50 / (5 / 11))


def test_a_declared_resume_has_no_estimate_until_progress_moves() -> None:
    resumed = rules.apply_progress(job(), update(40, resumedFrom=40), T0).job
    assert resumed["resumed_from"] == 40
    assert rules.job_estimates(resumed, T0 + 600).time_remaining is None
    still = rules.apply_progress(resumed, update(40), T0 + 300).job  # the declaration stays
    assert rules.job_estimates(still, T0 + 600).time_remaining is None
    moved = run([(600, 50)], still)
    assert rules.job_estimates(moved, T0 + 600).time_remaining == pytest.approx(50 * 60)


def test_a_resume_from_zero_is_a_start_from_scratch() -> None:
    row = rules.apply_progress(job(), update(45, resumedFrom=0), T0).job
    assert row["resumed_from"] is None
    assert rules.job_estimates(row, T0 + 9).time_remaining == pytest.approx(9 * 55 / 45)


def test_a_pause_is_left_out_of_the_rate() -> None:
    steady = [(10.0 * k, 2.0 * k) for k in range(21)]  # 2 % per 10 s up to 40 %
    before = rules.job_estimates(run(steady), T0 + 200).time_remaining
    after_pause = run([*steady, (200 + 3600, 42)])
    assert rules.job_estimates(after_pause, T0 + 3800).time_remaining == pytest.approx(
        before * 58 / 60
    )


def test_is_pause_needs_a_typical_step_a_long_gap_and_little_progress() -> None:
    typical = rules.update_rate(rules.RateState(), 2, 10)  # 0.2 %/s in 10 s steps
    assert not rules.is_pause(rules.RateState(), 3600, 0)  # no typical step yet
    assert not rules.is_pause(typical, 90, 0)  # shorter than 10 steps
    assert rules.is_pause(typical, 3600, 2)
    assert not rules.is_pause(typical, 200, 40)  # worked through it at its usual speed


def test_late_updates_and_clock_steps() -> None:
    row = rules.apply_progress(job(), update(50, timestamp="2027-01-15T08:00:00Z"), T0).job
    late = rules.apply_progress(row, update(40, timestamp="2027-01-15T07:59:30Z"), T0 + 1)
    assert late.job["progress"] == 50
    stepped = rules.apply_progress(row, update(55, timestamp="2027-01-15T07:00:00Z"), T0 + 1)
    assert stepped.job["progress"] == 55


def test_completion() -> None:
    changes, events, alerts = rules.complete_job(job(seq=4), CompleteRequest(workerId="w"), T0)
    assert changes["progress"] == 100.0
    assert [(e.type, e.seq) for e in events] == [("JOB_COMPLETED", 5)]
    assert alerts == []


def test_a_failed_job_gets_an_alert_just_before_its_completion_event() -> None:
    request = CompleteRequest(workerId="w", status="failed", error="CUDA out of memory")
    changes, events, alerts = rules.complete_job(job(seq=4), request, T0)
    assert [(e.type, e.seq) for e in events] == [("JOB_ALERT", 5), ("JOB_COMPLETED", 6)]
    assert (changes["completed_seq"], changes["seq"], changes["n_alerts"]) == (6, 6, 1)
    assert (alerts[0]["level"], alerts[0]["source"], alerts[0]["text"]) == (
        "error",
        "failed",
        "CUDA out of memory",
    )


# -- properties -----------------------------------------------------------------------

progress_values = st.floats(min_value=0, max_value=100, allow_nan=False)
gaps = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(gaps, progress_values), min_size=1, max_size=30),
    read_after=gaps,
    price=st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False)),
    resumed_from=st.one_of(st.none(), progress_values),
)
def test_estimates_are_never_negative_nan_or_zero_before_done(
    steps: list[tuple[float, float]],
    read_after: float,
    price: float | None,
    resumed_from: float | None,
) -> None:
    row = job(price_per_hour=price)
    at = 0.0
    for gap, p in steps:
        at += gap
        row = rules.apply_progress(row, update(p, resumedFrom=resumed_from), T0 + at).job
        check(row, T0 + at)
        # the seed's promise: a number once started (at progress so close to 0 that
        # 100 / p overflows, no finite number exists and null is the honest answer)
        if 1e-9 <= p < 100 and not resumed_from:
            assert rules.job_estimates(row, T0 + at).time_remaining is not None
    check(row, T0 + at + read_after)


def check(row: dict[str, Any], now: float) -> None:
    est = rules.job_estimates(row, now)
    for value in (est.elapsed, est.time_remaining, est.cost_so_far, est.estimated_total_cost):
        assert value is None or (math.isfinite(value) and value >= 0)
    if row["progress"] < 100 and est.time_remaining is not None:
        assert est.time_remaining > 0


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0.001, 1e5), st.floats(0.001, 5)), min_size=2, max_size=40),
    pause=st.floats(1e3, 1e7),
)
def test_a_pause_never_changes_the_estimate_right_after_it_much(
    steps: list[tuple[float, float]], pause: float
) -> None:
    """Whatever the history, one long silent gap followed by one typical step
    leaves the estimate within the step's own share of it."""
    row = job()
    at, p = 0.0, 0.0
    for dt, dp in steps:
        at, p = at + dt, min(60.0, p + dp)
        row = rules.apply_progress(row, update(p), T0 + at).job
    before = rules.job_estimates(row, T0 + at).time_remaining
    state = rules.RateState.of(row)
    step = state.step()
    if before is None or step is None or pause <= rules.PAUSE_FACTOR * step[1]:
        return
    if row["pause_streak"]:  # the last step was a pause itself: this gap is counted
        return
    after = rules.apply_progress(row, update(p), T0 + at + pause).job
    got = rules.job_estimates(after, T0 + at + pause).time_remaining
    assert got == pytest.approx(before, rel=1e-6)


def spec(**fields: Any) -> JobSpec:
    return parse_body(JobSpec, json.dumps(fields).encode())


BOUND = {"worker_id": "w", "name": "n", "price_per_hour": 2.0, "status": "running"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "renamed"},
        {"pricePerHour": 1_000_000},
        {"currency": "USD"},
        {"providerId": "p"},
        {"name": "renamed", "workerId": "other"},
    ],
)
def test_a_job_bound_to_a_worker_takes_spec_changes_from_that_worker_only(
    body: dict[str, Any],
) -> None:
    with pytest.raises(WorkerMismatch):
        rules.spec_changes(job(**BOUND), spec(**body), T0)
    assert rules.spec_changes(job(**BOUND), spec(**{**body, "workerId": "w"}), T0)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "renamed", "workerId": "w"},
        {"pricePerHour": 1_000_000, "workerId": "w"},
        {"currency": "USD", "workerId": "w"},
        {"providerId": "p", "workerId": "w"},
        {"pricePerHour": 1_000_000},
    ],
)
@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_a_finished_job_is_settled(body: dict[str, Any], status: str) -> None:
    finished = job(**{**BOUND, "status": status})
    expected = JobFinished if "workerId" in body else WorkerMismatch
    with pytest.raises(expected):
        rules.spec_changes(finished, spec(**body), T0)


def test_a_spec_that_changes_nothing_is_answered_as_is_whoever_sends_it() -> None:
    # Idempotent PUT: a worker restarting, or a dashboard re-sending what it read.
    settled = job(**{**BOUND, "status": "completed", "currency": "QUBIC"})
    same = {"name": "n", "pricePerHour": 2.0, "currency": "qubic"}
    assert rules.spec_changes(settled, spec(**same), T0) == {}
    assert rules.spec_changes(settled, spec(**same, workerId="w"), T0) == {}
    with pytest.raises(WorkerMismatch):
        rules.spec_changes(settled, spec(**same, workerId="other"), T0)


def test_an_unbound_job_takes_spec_changes_from_anyone_and_a_worker_binds_it() -> None:
    assert rules.spec_changes(job(), spec(name="x"), T0) == {"name": "x", "updated_at": T0}
    assert rules.spec_changes(job(), spec(workerId="w"), T0)["worker_id"] == "w"


def test_a_repeated_update_id_from_another_worker_is_refused() -> None:
    first = rules.apply_progress(job(), update(5, updateId="u1"), T0)
    other = parse_body(
        ProgressUpdate, json.dumps({"workerId": "x", "progress": 5, "updateId": "u1"}).encode()
    )
    with pytest.raises(WorkerMismatch):
        rules.apply_progress(first.job, other, T0 + 1, applied_reply=first.reply)


def test_a_repeated_update_id_after_completion_answers_the_stored_reply() -> None:
    # A retry of an update applied before the job finished (its reply was lost).
    first = rules.apply_progress(job(), update(5, updateId="u1"), T0)
    done = {**first.job, "status": "completed"}
    again = rules.apply_progress(done, update(5, updateId="u1"), T0 + 1, applied_reply=first.reply)
    assert (again.changes, again.reply) == ({}, first.reply)
