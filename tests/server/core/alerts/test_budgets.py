"""Budgets: a job's budget on the wire, alerts (source ``budget``) when the projected
total first exceeds it, at 80 % and at 100 % spent, each once, and the progress
reply's budget fields."""

from __future__ import annotations

import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock


def test_budget_alerts_come_once_each_and_the_reply_says_over_budget() -> None:
    clock = FakeClock()
    config = {"DATABASE": ":memory:", "CLOCK": clock, "STALL_CHECK_INTERVAL": 0}
    with EmbeddedServer(config=config) as server:
        base = f"{server.url}/api/jobs/b"
        job = requests.put(base, json={"pricePerHour": 36.0, "budget": 50.0}, timeout=5).json()
        assert job["job"]["budget"] == 50.0
        replies = []
        # 36 an hour: 1 % per 100 s, so 100 % takes 10,000 s = 100.00; 50.00 is spent at 5,000 s
        for second in range(0, 6000, 100):
            body = {"workerId": "w", "progress": second / 100}
            replies.append(requests.post(f"{base}/progress", json=body, timeout=5).json())
            clock.advance(100)
        alerts = requests.get(f"{base}/alerts", timeout=5).json()["alerts"]
        budget = [(a["level"], a["title"], a["text"]) for a in alerts if a["source"] == "budget"]
        assert [title for _, title, _ in budget] == [
            "over budget at the current rate",
            "80% of the budget spent",
            "budget spent",
        ]
        assert budget[0][2].startswith("projected ") and budget[0][2].endswith(
            " of 50.00 QUBIC at the current rate"
        )
        assert budget[1][2] == "40.00 of 50.00 QUBIC spent"
        assert budget[2][0] == "error" and budget[2][2] == "50.00 of 50.00 QUBIC spent"
        assert replies[0]["budget"] == 50.0 and replies[0]["overBudget"] is False
        assert replies[-1]["overBudget"] is True
        # a new budget gives its alerts afresh
        assert requests.put(base, json={"budget": 500.0, "workerId": "w"}, timeout=5).ok
        requests.post(f"{base}/progress", json={"workerId": "w", "progress": 61}, timeout=5)
        alerts = requests.get(f"{base}/alerts", timeout=5).json()["alerts"]
        assert sum(a["source"] == "budget" for a in alerts) == 3


def test_a_bad_budget_is_refused_and_changes_nothing() -> None:
    with EmbeddedServer(config={"DATABASE": ":memory:", "STALL_CHECK_INTERVAL": 0}) as server:
        base = f"{server.url}/api/jobs/b"
        requests.put(base, json={"budget": 5}, timeout=5)
        for bad in (-1, "ten", 1e13, True):
            answer = requests.put(base, json={"budget": bad}, timeout=5)
            assert answer.status_code == 400, bad
            assert answer.json()["error"]["details"][0]["field"] == "budget"
        assert requests.get(base, timeout=5).json()["job"]["budget"] == 5


def test_the_operator_sets_the_default_currency() -> None:
    config = {"DATABASE": ":memory:", "STALL_CHECK_INTERVAL": 0, "DEFAULT_CURRENCY": "usd"}
    with EmbeddedServer(config=config) as server:
        job = requests.put(f"{server.url}/api/jobs/c", json={}, timeout=5).json()["job"]
        assert job["currency"] == "USD"
        own = requests.put(f"{server.url}/api/jobs/d", json={"currency": "EUR"}, timeout=5)
        assert own.json()["job"]["currency"] == "EUR"
