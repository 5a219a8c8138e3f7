"""Alerts delivered to a webhook (``jobwatch serve --webhook-url``), Slack-compatible.

Each ``JOB_ALERT`` this process commits is posted once as ``{"text": ...}``,
and so is each finished job's receipt (``JOB_COMPLETED``'s ``receipt``)
(the body Slack's, Mattermost's and Discord's ``/slack`` incoming webhooks
take) from a thread of its own, so ingest never waits for the receiver.
Retries are urllib3's ``Retry`` (exponential backoff on connection errors and
5xx answers, honouring ``Retry-After``).

Job text is escaped as Slack's message formatting asks (``&``, ``<``, ``>`` as
``&amp;``, ``&lt;``, ``&gt;``: https://api.slack.com/reference/surfaces/formatting#escaping)
and sent with ``"mrkdwn": false``, so no job can mention (``<!channel>``,
``<@U...>``), link (``<https://...|label>``) or format through an alert.

One job cannot crowd out another: each job may queue :data:`PER_JOB` alerts
per :data:`WINDOW` seconds; the rest of that window's are counted and posted
as one line when the window ends ("37 more alerts of job X suppressed"). A
full queue (:data:`QUEUE_SIZE`) drops the oldest alert of the job holding the
most. The webhook URL is a secret (a Slack webhook's path is its key): logs
show only its scheme and host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from jobwatch.server.core.receipt import receipt_alert
from jobwatch.server.core.redact import origin
from jobwatch.server.core.serialize import Event

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Alerts waiting for delivery at most; beyond, the job holding the most loses its oldest."""
RETRIES = 6
"""Attempts after the first; with backoff 0.5 s doubling, about 30 s in all."""
PER_JOB = 20
"""Alerts of one job queued per :data:`WINDOW`; the rest are summed up in one line."""
WINDOW = 60.0
"""Seconds of one job's alert allowance (:data:`PER_JOB`)."""


def slack_escape(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` escaped as Slack's message formatting
    asks, so that it shows as written: no mention, link or control sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(event: Event) -> dict[str, Any]:
    """``{"text": "[warning] job resnet-7: job stalled — no update for 130 s ...",
    "mrkdwn": false, "jobwatch": {jobId, seq, level, title, text, source}}``; the
    job's id, title and text escaped (:func:`slack_escape`) in ``text``, as sent
    in ``jobwatch``."""
    alert = event.data["alert"]
    text = f"[{alert['level']}] job {slack_escape(event.job_id)}: {slack_escape(alert['title'])}"
    if alert.get("text"):
        text += f" — {slack_escape(alert['text'])}"
    return {"text": text, "mrkdwn": False, "jobwatch": {"jobId": event.job_id, **alert}}


def receipt_body(event: Event) -> dict[str, Any]:
    """A finished job's receipt (``JOB_COMPLETED``'s ``receipt``) as a post shaped as an
    alert's (:func:`slack_body`), ``source`` ``receipt``, ``jobwatch.receipt`` the
    figures: ``"[info] job resnet-7: receipt: job completed — completed in 2 h 05 min;
    cost 12.30 of 50.00 QUBIC; ..."``."""
    summary = event.data["receipt"]
    alert = receipt_alert(summary)
    text = f"[{alert.level}] job {slack_escape(event.job_id)}: {slack_escape(alert.title)}"
    text += f" — {slack_escape(alert.text or '')}"
    fields = {"level": alert.level, "title": alert.title, "text": alert.text}
    return {
        "text": text,
        "mrkdwn": False,
        "jobwatch": {
            "jobId": event.job_id,
            "seq": event.seq,
            **fields,
            "source": "receipt",
            "receipt": summary,
        },
    }


def suppressed_body(job_id: str, count: int, window: float) -> dict[str, Any]:
    """The line that stands for ``count`` alerts of ``job_id`` not posted in one window."""
    text = (
        f"[warning] {count} more alerts of job {slack_escape(job_id)} suppressed "
        f"in the last {window:g} s (at most {PER_JOB} per job are posted)"
    )
    return {"text": text, "mrkdwn": False, "jobwatch": {"jobId": job_id, "suppressed": count}}


@dataclass
class _Allowance:
    """One job's window: when it began, alerts queued and alerts held back in it."""

    start: float
    queued: int = 0
    suppressed: int = 0


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
    per_job, window:
        Alerts of one job queued per ``window`` seconds (:data:`PER_JOB`, :data:`WINDOW`).

    Raises
    ------
    ValueError
        ``url`` is not an http or https URL, or ``per_job`` or ``window`` is not positive.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        backoff: float = 0.5,
        *,
        per_job: int = PER_JOB,
        window: float = WINDOW,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"the webhook URL must start with http:// or https://, got {origin(url)!r}"
            )
        if per_job < 1 or not window > 0:
            raise ValueError(f"per_job and window must be positive, got {per_job}, {window}")
        self.url = url
        self.shown = origin(url)
        self.timeout = timeout
        self.per_job, self.window = per_job, window
        self.delivered = 0
        self.failed = 0
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._queued_by_job: Counter[str] = Counter()
        self._allowances: dict[str, _Allowance] = {}
        self._closing = False
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
        self._hide = _HideUrl(url)
        logging.getLogger("urllib3.connectionpool").addFilter(self._hide)
        self._thread = threading.Thread(target=self._run, name="jobwatch-webhook", daemon=True)
        self._thread.start()

    def offer(self, events: list[Event]) -> None:
        """Queue the ``JOB_ALERT`` events among ``events`` (never blocks); a job's
        alerts beyond its allowance are counted for its summary line instead."""
        now = time.monotonic()
        with self._cond:
            for event in events:
                if event.type == "JOB_COMPLETED" and "receipt" in event.data:
                    self._append(event.job_id, receipt_body(event))  # one per job: no allowance
                    continue
                if event.type != "JOB_ALERT":
                    continue
                allowance = self._allowance(event.job_id, now)
                if allowance.queued >= self.per_job:
                    allowance.suppressed += 1
                    continue
                allowance.queued += 1
                self._append(event.job_id, slack_body(event))
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` s), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        self._session.close()
        logging.getLogger("urllib3.connectionpool").removeFilter(self._hide)

    # -- queue (lock held) ------------------------------------------------------------

    def _allowance(self, job_id: str, now: float) -> _Allowance:
        allowance = self._allowances.get(job_id)
        if allowance is None or now - allowance.start >= self.window:
            if allowance is not None and allowance.suppressed:
                self._append(job_id, suppressed_body(job_id, allowance.suppressed, self.window))
            allowance = self._allowances[job_id] = _Allowance(now)
        return allowance

    def _append(self, job_id: str, body: dict[str, Any]) -> None:
        if len(self._queue) >= QUEUE_SIZE:
            heaviest, _ = self._queued_by_job.most_common(1)[0]
            for i, (queued_job, _) in enumerate(self._queue):
                if queued_job == heaviest:
                    del self._queue[i]
                    break
            self._count(heaviest, -1)
            log.warning(
                "jobwatch: the webhook queue is full; the oldest alert of the job "
                "with the most queued was dropped"
            )
        self._queue.append((job_id, body))
        self._count(job_id, 1)

    def _count(self, job_id: str, change: int) -> None:
        self._queued_by_job[job_id] += change
        if self._queued_by_job[job_id] <= 0:
            del self._queued_by_job[job_id]

    def _summaries_due(self, now: float) -> float | None:
        """Queue the summary line of every window that ended; forget idle jobs.
        Returns seconds until the next window with suppressed alerts ends."""
        due: float | None = None
        for job_id, allowance in list(self._allowances.items()):
            ends = allowance.start + self.window
            if now >= ends:
                if allowance.suppressed:
                    self._append(job_id, suppressed_body(job_id, allowance.suppressed, self.window))
                del self._allowances[job_id]
            elif allowance.suppressed:
                due = ends - now if due is None else min(due, ends - now)
        return due

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    wait = self._summaries_due(time.monotonic())
                    if self._queue or self._closing:
                        break
                    self._cond.wait(wait)
                if not self._queue:
                    return
                job_id, body = self._queue.popleft()
                self._count(job_id, -1)
            self._post(body)

    def _post(self, body: dict[str, Any]) -> None:
        try:
            answer = self._session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:  # the receiver is down: log, go on
            self.failed += 1
            log.warning(
                "jobwatch: webhook %s: an alert was not delivered (%s)",
                self.shown,
                type(exc).__name__,
            )
            return
        if answer.status_code >= 400:
            self.failed += 1
            log.warning(
                "jobwatch: webhook %s: an alert was not delivered (answered %d)",
                self.shown,
                answer.status_code,
            )
            return
        self.delivered += 1


class _HideUrl(logging.Filter):
    """Keeps a webhook URL's path and query out of urllib3's retry warnings,
    which name the URL they retry."""

    def __init__(self, url: str) -> None:
        super().__init__()
        _, _, rest = url.partition("://")
        self.path = "/" + rest.partition("/")[2]
        self.shown = origin(url)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place when its text would show the URL's path."""
        if len(self.path) > 1 and self.path in record.getMessage():
            record.msg = "Retrying a webhook delivery to %s"
            record.args = (self.shown,)
        return True
