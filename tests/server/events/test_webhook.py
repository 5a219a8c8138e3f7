"""The webhook sender against a real receiver on loopback: escaping, a flood, a secret URL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from jobwatch.server.core.alerts.webhooks import alert_notice, slack_body
from jobwatch.server.core.serialize import Event
from jobwatch.server.events.webhook import WebhookSender
from tests.server.core.alerts.test_alerts import Receiver, wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def alert(job_id: str, seq: int, title: str, text: str | None = None) -> Event:
    body = {"seq": seq, "level": "warning", "title": title, "text": text, "source": "worker"}
    return Event(job_id, seq, "JOB_ALERT", {"jobId": job_id, "alert": body})


HOSTILE = "<!channel> hi <@U123ABC> <https://evil.example|click> & <!here>"


def test_job_text_cannot_mention_link_or_format_in_slack(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url)
    try:
        sender.offer([alert("<!everyone>", 1, HOSTILE, text=HOSTILE)])
        wait_for(lambda: len(receiver.bodies) == 1)
    finally:
        sender.close()
    text = receiver.bodies[0]["text"]
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "&lt;@U123ABC&gt;" in text
    assert "&lt;https://evil.example|click&gt; &amp; &lt;!here&gt;" in text
    assert "job &lt;!everyone&gt;:" in text
    # the structured copy keeps the job's own text, for programs
    assert receiver.bodies[0]["jobwatch"]["title"] == HOSTILE


def test_escaping_is_not_applied_twice() -> None:
    body = slack_body(alert_notice(alert("j", 1, "a &amp; b")))
    assert body["text"] == "[warning] job j: a &amp;amp; b"


def test_one_jobs_flood_never_pushes_out_another_jobs_alert(receiver: Receiver) -> None:
    receiver.delay = 0.005
    sender = WebhookSender(receiver.url, per_job=5, window=1.0)
    try:
        sender.offer([alert("flood", seq, f"flood {seq}") for seq in range(1, 4001)])
        sender.offer([alert("calm", 1, "job stalled")])
        wait_for(lambda: any("job stalled" in b["text"] for b in receiver.bodies))
        wait_for(lambda: any("suppressed" in b["text"] for b in receiver.bodies))
    finally:
        sender.close()
    texts = [b["text"] for b in receiver.bodies]
    flood = [t for t in texts if t.startswith("[warning] job flood: flood")]
    assert len(flood) == 5
    (summary,) = [t for t in texts if "suppressed" in t]
    assert summary.startswith("[warning] job flood: 3995 more alerts suppressed in the last 1 s")


def test_a_failed_delivery_logs_only_the_webhooks_scheme_and_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "http://127.0.0.1:9/services/T0SECRET/B0SECRET/XXXXSECRET?token=abc"
    sender = WebhookSender(url, timeout=2.0, backoff=0.0)
    with caplog.at_level(logging.WARNING, logger="jobwatch.server.events.webhook"):
        sender.offer([alert("j", 1, "lost")])
        wait_for(lambda: sender.failed >= 1)
        sender.close()
    assert "SECRET" not in caplog.text and "abc" not in caplog.text
    assert "http://127.0.0.1:9" in caplog.text
