"""Hung, not only silent: a job whose reports keep arriving while its training code
stopped is hung (jobwatch/server/core/alerts/hangs.py); told apart from a stall, on the
job, in an alert that says what the hang costs and at the webhook, and cleared
by the next call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from jobwatch.contract.requests import JobSpec
from jobwatch.server import EmbeddedServer
from jobwatch.server.core import rules
from jobwatch.server.core.alerts import hangs
from jobwatch.server.core.job_row import JobRow, with_changes
from tests.conftest import FakeClock
from tests.server.core.alerts.test_alerts import Receiver, wait_for


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def running(**fields: Any) -> JobRow:
    row = rules.new_job("j", JobSpec.model_validate({"workerId": "w", "pricePerHour": 6.0}), 0.0)
    return with_changes(row, {"status": "running", "started_at": 0.0, **fields})


def test_a_worker_that_never_says_when_it_was_called_is_never_hung() -> None:
    job = running(updated_at=10_000.0, progress_at=0.0)
    assert not hangs.is_hung(job, 10_000.0, 300.0)


def test_hung_past_the_floor_or_ten_usual_call_intervals_or_the_declared_silence() -> None:
    job = running(last_call_at=1000.0, progress_at=900.0, updated_at=1299.0)
    assert not hangs.is_hung(job, 1300.0, 300.0)
    assert hangs.is_hung(job, 1300.5, 300.0)
    slow = with_changes(job, {"call_interval": 60.0})  # a step takes a minute
    assert hangs.hang_threshold(slow, 300.0) == 600.0
    assert not hangs.is_hung(slow, 1500.0, 300.0)
    evaluating = with_changes(job, {"expect_silence": 3600.0, "updated_at": 4600.0})
    assert not hangs.is_hung(evaluating, 4000.0, 300.0) and hangs.is_hung(evaluating, 4601, 300)
    assert not hangs.is_hung(with_changes(job, {"stalled": 1}), 5000.0, 300.0)


def test_a_job_whose_reports_stopped_with_its_calls_is_not_hung() -> None:
    """Its process died: no report came after the last call, so it is not hung
    (reports do not "still arrive") but, in time, stalled. Before, a hang threshold
    below the stall threshold (--hang-after 6 --stall-after 8) called a dead
    process hung, "reports still arrive, so the process lives"."""
    dead = running(last_call_at=1000.0, progress_at=1000.0, updated_at=1000.5)
    assert not hangs.is_hung(dead, 1400.0, 6.0)
    alive = with_changes(dead, {"updated_at": 1399.0})  # its reporter thread still sends
    assert hangs.is_hung(alive, 1400.0, 6.0)


def test_the_hang_alert_says_how_long_and_what_it_cost() -> None:
    job = running(last_call_at=1000.0, progress_at=900.0, updated_at=1000.0 + 42 * 60)
    marked = hangs.hang(job, 1000.0 + 42 * 60, 300.0)
    assert marked is not None
    changes, alert = marked
    assert changes == {"hung": 1, "hung_at": 1000.0}
    assert alert.source == "hung" and alert.title == "job hung"
    assert alert.text is not None and alert.text.startswith(
        "no progress for 42 min; 4.20 QUBIC spent since"
    )
    assert hangs.hang(with_changes(job, changes), 9000.0, 300.0) is None  # once


def test_a_call_ends_the_hang_and_adds_its_time_and_cost() -> None:
    job = running(last_call_at=1000.0, hung=1, hung_at=1000.0, updated_at=4000.0, progress=5.0)
    update = {
        "workerId": "w",
        "progress": 5,
        "lastCallAt": iso(4600.0),
        "timestamp": iso(4600.0),
    }
    from jobwatch.contract.requests import ProgressUpdate

    outcome = rules.apply_progress(job, ProgressUpdate.model_validate_json(_json(update)), 4600.0)
    assert outcome.job["hung"] == 0 and outcome.job["hung_at"] is None
    assert outcome.job["hung_seconds"] == 3600.0 and outcome.job["hung_cost"] == 6.0
    (alert,) = outcome.alert_rows
    assert (alert["source"], alert["title"], alert["level"]) == ("hung", "job moving again", "info")


def _json(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body)


# -- a server ---------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_server_tells_hung_from_stalled_on_every_channel(receiver: Receiver) -> None:
    clock = FakeClock()
    config = {
        "DATABASE": ":memory:",
        "CLOCK": clock,
        "STALL_CHECK_INTERVAL": 0,
        "STALL_AFTER": 120,
        "HANG_AFTER": 300,
        "WEBHOOK_URL": receiver.url,
    }
    with EmbeddedServer(config=config) as server:
        base = f"{server.url}/api/jobs"
        requests.put(f"{base}/train", json={"pricePerHour": 6.0}, timeout=5)
        called = clock()
        for _ in range(40):  # the reporter's thread samples every 10 s; the code stopped
            body = {
                "workerId": "w",
                "progress": 5,
                "metrics": {"gpuUtilization": 100},
                "lastCallAt": iso(called),
                "timestamp": iso(clock()),
            }
            assert requests.post(f"{base}/train/progress", json=body, timeout=5).ok
            clock.advance(10)
            server.services.watchdog.check()
        job = requests.get(f"{base}/train", timeout=5).json()["job"]
        assert job["hung"] is True and job["stalled"] is False
        alerts = requests.get(f"{base}/train/alerts", timeout=5).json()["alerts"]
        assert [a["source"] for a in alerts] == ["hung"]
        assert alerts[0]["text"].startswith("no progress for 5 min; 0.52 QUBIC spent since")
        wait_for(lambda: len(receiver.bodies) == 1)
        assert receiver.bodies[0]["jobwatch"]["source"] == "hung"
        # the training code calls again: moving, and the hang's cost is kept
        body = {"workerId": "w", "progress": 6, "lastCallAt": iso(clock())}
        assert requests.post(f"{base}/train/progress", json=body, timeout=5).ok
        job = requests.get(f"{base}/train", timeout=5).json()["job"]
        assert job["hung"] is False
        alerts = requests.get(f"{base}/train/alerts", timeout=5).json()["alerts"]
        assert [(a["source"], a["level"]) for a in alerts] == [
            ("hung", "warning"),
            ("hung", "info"),
        ]
        # a seed worker (no lastCallAt) that goes quiet is stalled, never hung
        requests.put(f"{base}/seed", json={}, timeout=5)
        requests.post(f"{base}/seed/progress", json={"workerId": "s", "progress": 1}, timeout=5)
        clock.advance(1000)
        server.services.watchdog.check()
        seed = requests.get(f"{base}/seed", timeout=5).json()["job"]
        assert seed["stalled"] is True and seed["hung"] is False


@pytest.mark.parametrize(
    ("field", "value"),
    [("lastCallAt", "yesterday"), ("expectSilenceFor", -1), ("expectSilenceFor", 1e9)],
)
def test_bad_hang_fields_are_refused_and_change_nothing(field: str, value: Any) -> None:
    with EmbeddedServer(config={"DATABASE": ":memory:", "STALL_CHECK_INTERVAL": 0}) as server:
        requests.put(f"{server.url}/api/jobs/x", json={}, timeout=5)
        body = {"workerId": "w", "progress": 5, field: value}
        answer = requests.post(f"{server.url}/api/jobs/x/progress", json=body, timeout=5)
        assert answer.status_code == 400
        assert answer.json()["error"]["details"][0]["field"] == field
        job = requests.get(f"{server.url}/api/jobs/x", timeout=5).json()["job"]
        assert job["status"] == "pending" and job["seq"] == 0


def test_serve_refuses_a_bad_hang_threshold_or_currency_in_one_line() -> None:
    import subprocess
    import sys

    for args, message in [
        (["--hang-after", "0"], "--hang-after must be a number from 1"),
        (["--default-currency", "€uro"], "--default-currency"),
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "jobwatch.cli", "serve", "--db", ":memory:", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and "Traceback" not in out.stderr
