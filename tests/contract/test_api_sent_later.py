"""Updates sent later than they happened (a spool sent by ``jobwatch sync``, an
outbox drained after an outage) are placed in the server's time by their age.

A request may say when it was composed (``timestamp``) and when it was sent
(``sentAt``), both on the worker's clock; their difference is its age, free of
any skew between the worker's clock and the server's. The job's ``startedAt``
and ``completedAt``, and with them its elapsed time and cost, are the server's
time of arrival less that age. The worker's clock here is a day off the
server's, to show that only the difference counts.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import iso, js

PRICE = 3600.0  # per hour: 1 per second
SKEW = -86_400.0  # the worker's clock, a day behind the server's


def _post(api: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(path, json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = js(r)
    return answer


def _job(api: Any, job_id: str) -> dict[str, Any]:
    r = api.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200
    body: dict[str, Any] = js(r)["job"]
    return body


def test_a_job_run_offline_and_synced_later_keeps_its_duration_and_cost(
    api: Any, clock: Any, job: str
) -> None:
    ran_at = clock() + SKEW  # the worker's clock while it ran, 2 h before the sync
    clock.advance(7200)
    synced_at = clock() + SKEW
    progress = f"/api/jobs/{job}/progress"
    for second, p in ((0, 10), (5, 50), (10, 90)):
        _post(
            api,
            progress,
            {
                "workerId": "w",
                "progress": p,
                "timestamp": iso(ran_at + second),
                "sentAt": iso(synced_at),
            },
        )
    done = _post(
        api,
        f"/api/jobs/{job}/complete",
        {"workerId": "w", "timestamp": iso(ran_at + 12), "sentAt": iso(synced_at)},
    )
    row = done["job"]
    assert row["startedAt"] == iso(clock() - 7200)
    assert row["completedAt"] == iso(clock() - 7200 + 12)
    body = js(api.get(f"/api/jobs/{job}/monitor"))
    assert body["costSoFar"] == pytest.approx(12 * PRICE / 3600, abs=0.002)


def test_a_live_job_whose_end_is_sent_late_is_charged_to_its_end(
    api: Any, clock: Any, job: str
) -> None:
    """The server saw it start; the connection went at 60 s, the job ended at
    600 s and its completion was sent by a sync an hour later."""
    _post(api, f"/api/jobs/{job}/progress", {"workerId": "w", "progress": 1})
    clock.advance(600 + 3600)
    now = clock() + SKEW
    _post(
        api,
        f"/api/jobs/{job}/complete",
        {"workerId": "w", "timestamp": iso(now - 3600), "sentAt": iso(now)},
    )
    row = _job(api, job)
    assert row["completedAt"] == iso(clock() - 3600)
    body = js(api.get(f"/api/jobs/{job}/monitor"))
    assert body["costSoFar"] == pytest.approx(600 * PRICE / 3600, abs=0.002)


def test_without_sent_at_the_arrival_is_the_time(api: Any, clock: Any, job: str) -> None:
    """The seed's requests carry no ``sentAt``: nothing changes for them, and a
    ``timestamp`` alone is used only to order updates (it is on another clock)."""
    _post(api, f"/api/jobs/{job}/progress", {"workerId": "w", "progress": 5, "timestamp": iso(0)})
    assert _job(api, job)["startedAt"] == iso(clock())


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "field"),
    [
        (None, 100.0, "sentAt"),  # an age needs both
        (100.0, 50.0, "sentAt"),  # sent before it happened
        (0.0, 40 * 86_400.0, "sentAt"),  # older than the spool keeps anything
    ],
)
def test_an_age_that_cannot_be_is_refused_and_changes_nothing(
    api: Any, clock: Any, job: str, timestamp: float | None, sent_at: float, field: str
) -> None:
    base = clock() + SKEW
    body: dict[str, Any] = {"workerId": "w", "progress": 5, "sentAt": iso(base + sent_at)}
    if timestamp is not None:
        body["timestamp"] = iso(base + timestamp)
    before = _job(api, job)
    for path in ("progress", "complete"):
        r = api.post(f"/api/jobs/{job}/{path}", json=body)
        assert r.status_code == 400, r.text
        assert [d["field"] for d in js(r)["error"]["details"]] == [field]
    assert _job(api, job) == before


def test_a_completion_older_than_the_start_ends_where_the_job_started(
    api: Any, clock: Any, job: str
) -> None:
    """The end is never before the start: a completion older than the first update
    ends the job where it started (elapsed 0, cost 0)."""
    now = clock() + SKEW
    _post(
        api,
        f"/api/jobs/{job}/progress",
        {"workerId": "w", "progress": 5, "timestamp": iso(now - 10), "sentAt": iso(now)},
    )
    _post(
        api,
        f"/api/jobs/{job}/complete",
        {"workerId": "w", "timestamp": iso(now - 20), "sentAt": iso(now)},
    )
    row = _job(api, job)
    assert row["completedAt"] == row["startedAt"] == iso(clock() - 10)


def test_what_a_late_job_sent_stays_in_its_windows(api: Any, clock: Any, job: str) -> None:
    """Samples and training metrics keep their arrival time while the job's end is
    placed earlier: the windows of a finished job (``/metrics``, ``/scalars``) end
    at its last write, not at its placed end (before: both came back empty)."""
    ran_at = clock() + SKEW
    clock.advance(600)
    synced_at = clock() + SKEW
    _post(
        api,
        f"/api/jobs/{job}/progress",
        {
            "workerId": "w",
            "progress": 50,
            "metrics": {"gpuUtilization": 90, "gpuMemoryUsed": 1, "gpuMemoryTotal": 8},
            "scalars": {"step": 1, "values": {"loss": 0.5}},
            "timestamp": iso(ran_at),
            "sentAt": iso(synced_at),
        },
    )
    clock.advance(1)
    _post(
        api,
        f"/api/jobs/{job}/complete",
        {"workerId": "w", "timestamp": iso(ran_at + 5), "sentAt": iso(synced_at + 1)},
    )
    scalars = js(api.get(f"/api/jobs/{job}/scalars"))["scalars"]
    assert [p["value"] for p in scalars["loss"]] == [0.5]
    samples = js(api.get(f"/api/jobs/{job}/metrics"))["metrics"]
    assert [s["gpuUtilization"] for s in samples] == [90]
