"""Alerts delivered to a webhook (``jobwatch serve --webhook-url``), Slack-compatible.

Each ``JOB_ALERT`` this process commits is posted once as ``{"text": ...}``
(the body Slack's, Mattermost's and Discord's ``/slack`` incoming webhooks
take) from a thread of its own, so ingest never waits for the receiver.
Retries are urllib3's ``Retry`` (exponential backoff on connection errors and
5xx answers, honouring ``Retry-After``); a full queue drops the oldest alert
with a warning rather than grow without bound.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from jobwatch.server.core.serialize import Event

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Alerts waiting for delivery at most; beyond, the oldest is dropped."""
RETRIES = 6
"""Attempts after the first; with backoff 0.5 s doubling, about 30 s in all."""


class WebhookSender:
    """Posts alerts to ``url`` in the background.

    Parameters
    ----------
    url:
        An ``http(s)://`` webhook URL.
    timeout:
        Seconds per attempt (connect and read).
    backoff:
        urllib3's ``backoff_factor`` (s): waits of backoff x 2^(n-1) between attempts.

    Raises
    ------
    ValueError
        ``url`` is not an http or https URL.
    """

    def __init__(self, url: str, timeout: float = 5.0, backoff: float = 0.5) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the webhook URL must start with http:// or https://, got {url!r}")
        self.url = url
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._session = requests.Session()
        retry = Retry(
            total=RETRIES,
            backoff_factor=backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"POST"}),
            raise_on_status=False,
        )
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))
        self._thread = threading.Thread(target=self._run, name="jobwatch-webhook", daemon=True)
        self._thread.start()

    def offer(self, events: list[Event]) -> None:
        """Queue the ``JOB_ALERT`` events among ``events`` (never blocks)."""
        for event in events:
            if event.type != "JOB_ALERT":
                continue
            body = slack_body(event)
            try:
                self._queue.put_nowait(body)
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                self._queue.put_nowait(body)
                log.warning("jobwatch: the webhook queue is full; the oldest alert was dropped")

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` s), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._session.close()

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                answer = self._session.post(self.url, json=body, timeout=self.timeout)
                if answer.status_code >= 400:
                    raise requests.HTTPError(f"answered {answer.status_code}")
                self.delivered += 1
            except Exception as exc:  # the receiver is down or refuses: log, go on
                self.failed += 1
                log.warning("jobwatch: webhook %s: an alert was not delivered: %s", self.url, exc)


def slack_body(event: Event) -> dict[str, Any]:
    """``{"text": "[warning] job resnet-7: job stalled — no update for 130 s ..."}``."""
    alert = event.data["alert"]
    text = f"[{alert['level']}] job {event.job_id}: {alert['title']}"
    if alert.get("text"):
        text += f" — {alert['text']}"
    return {"text": text, "jobwatch": {"jobId": event.job_id, **alert}}
