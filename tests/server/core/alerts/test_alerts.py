"""Alert rules, webhook delivery against real receivers on loopback, stalls
marked once across two servers sharing PostgreSQL + Redis, and the CLI's checks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from jobwatch.errors import ValidationError
from jobwatch.server import EmbeddedServer
from jobwatch.server.core.alerts.alert_rules import check_rules, parse_rule
from tests.conftest import FakeClock, wait_for
from tests.services import fresh_channel, fresh_schema, scale_urls

# -- rules -----------------------------------------------------------------------------


def test_parse_rule() -> None:
    rule = parse_rule("gpuTemperature>85 for 60s")
    assert (rule.metric, rule.op, rule.threshold, rule.duration) == ("gpuTemperature", ">", 85, 60)
    assert parse_rule(" gpuUtilization <= 10 for 5m ").duration == 300


@pytest.mark.parametrize(
    "text", ["", "gpuTemperature>85", "gpuFoo>1 for 1s", "gpuTemperature=>85 for 1s", "x for 0s"]
)
def test_bad_rules_say_what_is_allowed(text: str) -> None:
    with pytest.raises(ValidationError, match=r"METRIC OP NUMBER for DURATION|unknown metric"):
        parse_rule(text)


def test_a_rule_fires_once_after_its_duration_and_again_after_it_cleared() -> None:
    rule = parse_rule("gpuTemperature>85 for 60s")
    job: dict[str, Any] = {"alert_state": None}
    fired_at = []
    for t, temp in [(0, 90), (30, 91), (61, 92), (90, 93), (100, 70), (110, 95), (171, 95)]:
        state, fired = check_rules((rule,), job, {"gpuTemperature": temp}, float(t))
        job["alert_state"] = state
        fired_at += [t] * len(fired)
    assert fired_at == [61, 171]


# -- a server with rules and a webhook -------------------------------------------------


class Receiver:
    """A webhook receiver on loopback: records bodies; can answer 500 first, be slow or be down."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = 0
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(receiver.delay)
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def served(clock: FakeClock, webhook: str, **config: Any) -> EmbeddedServer:
    return EmbeddedServer(
        config={
            "DATABASE": ":memory:",
            "CLOCK": clock,
            "STALL_CHECK_INTERVAL": 0,
            "ALERT_RULES": ("gpuTemperature>85 for 60s",),
            "WEBHOOK_URL": webhook,
            **config,
        }
    )


def hot(server: EmbeddedServer, clock: FakeClock, job: str, seconds: int) -> None:
    for _ in range(seconds // 10 + 1):
        body = {"workerId": "w", "progress": 5, "metrics": {"gpuTemperature": 91}}
        answer = requests.post(f"{server.url}/api/jobs/{job}/progress", json=body, timeout=5)
        assert answer.status_code == 200
        clock.advance(10)


def test_a_rule_alert_reaches_the_webhook_in_slack_form(receiver: Receiver) -> None:
    clock = FakeClock()
    with served(clock, receiver.url) as server:
        requests.put(f"{server.url}/api/jobs/hot", json={}, timeout=5)
        hot(server, clock, "hot", 70)
        wait_for(lambda: len(receiver.bodies) == 1, 15)
        (body,) = receiver.bodies
        assert body["text"].startswith("[warning] job hot: gpuTemperature &gt; 85 for 60 s")
        assert body["jobwatch"]["source"] == "rule"
        alerts = requests.get(f"{server.url}/api/jobs/hot/alerts", timeout=5).json()["alerts"]
        assert [a["source"] for a in alerts] == ["rule"]


def test_a_receiver_answering_500_gets_the_alert_on_a_retry(receiver: Receiver) -> None:
    receiver.fail_first = 2
    clock = FakeClock()
    with served(clock, receiver.url) as server:
        body = {"workerId": "w", "progress": 5, "alerts": [{"title": "check me"}]}
        requests.post(f"{server.url}/api/jobs", json={"id": "r500"}, timeout=5)
        requests.post(f"{server.url}/api/jobs/r500/progress", json=body, timeout=5)
        wait_for(lambda: len(receiver.bodies) == 1, 15)
        webhook = server.services.webhook
        assert webhook is not None
        # the receiver keeps the body before it answers; the sender counts on the answer
        wait_for(lambda: webhook.delivered >= 1, 15)
        assert webhook.delivered == 1 and len(receiver.bodies) == 1


def test_a_slow_or_dead_receiver_never_holds_ingest_back(receiver: Receiver) -> None:
    receiver.delay = 3.0
    clock = FakeClock()
    with served(clock, receiver.url) as server:
        requests.post(f"{server.url}/api/jobs", json={"id": "slow"}, timeout=5)
        body = {"workerId": "w", "progress": 5, "alerts": [{"title": "one"}]}
        assert requests.post(f"{server.url}/api/jobs/slow/progress", json=body, timeout=5).ok
        # while the receiver sleeps on the first alert, updates go on being answered
        for p in range(6, 30):
            answer = requests.post(
                f"{server.url}/api/jobs/slow/progress",
                json={"workerId": "w", "progress": p},
                timeout=2,
            )
            assert answer.status_code == 200
        wait_for(lambda: len(receiver.bodies) == 1, 15)
    dead = "http://127.0.0.1:9/hook"  # nothing listens on the discard port
    with served(clock, dead) as server:
        requests.post(f"{server.url}/api/jobs", json={"id": "dead"}, timeout=5)
        body = {"workerId": "w", "progress": 5, "alerts": [{"title": "lost"}]}
        assert requests.post(f"{server.url}/api/jobs/dead/progress", json=body, timeout=5).ok


# -- two servers on one database --------------------------------------------------------


def test_of_two_servers_only_one_marks_a_stall() -> None:
    postgres, redis_url = scale_urls()
    clock = FakeClock()
    with fresh_schema(postgres) as database:
        config = {
            "DATABASE": database,
            "REDIS_URL": redis_url,
            "REDIS_CHANNEL": fresh_channel(),
            "CLOCK": clock,
            "STALL_CHECK_INTERVAL": 0,
        }
        with EmbeddedServer(config=config) as a, EmbeddedServer(config=config) as b:
            requests.post(f"{a.url}/api/jobs", json={"id": "shared"}, timeout=5)
            body = {"workerId": "w", "progress": 5}
            requests.post(f"{a.url}/api/jobs/shared/progress", json=body, timeout=5)
            clock.advance(200)
            marks: list[list[str]] = []
            threads = [
                threading.Thread(target=lambda s=s: marks.append(s.services.watchdog.check()))
                for s in (a, b)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(len(m) for m in marks) == [0, 1]
            alerts = requests.get(f"{b.url}/api/jobs/shared/alerts", timeout=5).json()
            assert alerts["total"] == 1


# -- the CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alert", "gpuTemperature>>85 for 60s"], "not understood"),
        (["--webhook-url", "ftp://x"], "must start with http"),
        (["--stall-after", "0"], "--stall-after must be a number from 1"),
    ],
)
def test_serve_refuses_bad_alert_settings_in_one_line(args: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobwatch.cli", "serve", "--db", ":memory:", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
