"""Alerts delivered to webhooks (``jobwatch serve --webhook-url``, ``--webhook``).

Each ``JOB_ALERT`` this process commits, and each finished job's receipt
(``JOB_COMPLETED``'s ``receipt``), is posted once to every webhook whose level
filter takes it, in the webhook's format (Slack, Discord, ntfy, Microsoft Teams
or plain JSON; :mod:`jobwatch.server.core.alerts.webhooks` says what each posts and
how it escapes job text), from a thread per webhook, so ingest never waits for
a receiver and one slow receiver never holds up another. Retries are urllib3's
``Retry`` (exponential backoff on connection errors and 429/5xx answers,
honouring ``Retry-After``).

One job cannot crowd out another: each job may queue :data:`PER_JOB` alerts
per :data:`WINDOW` seconds; the rest of that window's are counted and posted
as one line when the window ends ("job X: 37 more alerts suppressed ..."). A
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

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from jobwatch.contract.basics import LOG_LEVELS
from jobwatch.errors import ValidationError
from jobwatch.server.core.alerts.webhooks import (
    Notice,
    Post,
    WebhookTarget,
    alert_notice,
    parse_target,
    receipt_notice,
    render,
    suppressed_notice,
)
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


@dataclass
class _Allowance:
    """One job's window: when it began, alerts queued and alerts held back in it."""

    start: float
    queued: int = 0
    suppressed: int = 0
    level: str = LOG_LEVELS[0]

    def hold_back(self, level: str) -> None:
        """Count one more alert of ``level`` held back; the summary takes the highest level."""
        self.suppressed += 1
        if level in LOG_LEVELS and LOG_LEVELS.index(level) > LOG_LEVELS.index(self.level):
            self.level = level


class WebhookSender:
    """Posts alerts to one webhook in the background.

    Parameters
    ----------
    target:
        Where and how: a :class:`~jobwatch.server.core.alerts.webhooks.WebhookTarget`, or
        its text ``[FORMAT+]URL [level>=LEVEL]`` (a plain ``http(s)://`` URL: Slack,
        every level).
    timeout:
        Seconds per attempt (connect and read).
    backoff:
        urllib3's ``backoff_factor`` (s): waits of backoff x 2^(n-1) between attempts.
    per_job, window:
        Alerts of one job queued per ``window`` seconds (:data:`PER_JOB`, :data:`WINDOW`).

    Raises
    ------
    ValueError
        ``target`` is not a webhook (its URL not http or https, an unknown format
        or level), or ``per_job`` or ``window`` is not positive.
    """

    def __init__(
        self,
        target: str | WebhookTarget,
        timeout: float = 5.0,
        backoff: float = 0.5,
        *,
        per_job: int = PER_JOB,
        window: float = WINDOW,
    ) -> None:
        if isinstance(target, str):
            try:
                target = parse_target(target)
            except ValidationError as exc:
                raise ValueError(exc.message) from None
        if not target.url.startswith(("http://", "https://")):
            raise ValueError(
                f"the webhook URL must start with http:// or https://, got {origin(target.url)!r}"
            )
        if per_job < 1 or not window > 0:
            raise ValueError(f"per_job and window must be positive, got {per_job}, {window}")
        url = target.url
        self.target = target
        self.url = url
        self.shown = origin(url)
        self.timeout = timeout
        self.per_job, self.window = per_job, window
        self.delivered = 0
        self.failed = 0
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, Notice]] = deque()
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
        self._thread = threading.Thread(
            target=self._run, name=f"jobwatch-webhook-{target.format}", daemon=True
        )
        self._thread.start()

    def offer(self, events: list[Event]) -> None:
        """Queue the ``JOB_ALERT`` events and receipts among ``events`` that the
        target's level filter takes (never blocks); a job's alerts beyond its
        allowance are counted for its summary line instead."""
        now = time.monotonic()
        with self._cond:
            for event in events:
                if event.type == "JOB_COMPLETED" and "receipt" in event.data:
                    notice = receipt_notice(event)
                    if self.target.takes(notice.level):
                        self._append(event.job_id, notice)  # one per job: no allowance
                    continue
                if event.type != "JOB_ALERT" or not self.target.takes(event.data["alert"]["level"]):
                    continue
                allowance = self._allowance(event.job_id, now)
                if allowance.queued >= self.per_job:
                    allowance.hold_back(event.data["alert"]["level"])
                    continue
                allowance.queued += 1
                self._append(event.job_id, alert_notice(event))
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` s), then stop."""
        self.stop()
        self.join(timeout)

    def stop(self) -> None:
        """Take no more alerts: the thread delivers what is queued, then ends."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` s for the thread after :meth:`stop`, then let go."""
        self._thread.join(max(0.0, timeout))
        self._session.close()
        logging.getLogger("urllib3.connectionpool").removeFilter(self._hide)

    # -- queue (lock held) ------------------------------------------------------------

    def _allowance(self, job_id: str, now: float) -> _Allowance:
        allowance = self._allowances.get(job_id)
        if allowance is None or now - allowance.start >= self.window:
            if allowance is not None and allowance.suppressed:
                self._append(job_id, self._summary(job_id, allowance))
            allowance = self._allowances[job_id] = _Allowance(now)
        return allowance

    def _summary(self, job_id: str, allowance: _Allowance) -> Notice:
        return suppressed_notice(
            job_id, allowance.suppressed, self.window, self.per_job, allowance.level
        )

    def _append(self, job_id: str, notice: Notice) -> None:
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
        self._queue.append((job_id, notice))
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
                    self._append(job_id, self._summary(job_id, allowance))
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
                job_id, notice = self._queue.popleft()
                self._count(job_id, -1)
            self._post(render(self.target, notice))

    def _post(self, post: Post) -> None:
        try:
            answer = self._session.post(
                post.url,
                json=post.json,
                data=post.data,
                headers=dict(post.headers),
                timeout=self.timeout,
            )
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


class Webhooks:
    """Every webhook of a server: each alert and receipt is offered to each
    :class:`WebhookSender`, which posts what its level filter takes.

    Parameters
    ----------
    targets:
        The webhooks (:class:`~jobwatch.server.core.alerts.webhooks.WebhookTarget`, or
        their text).
    timeout, backoff:
        As :class:`WebhookSender` takes them.

    Raises
    ------
    ValueError
        A target is not a webhook (the senders made so far are closed).
    """

    def __init__(
        self, targets: list[str | WebhookTarget], timeout: float = 5.0, backoff: float = 0.5
    ) -> None:
        self.senders: list[WebhookSender] = []
        try:
            for target in targets:
                self.senders.append(WebhookSender(target, timeout, backoff))
        except ValueError:
            self.close()
            raise

    @property
    def delivered(self) -> int:
        """Posts every webhook's receiver took, in all."""
        return sum(sender.delivered for sender in self.senders)

    @property
    def failed(self) -> int:
        """Posts not delivered after their retries, in all."""
        return sum(sender.failed for sender in self.senders)

    def offer(self, events: list[Event]) -> None:
        """Offer ``events`` to every webhook (never blocks)."""
        for sender in self.senders:
            sender.offer(events)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` s for all), then stop."""
        deadline = time.monotonic() + timeout
        for sender in self.senders:
            sender.stop()
        for sender in self.senders:
            sender.join(deadline - time.monotonic())
