"""Where alerts go: Slack, Discord, ntfy, Microsoft Teams and a generic JSON body, each
chosen per URL, each with a level filter, each escaping job text by its own rules;
posted to real HTTP receivers on loopback, from the sender alone and from a server
(worker alerts, hung and budget alerts, receipts)."""

from __future__ import annotations

import email.header
import json
import re
import string
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from jobwatch.errors import ValidationError
from jobwatch.server import EmbeddedServer
from jobwatch.server.core.alerts.webhooks import (
    DISCORD_LIMIT,
    NTFY_LIMIT,
    WebhookTarget,
    parse_target,
)
from jobwatch.server.core.serialize import Event
from jobwatch.server.deploy.settings import ServerSettings
from jobwatch.server.events.webhook import WebhookSender
from tests.conftest import FakeClock, wait_for


@dataclass
class Request:
    """One request a receiver took: its path (with query), headers and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Hook:
    """A webhook receiver on loopback that keeps every request as it came; it may
    answer 500 to the first ``fail_first`` requests."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_first = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.fail_first > 0:
                    hook.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.requests.append(Request(self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def other_hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


HOSTILE_ID = "<!channel>@everyone*x*"
HOSTILE_TITLE = "**pwned** <@&123456789012345678> [click](https://evil.example) @here `x` _y_"
HOSTILE_TEXT = (
    "<!here> & <https://evil.example|login>\r\n# big\n> quote ||spoiler|| ~~gone~~ \\*"
    " {{DATE(2017-02-14T06:00:00Z, SHORT)}} <at>Boss</at> ünïcødé 🚨"
)
PLAIN = f"[warning] job {HOSTILE_ID}: {HOSTILE_TITLE} — {HOSTILE_TEXT}"
"""The line every format shows, before its own escaping."""


def alert(job_id: str, seq: int, title: str, text: str | None, level: str = "warning") -> Event:
    body = {"seq": seq, "level": level, "title": title, "text": text, "source": "worker"}
    return Event(job_id, seq, "JOB_ALERT", {"jobId": job_id, "alert": body})


def deliver(target: str, events: list[Event], count: int, hook: Hook) -> list[Request]:
    sender = WebhookSender(target, backoff=0.0)
    try:
        sender.offer(events)
        wait_for(lambda: len(hook.requests) >= count, what=f"{count} posts to {target}")
    finally:
        sender.close()
    return hook.requests


# -- the grammar --------------------------------------------------------------------------


def test_a_target_names_its_format_and_level_or_takes_slack_and_every_level() -> None:
    assert parse_target("https://hooks.slack.com/services/T/B/X") == WebhookTarget(
        "https://hooks.slack.com/services/T/B/X", "slack", "info"
    )
    assert parse_target("discord+https://discord.com/api/webhooks/1/abc level>=warning") == (
        WebhookTarget("https://discord.com/api/webhooks/1/abc", "discord", "warning")
    )
    assert parse_target("  ntfy+http://ntfy.local/gpu-team   level >= error ") == WebhookTarget(
        "http://ntfy.local/gpu-team", "ntfy", "error"
    )
    target = parse_target("teams+https://x.example/workflows/run?sig=abc level>=info")
    assert (target.format, target.min_level) == ("teams", "info")
    assert [parse_target("json+http://h/x").takes(level) for level in ("info", "error")] == [
        True,
        True,
    ]
    error_only = parse_target("json+http://h/x level>=error")
    assert [error_only.takes(level) for level in ("info", "warning", "error")] == [
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("mattermost+https://h/x", "unknown format 'mattermost'"),
        ("discord+ftp://h/x", "http:// or https://"),
        ("hooks.slack.com/services/x", "http:// or https://"),
        ("slack+https://h/x level>=critical", "unknown level 'critical'"),
        ("slack+https://h/x only errors", "not understood"),
        ("", "not understood"),
    ],
)
def test_a_bad_target_says_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)) as raised:
        parse_target(text)
    assert "[FORMAT+]URL [level>=LEVEL]" in str(raised.value)
    assert "slack, discord, ntfy, teams, json" in str(raised.value)


def test_serve_refuses_a_bad_webhook_in_one_sentence_naming_its_flag() -> None:
    settings = ServerSettings(database=":memory:", webhooks=("discord+ftp://h/x",))
    problem = settings.problem()
    assert problem is not None and problem.startswith("--webhook: the URL must start")
    assert "http:// or https://" in problem and "ftp://h/x" not in problem  # a URL is a secret
    assert "validation_error" not in problem


# -- each format against a real receiver ---------------------------------------------------


def test_slack_by_prefix_is_the_slack_body_of_the_plain_url(hook: Hook) -> None:
    (plain,) = deliver(
        f"{hook.base}/a", [alert(HOSTILE_ID, 1, HOSTILE_TITLE, HOSTILE_TEXT)], 1, hook
    )
    (prefixed,) = deliver(
        f"slack+{hook.base}/b", [alert(HOSTILE_ID, 1, HOSTILE_TITLE, HOSTILE_TEXT)], 2, hook
    )[1:]
    assert plain.json() == prefixed.json()
    text = plain.json()["text"]
    assert "<" not in text and ">" not in text and plain.json()["mrkdwn"] is False
    assert "&lt;!channel&gt;" in text and "&lt;@&amp;123456789012345678&gt;" in text
    assert text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == PLAIN


def test_discord_escapes_markdown_and_mentions_and_allows_no_mention(hook: Hook) -> None:
    (posted,) = deliver(
        f"discord+{hook.base}/api/webhooks/1/tok",
        [alert(HOSTILE_ID, 1, HOSTILE_TITLE, HOSTILE_TEXT)],
        1,
        hook,
    )
    body = posted.json()
    assert body["allowed_mentions"] == {"parse": []}
    content = body["content"]
    # every markdown or mention character of the job's text comes behind a backslash
    bare = re.sub(r"\\.", "", content)
    assert bare.startswith("**[warning]** job ")
    assert not set(bare.removeprefix("**[warning]**")) & set("@<>[]()*_~`|#!&\\")
    assert r"\@everyone" in content and r"\<\@\&123456789012345678\>" in content
    assert r"\*\*pwned\*\*" in content and "\\# big" in content
    # Discord shows a backslash-escaped punctuation character as itself: the line as written
    shown = re.sub(r"\\([" + re.escape(string.punctuation) + "])", r"\1", content)
    assert shown == PLAIN.replace("[warning]", "**[warning]**", 1)


def test_discord_cuts_a_long_message_between_escapes(hook: Hook) -> None:
    long_text = "*" * 5000
    (posted,) = deliver(
        f"discord+{hook.base}/api/webhooks/1/tok", [alert("j", 1, "t", long_text)], 1, hook
    )
    content = posted.json()["content"]
    assert len(content) <= DISCORD_LIMIT and content.endswith("…")
    assert re.fullmatch(r"\*\*\[warning\]\*\* job j: t — (\\\*)+…", content), content[-20:]


def test_teams_puts_job_text_only_where_markdown_is_not_read(hook: Hook) -> None:
    (posted,) = deliver(
        f"teams+{hook.base}/workflows/run?sig=s",
        [alert(HOSTILE_ID, 1, HOSTILE_TITLE, HOSTILE_TEXT)],
        1,
        hook,
    )
    body = posted.json()
    assert posted.path == "/workflows/run?sig=s"
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert "msteams" not in card  # no entities: nothing can mention
    blocks = card["body"]
    assert {block["type"] for block in blocks} == {"RichTextBlock"}  # no TextBlock: no markdown
    runs = [run for block in blocks for run in block["inlines"]]
    assert {run["type"] for run in runs} == {"TextRun"}
    assert not any("selectAction" in run for run in runs)  # no link
    shown = "".join(run["text"] for run in runs[:-1]) + " — " + runs[-1]["text"]
    # the date function's braces are kept apart (U+200B), so the text is shown as written
    assert "{{" not in shown
    assert shown.replace("{\u200b{", "{{") == PLAIN
    assert runs[0] == {
        "type": "TextRun",
        "text": "[warning] ",
        "weight": "Bolder",
        "color": "Warning",
    }


def test_ntfy_sends_plain_text_and_headers_that_cannot_break_or_lose_characters(
    hook: Hook,
) -> None:
    (posted,) = deliver(
        f"ntfy+{hook.base}/gpu-team",
        [alert(HOSTILE_ID + "\r\nX-Injected: 1", 1, HOSTILE_TITLE + " ünï 🚨", HOSTILE_TEXT)],
        1,
        hook,
    )
    assert posted.path == "/gpu-team"
    assert "X-Injected" not in posted.headers
    raw_title = posted.headers["Title"]
    assert raw_title.isascii() and "\r" not in raw_title and "\n" not in raw_title
    assert raw_title.startswith("=?utf-8?b?") or raw_title.startswith("=?UTF-8?B?")
    title = str(email.header.make_header(email.header.decode_header(raw_title)))
    assert title == f"[warning] job {HOSTILE_ID}  X-Injected: 1: {HOSTILE_TITLE} ünï 🚨"
    assert posted.headers["Priority"] == "4"
    assert posted.headers["Tags"] == "warning,worker"
    assert posted.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Markdown" not in posted.headers  # plain text: nothing in it is markup
    assert posted.body.decode("utf-8") == HOSTILE_TEXT


def test_ntfy_sends_an_ascii_title_as_it_is_and_cuts_a_long_message(hook: Hook) -> None:
    protected = hook.base.replace("http://", "http://alice:s3cret@")  # a topic with a password
    target = f"ntfy+{protected}/t"
    deliver(target, [alert("resnet-7", 1, "job stalled", "é" * 5000, "error")], 1, hook)
    (posted,) = hook.requests
    assert posted.headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"
    assert posted.headers["Title"] == "[error] job resnet-7: job stalled"
    assert posted.headers["Priority"] == "5" and posted.headers["Tags"] == "rotating_light,worker"
    assert len(posted.body) <= NTFY_LIMIT and posted.body.decode("utf-8").endswith("…")


def test_an_ascii_title_that_looks_encoded_is_encoded_so_it_shows_as_written(hook: Hook) -> None:
    deliver(f"ntfy+{hook.base}/t", [alert("=?UTF-8?B?SGk=?=", 1, "t", None)], 1, hook)
    raw = hook.requests[0].headers["Title"]
    assert str(email.header.make_header(email.header.decode_header(raw))) == (
        "[warning] job =?UTF-8?B?SGk=?=: t"
    )
    assert hook.requests[0].body == b"t"  # no text: the title is the message


def test_json_posts_the_alert_as_stored(hook: Hook) -> None:
    deliver(f"json+{hook.base}/in", [alert(HOSTILE_ID, 7, HOSTILE_TITLE, HOSTILE_TEXT)], 1, hook)
    assert hook.requests[0].json() == {
        "jobId": HOSTILE_ID,
        "seq": 7,
        "level": "warning",
        "title": HOSTILE_TITLE,
        "text": HOSTILE_TEXT,
        "source": "worker",
    }


def test_a_level_filter_passes_only_alerts_at_or_above_it(hook: Hook) -> None:
    events = [alert("j", seq, level, None, level) for seq, level in enumerate(LEVELS, 1)]
    sender = WebhookSender(f"json+{hook.base}/e level>=error", backoff=0.0)
    everything = WebhookSender(f"json+{hook.base}/all", backoff=0.0)
    try:
        sender.offer(events)
        everything.offer(events)
        wait_for(lambda: len(hook.requests) == 4)
    finally:
        sender.close()
        everything.close()
    by_path = sorted((r.path, r.json()["level"]) for r in hook.requests)
    assert by_path == [("/all", "error"), ("/all", "info"), ("/all", "warning"), ("/e", "error")]


LEVELS = ("info", "warning", "error")


def test_each_format_is_retried_as_the_slack_body_is(hook: Hook) -> None:
    hook.fail_first = 2
    deliver(f"discord+{hook.base}/api/webhooks/1/t", [alert("j", 1, "t", None)], 1, hook)
    assert hook.requests[0].json()["content"] == "**[warning]** job j: t"


# -- through a server: worker alerts, hangs, budgets and receipts ------------------------


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_server_posts_to_every_webhook_what_its_level_lets_through(
    hook: Hook, other_hook: Hook
) -> None:
    clock = FakeClock()
    config = {
        "DATABASE": ":memory:",
        "CLOCK": clock,
        "STALL_CHECK_INTERVAL": 0,
        "HANG_AFTER": 60,
        "WEBHOOK_URL": f"{hook.base}/slack",
        "WEBHOOKS": (
            f"discord+{hook.base}/discord level>=warning",
            f"ntfy+{other_hook.base}/phone level>=error",
            f"json+{other_hook.base}/json",
        ),
    }
    with EmbeddedServer(config=config) as server:
        base = f"{server.url}/api/jobs"
        job = "ops@everyone"
        spec = {"workerId": "w", "pricePerHour": 3600.0, "budget": 100.0}
        assert requests.put(f"{base}/{job}", json=spec, timeout=5).ok
        called = clock()
        for i in range(12):  # samples keep coming; the training code stopped after its first call
            body: dict[str, Any] = {
                "workerId": "w",
                "progress": 50,
                "lastCallAt": iso(called),
                "timestamp": iso(clock()),
                "metrics": {"gpuUtilization": 99},
            }
            if i == 0:  # the training code's own alert, written to break every format
                hostile = {"title": HOSTILE_TITLE, "text": HOSTILE_TEXT, "level": "error"}
                body["alerts"] = [hostile]
            assert requests.post(f"{base}/{job}/progress", json=body, timeout=5).ok
            clock.advance(10)
            server.services.watchdog.check()
        done = {"workerId": "w", "status": "completed"}
        assert requests.post(f"{base}/{job}/complete", json=done, timeout=5).ok
        alerts = requests.get(f"{base}/{job}/alerts", timeout=5).json()["alerts"]
        # budget: 80 % (warning) and 100 % (error) spent; the hang (warning); the receipt (info)
        sources = sorted({(a["source"], a["level"]) for a in alerts})
        assert ("budget", "error") in sources and ("hung", "warning") in sources
        expected = {
            "/slack": len(alerts) + 1,  # every alert and the receipt
            "/json": len(alerts) + 1,
            "/discord": sum(a["level"] != "info" for a in alerts),
            "/phone": sum(a["level"] == "error" for a in alerts),
        }

        def counts() -> dict[str, int]:
            paths = [r.path for r in hook.requests + other_hook.requests]
            return {path: paths.count(path) for path in expected}

        wait_for(lambda: counts() == expected, what=f"{expected}")
    json_bodies = [r.json() for r in other_hook.requests if r.path == "/json"]
    receipt = [b for b in json_bodies if b["source"] == "receipt"]
    assert len(receipt) == 1 and receipt[0]["receipt"]["jobId"] == job
    assert {b["source"] for b in json_bodies} >= {"hung", "budget", "receipt"}
    assert {b["source"] for b in json_bodies} >= {"worker"}
    discord = [r.json()["content"] for r in hook.requests if r.path == "/discord"]
    assert all(r"ops\@everyone" in content for content in discord)
    (shown,) = [
        re.sub(r"\\([" + re.escape(string.punctuation) + "])", r"\1", content)
        for content in discord
        if "pwned" in content
    ]
    assert shown == f"**[error]** job {job}: {HOSTILE_TITLE} — {HOSTILE_TEXT}"
    phone = [r for r in other_hook.requests if r.path == "/phone"]
    assert {r.headers["Priority"] for r in phone} == {"5"}
    (pushed,) = [r for r in phone if r.body.decode() == HOSTILE_TEXT]
    title = str(email.header.make_header(email.header.decode_header(pushed.headers["Title"])))
    assert title == f"[error] job {job}: {HOSTILE_TITLE}"
