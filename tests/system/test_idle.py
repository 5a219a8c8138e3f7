"""Idle subscriptions: a quiet WebSocket stays open through a proxy that cuts
idle connections, because the server pings.

As shipped the server pings every 25 s and a common load-balancer idle timeout
is 60 s (AWS ALB's default); the soak ``python -m benchmarks --only idle``
keeps a subscription quiet for 10 min 30 s through such a proxy. Here the same
run is scaled down in time by :data:`SCALE`: every interval (pings, the
proxy's timeout, the quiet time, the longest gap allowed) is the shipped one
divided by 20, so the proof is the same and takes half a minute.

The control shows what the long test proves: with the pings far apart, the
same kind of proxy does cut the quiet connection, and the subscription comes
back by itself without losing the next event.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from jobwatch.server import EmbeddedServer
from jobwatch.server.deploy.process import ServerProcess
from jobwatch.server.web.app import DEFAULTS
from tests.idle_proxy import (
    EVENT_TIMEOUT,
    Follower,
    IdleProxy,
    create_job,
    post_progress,
    stay_quiet,
    target,
)

SHIPPED_PING_INTERVAL = 25.0
"""Seconds between the server's WebSocket pings as shipped."""
SHIPPED_PROXY_IDLE_TIMEOUT = 60.0
"""A common load-balancer idle timeout (AWS ALB's default is 60 s)."""
SHIPPED_QUIET_SECONDS = 630.0
"""How long the soak's subscription stays without events (10 min 30 s)."""
SHIPPED_LONGEST_GAP = 40.0
"""The longest silence allowed on the wire: the pings' 25 s with slack for a busy machine."""
SCALE = 20.0
"""Every interval of the test is the shipped one divided by this."""


def serve_with_pings(db: Path, ping_interval: float) -> list[str]:
    """argv of the server as ``jobwatch serve`` runs it (gunicorn, a gevent
    worker) on SQLite file ``db``, pinging every ``ping_interval`` seconds."""
    settings = {"DATABASE": str(db), "WS_PING_INTERVAL": ping_interval}
    code = f"from jobwatch.server.deploy.run import run_gunicorn; run_gunicorn('127.0.0.1', 0, {settings!r})"
    return [sys.executable, "-c", code]


def test_the_shipped_ping_interval_is_the_one_the_test_scales() -> None:
    assert DEFAULTS["WS_PING_INTERVAL"] == SHIPPED_PING_INTERVAL


@pytest.mark.slow
def test_a_quiet_subscription_stays_open_through_an_idle_proxy_ten_times_its_timeout(
    tmp_path: Path,
) -> None:
    server = ServerProcess(serve_with_pings(tmp_path / "idle.db", SHIPPED_PING_INTERVAL / SCALE))
    try:
        run = stay_quiet(
            server.url, SHIPPED_PROXY_IDLE_TIMEOUT / SCALE, SHIPPED_QUIET_SECONDS / SCALE
        )
    finally:
        server.stop()
    assert (run.event["type"], run.event["seq"], run.event["data"]["progress"]) == (
        "JOB_PROGRESS",
        run.seq,
        42,
    )
    assert run.states == ["live"]
    assert run.reconnects == 0
    assert (run.accepted, run.idle_closes) == (1, 0)
    # the server's pings (with slack for a busy machine) kept bytes flowing
    assert run.longest_quiet < SHIPPED_LONGEST_GAP / SCALE, run.longest_quiet


def test_without_pings_the_proxy_cuts_the_quiet_connection_and_the_next_event_still_arrives():
    with EmbeddedServer(config={"WS_PING_INTERVAL": 600}) as server:
        proxy = IdleProxy(target(server.url), idle_timeout=2.0)
        follower = None
        try:
            create_job(server.url, "unpinged")
            follower = Follower(proxy.ws_url(), "unpinged")
            follower.wait_live()
            deadline = time.monotonic() + 15
            while proxy.idle_closes == 0 or follower.states[:3] != ["live", "reconnecting", "live"]:
                assert time.monotonic() < deadline, (proxy.idle_closes, follower.states)
                time.sleep(0.05)
            assert follower.subscription.reconnects >= 1

            seq = post_progress(server.url, "unpinged", 7.0)
            event = follower.next_event(EVENT_TIMEOUT)
            assert (event["type"], event["seq"]) == ("JOB_PROGRESS", seq)
            assert proxy.accepted >= 2
        finally:
            if follower is not None:
                follower.close()
            proxy.close()
