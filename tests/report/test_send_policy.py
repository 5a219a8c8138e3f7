"""The sender's policy (``SendPolicy``): when to send, retry or stop, and what an
update says, driven by a clock the test holds; no server, no thread.

The sender thread that drives it, against real servers, is tests/report/test_reporter*.py.
"""

from __future__ import annotations

import random

import pytest

from jobwatch.contract.backoff import Backoff
from jobwatch.contract.basics import MAX_BODY_BYTES, MAX_LOG_LINES
from jobwatch.errors import (
    APIError,
    AuthenticationError,
    ConnectionError,
    Forbidden,
    JobFinished,
    JobNotFound,
    PayloadTooLarge,
    RateLimited,
    StoreUnavailable,
    ValidationError,
    WorkerMismatch,
)
from jobwatch.report.send_policy import (
    BODY_SLACK,
    MAX_PACE,
    MIN_GAP,
    URGENT_RETRY,
    Failure,
    SendPolicy,
    Step,
    lines_that_fit,
    rejected,
)


class _Ceiling(random.Random):
    """Jitter that always draws the top of its range."""

    def uniform(self, a: float, b: float) -> float:
        return b


def policy(interval: float = 1.0) -> SendPolicy:
    """A policy whose backoff waits its ceilings: 0.5 s doubling to 30 s."""
    return SendPolicy(interval, Backoff(0.5, 30.0, _Ceiling(), jitter="half"))


def step(
    p: SendPolicy, now: float, *, news: bool = False, urgent: bool = False, **kw: object
) -> Step:
    args: dict[str, object] = {"finishing": False, "completing": False, "deadline": None}
    args.update(kw)
    return p.next_step(now, urgent=urgent, news=lambda: news, **args)  # type: ignore[arg-type]


def ready(interval: float = 1.0) -> SendPolicy:
    p = policy(interval)
    assert step(p, 0.0) == Step("ensure")
    p.ensured_job(0.0, "pending")
    p.succeeded()
    return p


# -- what next ----------------------------------------------------------------


def test_the_job_is_ensured_first_then_news_is_sent_at_most_once_per_interval() -> None:
    p = ready(interval=2.0)
    assert step(p, 0.0) == Step("wait", 2.0)  # nothing new
    assert step(p, 0.0, news=True) == Step("send")
    p.delivered(0.0, progress=5.0, backlog=False)
    assert step(p, 0.5, news=True) == Step("wait", 1.5)
    assert step(p, 0.5, news=True, urgent=True) == Step("send")  # a flush waits
    assert step(p, 2.0, news=True) == Step("send")


def test_a_log_backlog_is_sent_on_at_once() -> None:
    p = ready(interval=60.0)
    p.delivered(0.0, progress=0.0, backlog=True)
    assert step(p, 0.1, news=True) == Step("send")


def test_a_busy_servers_min_interval_spaces_updates_lines_and_backlog() -> None:
    p = ready(interval=1.0)
    p.delivered(0.0, progress=5.0, backlog=True, min_interval=5.0)
    lines = {"lines_waiting": lambda: True}
    assert step(p, 0.2, news=True) == Step("wait", 4.8)  # a backlog waits too
    assert step(p, 1.0, news=True, **lines) == Step("wait", 4.0)  # and log lines
    assert step(p, 1.0, news=True, urgent=True) == Step("send")  # a flush still goes
    assert step(p, 5.0, news=True) == Step("send")


def test_an_answer_without_min_interval_ends_the_pacing() -> None:
    p = ready(interval=1.0)
    p.delivered(0.0, progress=5.0, backlog=False, min_interval=5.0)
    p.delivered(5.0, progress=6.0, backlog=False)
    lines = {"lines_waiting": lambda: True}
    assert step(p, 5.0 + MIN_GAP, news=True, **lines) == Step("send")
    assert step(p, 5.5, news=True) == Step("wait", 0.5)


@pytest.mark.parametrize(
    ("given", "obeyed"),
    [(0.5, 1.0), (-3, 1.0), (float("nan"), 1.0), (float("inf"), 1.0), ("5", 1.0), (True, 1.0),
     (1e9, MAX_PACE)],
)  # fmt: skip
def test_min_interval_below_the_interval_or_nonsense_changes_nothing(
    given: object, obeyed: float
) -> None:
    p = ready(interval=1.0)
    p.delivered(0.0, progress=5.0, backlog=False, min_interval=given)
    assert step(p, 0.0, news=True) == Step("wait", obeyed)


def test_gpu_samples_keep_the_job_beating_every_interval() -> None:
    p = ready(interval=1.0)
    p.sampled(ok=True, metrics_sent=True)
    p.delivered(10.0, progress=5.0, backlog=False)
    assert step(p, 10.25) == Step("wait", 0.75)
    assert step(p, 11.0) == Step("send")  # nothing new but a sample is due
    p.sampled(ok=True, metrics_sent=False)  # the source has no GPU any more
    assert step(p, 12.0) == Step("wait", 1.0)


def test_a_failed_sample_is_tried_again_in_one_interval() -> None:
    p = ready(interval=1.0)
    p.sampled(ok=False, metrics_sent=False)
    p.delivered(0.0, progress=0.0, backlog=False)
    assert step(p, 1.0) == Step("send")


def test_closing_delivers_then_completes_then_ends() -> None:
    p = ready()
    assert step(p, 0.0, news=True, finishing=True) == Step("send")
    assert step(p, 0.0, finishing=True, completing=True) == Step("complete")
    assert step(p, 0.0, finishing=True) == Step("end")
    assert step(p, 5.0, news=True, finishing=True, deadline=5.0) == Step("end")


def test_requests_near_the_deadline_get_the_time_left() -> None:
    assert SendPolicy.http_timeout(0.0, None, 10.0) == 10.0
    assert SendPolicy.http_timeout(0.0, 2.0, 10.0) == 2.0
    assert SendPolicy.http_timeout(1.99, 2.0, 10.0) == 0.05


# -- failures -------------------------------------------------------------------


def test_an_unreachable_server_is_retried_with_backoff_and_warned_once() -> None:
    p = ready()
    failures = [p.failed(ConnectionError("refused"), float(t), at_exit=False) for t in range(4)]
    assert failures[0] == Failure("unreachable", 0.0, first=True)
    assert [f.first for f in failures] == [True, False, False, False]
    assert p.retry_at == 3.0 + 4.0  # 0.5, 1, 2, 4
    assert step(p, 5.0, news=True) == Step("wait", 2.0)
    # while a flush waits, at most URGENT_RETRY after the last failure
    assert step(p, 3.5, news=True, urgent=True) == Step("wait", 3.0 + URGENT_RETRY - 3.5)
    assert step(p, 4.0, news=True, urgent=True) == Step("send")
    assert p.succeeded() is True  # reachable again: said once
    assert p.succeeded() is False
    assert p.failed(StoreUnavailable("db"), 9.0, at_exit=False) == Failure("unreachable", 0.0, True)
    assert p.retry_at == 9.5  # the backoff starts over


def test_rate_limited_waits_retry_after_even_when_urgent() -> None:
    p = ready()
    assert p.failed(RateLimited("slow down", retry_after=0.5), 10.0, at_exit=False) == Failure(
        "rate_limited", 0.0
    )
    assert step(p, 10.0, news=True, urgent=True) == Step("wait", 0.5)
    assert step(p, 10.5, news=True, urgent=True) == Step("send")


@pytest.mark.parametrize(
    "exc",
    [
        JobFinished("done"),
        WorkerMismatch("other worker"),
        AuthenticationError("no token"),
        Forbidden("this read token may only read"),  # was 401, now 403 (RFC 9110 15.5.4)
    ],
)
def test_answers_that_can_never_succeed_stop_the_reporter(exc: APIError) -> None:
    assert ready().failed(exc, 0.0, at_exit=False) == Failure("fatal", None)
    assert not rejected(exc)


def test_a_lost_job_is_ensured_again_at_once_then_with_backoff() -> None:
    """The server restarted with an empty database: the job is re-created."""
    p = ready()
    p.ensured_job(30.0, "running")
    assert p.failed(JobNotFound("gone"), 1.0, at_exit=False) == Failure("not_found", 0.0)
    assert step(p, 1.0, news=True) == Step("ensure")
    assert p.failed(JobNotFound("gone"), 1.0, at_exit=False).kind == "not_found"
    assert step(p, 1.0) == Step("wait", 1.0)
    p.ensured_job(0.0, "pending")
    assert p.floor == 0.0 and p.started_job  # a re-created job sets no floor


def test_an_update_the_server_refuses_is_dropped_and_a_refused_job_stops() -> None:
    assert rejected(ValidationError("bad")) and rejected(PayloadTooLarge("big"))
    assert not rejected(RateLimited("slow")) and not rejected(JobNotFound("gone"))
    assert not rejected(StoreUnavailable("down"))
    assert ready().failed(ValidationError("bad name"), 0.0, at_exit=False) == Failure(
        "rejected", None
    )


def test_at_exit_an_unreachable_server_ends_at_once() -> None:
    assert ready().failed(ConnectionError("down"), 0.0, at_exit=True) == Failure(
        "unreachable_at_exit", None
    )


def test_a_bug_is_retried() -> None:
    p = ready()
    assert p.failed(KeyError("x"), 0.0, at_exit=False) == Failure("error", 0.0)
    assert p.retry_at == 0.5


# -- what an update says ----------------------------------------------------------------


def test_a_reporter_that_started_from_scratch_declares_no_resume() -> None:
    p = ready()
    assert p.progress(None) == 0.0  # update() never called: the server's
    assert p.progress(30.0) == 30.0
    assert p.resumed_from(None) is None and p.resumed_from(0.0) is None


def test_track_with_initial_declares_its_start() -> None:
    assert ready().resumed_from(40.0) == 40.0


def test_attaching_to_a_running_job_never_moves_it_back_and_declares_the_resume() -> None:
    p = policy()
    p.ensured_job(45.0, "running")
    assert p.progress(None) == 45.0
    assert p.progress(40.0) == 45.0  # resumed from the checkpoint at 40 %
    assert p.progress(50.0) == 50.0
    assert p.resumed_from(None) == 45.0
    p.went_backwards()  # update(..., allow_backwards=True)
    assert p.progress(10.0) == 10.0 and p.resumed_from(None) is None


def test_a_pending_job_sets_no_floor() -> None:
    p = policy()
    p.ensured_job(20.0, "pending")
    assert p.progress(5.0) == 5.0 and p.progress(None) == 20.0


def test_the_server_progress_stands_in_until_update_is_called() -> None:
    p = ready()
    p.delivered(0.0, progress=33.0, backlog=False)
    assert p.progress(None) == 33.0


# -- how many log lines one request takes -----------------------------------------------


def test_at_most_1000_lines_go_in_one_request() -> None:
    assert lines_that_fit(100, [50] * 2500) == MAX_LOG_LINES
    assert lines_that_fit(100, [50] * 10) == 10
    assert lines_that_fit(100, []) == 0


def test_lines_fill_the_body_up_to_its_limit() -> None:
    room = MAX_BODY_BYTES - BODY_SLACK - 1000
    size = 16_000 * 2 + 100  # a 16 kB message of two-byte characters, escaped as JSON
    count = lines_that_fit(1000, [size] * 150)
    assert count == room // size
    assert 1000 + count * size <= MAX_BODY_BYTES - BODY_SLACK


def test_a_line_alone_over_the_room_still_goes() -> None:
    assert lines_that_fit(0, [MAX_BODY_BYTES * 2, 10]) == 1
