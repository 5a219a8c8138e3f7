"""Client.subscribe_jobs and FleetFollower against a real server: every job first,
then changes, and a resume with ``since`` after the server drops the connection."""

from __future__ import annotations

from typing import Any

import pytest

from jobwatch import Client
from jobwatch.view.fleet_follow import FleetFollower
from tests.conftest import wait_for


def ids(message: dict[str, Any]) -> set[str]:
    return {s["id"] for s in message["data"]["jobs"]}


def test_a_fleet_subscription_resumes_with_since_after_a_drop(
    server: Any, client: Client, clock: Any
) -> None:
    client.create_job(job_id="old")
    client.report_progress("old", "w", 5)
    clock.advance(60)
    with client.subscribe_jobs() as fleet:
        first = next(fleet)
        assert first["type"] == "JOBS_CHANGED" and ids(first) == {"old"}
        assert fleet.last_seq is None  # the first pages are no resume point
        clock.advance(1)  # the next tick: a later server time than the first pages
        client.create_job(job_id="new")
        client.report_progress("new", "w", 1)
        tick = next(fleet)
        assert ids(tick) == {"new"} and fleet.last_seq == tick["seq"]
        clock.advance(60)  # "old" changed long before the resume point
        for session in list(server.services.sessions):
            session.shutdown()  # the server closes every WebSocket (1001)
        client.report_progress("new", "w", 2)
        again = next(fleet)
        assert ids(again) == {"new"} and again["data"]["jobs"][0]["progress"] == 2
        assert fleet.reconnects == 1 and fleet.state == "live"


def test_bad_fleet_subscriptions_are_refused_before_connecting(client: Client) -> None:
    with pytest.raises(ValueError, match="status must be one of pending, running"):
        client.subscribe_jobs(status="done")
    with pytest.raises(ValueError, match="since must be a seq number"):
        client.subscribe_jobs(since=-1)


def test_a_follower_keeps_a_fleet_state_current_and_wakes_its_view(
    server: Any, client: Client
) -> None:
    wakes: list[None] = []
    client.create_job(job_id="a")
    follower = FleetFollower(client, on_change=lambda: wakes.append(None)).start()
    try:
        wait_for(lambda: "a" in follower.state.rows and follower.connection == "live")
        client.report_progress("a", "w", 42)
        wait_for(lambda: follower.state.rows["a"]["progress"] == 42)
        assert wakes
    finally:
        follower.close()
    assert follower.connection == "closed" and follower.error is None
