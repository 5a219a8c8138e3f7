"""A receipt at the end: when a job completes, fails or is cancelled its receipt
rides on JOB_COMPLETED, reaches the webhook (source ``receipt``) and is served at
/api/jobs/{id}/receipt; its figures are the stored job's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock, WsClient
from tests.server.core.alerts.test_alerts import Receiver, wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_the_receipt_is_the_stored_jobs_figures(receiver: Receiver, status: str) -> None:
    clock = FakeClock()
    config = {
        "DATABASE": ":memory:",
        "CLOCK": clock,
        "STALL_CHECK_INTERVAL": 0,
        "STALL_AFTER": 120,
        "WEBHOOK_URL": receiver.url,
    }
    with EmbeddedServer(config=config) as server:
        base = f"{server.url}/api/jobs/r"
        requests.put(base, json={"pricePerHour": 7.2, "budget": 20.0}, timeout=5)
        gpus = [{"index": i, "gpuUtilization": 90} for i in range(2)]
        for step, loss in enumerate([0.9, 0.5, 0.7]):
            body = {
                "workerId": "w",
                "progress": 10 * (step + 1),
                "metrics": {"gpus": gpus},
                "scalars": {"step": step, "values": {"loss": loss}},
            }
            assert requests.post(f"{base}/progress", json=body, timeout=5).ok
            clock.advance(10)
        clock.advance(290)
        server.services.watchdog.check()  # silent for 300 s: stalled
        clock.advance(600)  # 900 s after its last update, it speaks again
        requests.post(f"{base}/progress", json={"workerId": "w", "progress": 40}, timeout=5)
        clock.advance(100)
        ws = WsClient(server.ws_url)
        ws.subscribe("r")
        done = {"workerId": "w", "status": status, "error": "x" if status != "completed" else None}
        assert requests.post(f"{base}/complete", json=done, timeout=5).ok
        completed = ws.recv_until(lambda m: m.get("type") == "JOB_COMPLETED")[-1]
        ws.close()
        monitor = requests.get(f"{base}/monitor", timeout=5).json()
        job = monitor["job"]
        got = requests.get(f"{base}/receipt", timeout=5).json()
        assert got["status"] == job["status"] == status
        assert got["duration"] == pytest.approx(at(job["completedAt"]) - at(job["startedAt"]))
        assert got["duration"] == 1020
        assert got["cost"] == monitor["costSoFar"] == pytest.approx(2.04)
        assert (got["currency"], got["budget"]) == (job["currency"], 20.0)
        assert got["gpus"] == 2 and got["gpuHours"] == pytest.approx(1020 / 3600 * 2)
        assert got["metrics"] == {"loss": {"final": 0.7, "step": 2, "min": 0.5, "max": 0.9}}
        assert got["stalledSeconds"] == 900 and got["stalledCost"] == pytest.approx(1.8)
        assert got["hungSeconds"] == 0
        assert completed["data"]["receipt"] == got
        alerts = requests.get(f"{base}/alerts", timeout=5).json()["alerts"]
        assert "receipt" not in [a["source"] for a in alerts]  # no stored alert of its own
        wait_for(lambda: any(b["jobwatch"].get("source") == "receipt" for b in receiver.bodies))
        (posted,) = [b for b in receiver.bodies if b["jobwatch"].get("source") == "receipt"]
        assert posted["jobwatch"]["receipt"] == got
        assert posted["jobwatch"]["title"] == f"receipt: job {status}"
        assert "cost 2.04 of 20.00 QUBIC" in posted["text"]
        assert "loss 0.7 (min 0.5, max 0.9)" in posted["text"]
        assert "stalled 15 min (1.80 QUBIC)" in posted["text"]
        assert requests.get(f"{server.url}/api/jobs/nope/receipt", timeout=5).status_code == 404
