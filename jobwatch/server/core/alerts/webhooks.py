"""Where alerts go, without I/O: webhook targets and what each format posts.

A target is ``[FORMAT+]URL [level>=LEVEL]`` (:func:`parse_target`): the format
as a scheme prefix, as SQLAlchemy names a driver (``discord+https://...``), and
the least level it takes. Each alert, receipt and summary line becomes one
:class:`Notice`, which :func:`render` turns into the :class:`Post` its format's
receiver reads. Every format shows the same line, ``[warning] job resnet-7: job
stalled — no update for 130 s ...``, and escapes the job's text (its id, the
alert's title and text) by its own markup rules, so no job can mention, link or
format through an alert:

- ``slack``: ``{"text", "mrkdwn": false, "jobwatch"}``; ``&``, ``<``, ``>`` as
  ``&amp;``, ``&lt;``, ``&gt;``
  (https://api.slack.com/reference/surfaces/formatting#escaping), which also
  turns ``<!channel>`` and ``<@U123>`` into plain text. Mattermost's and
  Discord's ``/slack`` endpoints read it too.
- ``discord``: ``{"content", "allowed_mentions": {"parse": []}, "flags": 4}``
  (https://discord.com/developers/docs/resources/webhook#execute-webhook):
  every ASCII punctuation character of job text behind a backslash, which
  Discord's markdown shows as the character itself (CommonMark's backslash
  escapes, https://spec.commonmark.org/0.31.2/#backslash-escapes), so
  ``**``, ``[label](url)``, ``<@&role>``, ``@everyone`` and ``# heading`` show
  as written; ``allowed_mentions`` with no ``parse`` pings no one even so, and
  flag 4 (``SUPPRESS_EMBEDS``) unfurls no link. At most :data:`DISCORD_LIMIT`
  characters.
- ``ntfy``: the text as the plain-text body (no ``Markdown`` header), the line
  as the ``Title`` header, ``Priority`` 3, 4 or 5 and ``Tags``
  (https://docs.ntfy.sh/publish/). A header value has no control character
  (CR and LF become spaces) and is sent as an RFC 2047 encoded word
  (``=?UTF-8?B?...?=``, which ntfy decodes) unless it is printable ASCII;
  the body is cut to :data:`NTFY_LIMIT` bytes, ntfy's default message limit.
- ``teams``: a message with one Adaptive Card, the payload Teams' incoming
  webhooks and Workflows' "post to a channel when a webhook request is received"
  take (https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook).
  Job text goes only in ``TextRun`` elements of a ``RichTextBlock``, where
  the schema reads no markdown ("Markdown is not supported",
  https://adaptivecards.io/explorer/TextRun.html), rather than a ``TextBlock``,
  whose markdown has no documented escape; the card carries no ``msteams``
  entities, without which ``<at>name</at>`` mentions no one, and the braces of
  ``{{DATE(...)}}`` are kept apart by U+200B so the text shows as written.
- ``json``: the alert as stored, ``{jobId, seq, timestamp, level, title, text,
  source}`` (a receipt adds ``receipt``, a summary line ``suppressed``): JSON
  encoding is its escaping.
"""

from __future__ import annotations

import base64
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobwatch.contract.basics import LOG_LEVELS
from jobwatch.errors import ValidationError
from jobwatch.server.core.alerts.receipt import receipt_alert
from jobwatch.server.core.serialize import Event
from jobwatch.server.core.text import ELLIPSIS, bounded_text

__all__ = [
    "DISCORD_LIMIT",
    "FORMATS",
    "NTFY_LIMIT",
    "TARGET_GRAMMAR",
    "Notice",
    "Post",
    "WebhookTarget",
    "alert_notice",
    "discord_body",
    "discord_escape",
    "header_value",
    "ntfy_post",
    "parse_target",
    "receipt_notice",
    "render",
    "slack_body",
    "slack_escape",
    "suppressed_notice",
    "teams_body",
    "teams_text",
]

FORMATS = ("slack", "discord", "ntfy", "teams", "json")
"""The webhook formats, the first the default."""
TARGET_GRAMMAR = (
    "a webhook reads [FORMAT+]URL [level>=LEVEL], e.g. "
    '"ntfy+https://ntfy.sh/gpu-team level>=error"; FORMAT is one of '
    f"{', '.join(FORMATS)} (default slack); URL starts with http:// or https://; "
    f"LEVEL is one of {', '.join(LOG_LEVELS)} (default info: every alert)"
)
"""What :func:`parse_target` accepts, as its errors say it."""
DISCORD_LIMIT = 2000
"""Most characters of a Discord message's ``content``."""
NTFY_LIMIT = 4096
"""Most bytes of an ntfy message body (ntfy's default ``message-size-limit``; a
longer one becomes an attachment)."""
TITLE_LIMIT = 256
"""Most bytes (UTF-8) of an ntfy title before it is encoded."""

_TARGET = re.compile(
    r"\s*(?:(?P<format>[A-Za-z0-9_-]+)\+)?(?P<url>\S+)"
    r"(?:\s+level\s*>=\s*(?P<level>\S+))?\s*"
)
_PRIORITY = {"info": "3", "warning": "4", "error": "5"}
"""ntfy's priorities: 3 default, 4 high, 5 max (https://docs.ntfy.sh/publish/#message-priority)."""
_EMOJI = {"info": "information_source", "warning": "warning", "error": "rotating_light"}
"""ntfy tags shown as emoji (https://docs.ntfy.sh/emojis/)."""
_COLOR = {"info": "Accent", "warning": "Warning", "error": "Attention"}
"""An Adaptive Card ``TextRun``'s colour for each level."""
_DISCORD_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


@dataclass(frozen=True)
class WebhookTarget:
    """Where alerts go and which: ``url``, its ``format`` (:data:`FORMATS`) and the
    least level it takes (``min_level``, one of info, warning, error)."""

    url: str
    format: str = "slack"
    min_level: str = "info"

    def takes(self, level: str) -> bool:
        """Whether an alert of ``level`` goes to this target (an unknown level does)."""
        rank = LOG_LEVELS.index(level) if level in LOG_LEVELS else len(LOG_LEVELS)
        return rank >= LOG_LEVELS.index(self.min_level)


def parse_target(text: str, label: str = "webhook") -> WebhookTarget:
    """``"ntfy+https://ntfy.sh/gpu-team level>=error"`` as a :class:`WebhookTarget`;
    ``label`` names it in errors (``--webhook``, ``JOBWATCH_WEBHOOKS``).

    Raises
    ------
    ValidationError
        ``text`` is not ``[FORMAT+]URL [level>=LEVEL]``, names an unknown
        format or level, or its URL is not http(s); the message says what is
        allowed and never shows the URL (a webhook's path is its key).
    """
    match = _TARGET.fullmatch(text)
    if match is None:
        raise ValidationError(f"{label}: not understood; {TARGET_GRAMMAR}")
    fmt = (match["format"] or FORMATS[0]).lower()
    level = (match["level"] or LOG_LEVELS[0]).lower()
    if fmt not in FORMATS:
        raise ValidationError(f"{label}: unknown format {match['format']!r}; {TARGET_GRAMMAR}")
    if level not in LOG_LEVELS:
        raise ValidationError(f"{label}: unknown level {match['level']!r}; {TARGET_GRAMMAR}")
    if not match["url"].startswith(("http://", "https://")):
        raise ValidationError(
            f"{label}: the URL must start with http:// or https://; {TARGET_GRAMMAR}"
        )
    return WebhookTarget(match["url"], fmt, level)


@dataclass(frozen=True)
class Notice:
    """One thing to post: the job's id, ``level``, ``title`` and ``text`` (job text,
    escaped by each format), its ``source`` and ``wire``, the structured copy
    (the alert as stored, plus ``receipt`` or ``suppressed``)."""

    job_id: str
    level: str
    title: str
    text: str | None
    source: str
    wire: Mapping[str, Any]


@dataclass(frozen=True)
class Post:
    """One request: to ``url``, a JSON body (``json``) or raw bytes (``data``), with ``headers``."""

    url: str
    json: Any = None
    data: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def alert_notice(event: Event) -> Notice:
    """A ``JOB_ALERT`` event as a :class:`Notice`."""
    alert = event.data["alert"]
    return Notice(
        event.job_id,
        alert["level"],
        alert["title"],
        alert.get("text"),
        alert.get("source", "worker"),
        {"jobId": event.job_id, **alert},
    )


def receipt_notice(event: Event) -> Notice:
    """A finished job's receipt (``JOB_COMPLETED``'s ``receipt``) as a notice shaped as
    an alert: ``source`` ``receipt``, level info, title ``"receipt: job completed"``,
    ``wire.receipt`` the figures."""
    summary = event.data["receipt"]
    alert = receipt_alert(summary)
    wire = {
        "jobId": event.job_id,
        "seq": event.seq,
        "level": alert.level,
        "title": alert.title,
        "text": alert.text,
        "source": "receipt",
        "receipt": summary,
    }
    return Notice(event.job_id, alert.level, alert.title, alert.text or "", "receipt", wire)


def suppressed_notice(job_id: str, count: int, window: float, per_job: int, level: str) -> Notice:
    """The line that stands for ``count`` alerts of ``job_id`` (the highest of them
    ``level``) not posted in one ``window`` (s) of ``per_job`` alerts."""
    title = (
        f"{count} more alerts suppressed in the last {window:g} s "
        f"(at most {per_job} per job are posted)"
    )
    wire = {
        "jobId": job_id,
        "level": level,
        "title": title,
        "text": None,
        "source": "suppressed",
        "suppressed": count,
    }
    return Notice(job_id, level, title, None, "suppressed", wire)


def render(target: WebhookTarget, notice: Notice) -> Post:
    """The request that posts ``notice`` to ``target`` in its format."""
    if target.format == "discord":
        return Post(target.url, json=discord_body(notice))
    if target.format == "ntfy":
        return ntfy_post(target.url, notice)
    if target.format == "teams":
        return Post(target.url, json=teams_body(notice))
    if target.format == "json":
        return Post(target.url, json=dict(notice.wire))
    return Post(target.url, json=slack_body(notice))


# -- slack ---------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` escaped as Slack's message formatting
    asks, so that it shows as written: no mention, link or control sequence."""
    return text.translate(_SLACK_ESCAPES)


def slack_body(notice: Notice) -> dict[str, Any]:
    """``{"text": "[warning] job resnet-7: job stalled — ...", "mrkdwn": false,
    "jobwatch": {...}}``, job text escaped (:func:`slack_escape`) in ``text`` and
    as sent in ``jobwatch``."""
    text = f"[{notice.level}] job {slack_escape(notice.job_id)}: {slack_escape(notice.title)}"
    if notice.text is not None:
        text += f" — {slack_escape(notice.text)}"
    return {"text": text, "mrkdwn": False, "jobwatch": dict(notice.wire)}


# -- discord -------------------------------------------------------------------


def discord_escape(text: str) -> str:
    """``text`` with a backslash before every ASCII punctuation character, which
    Discord shows as the character itself: no markdown, mention or link."""
    return text.translate(_DISCORD_ESCAPES)


def discord_body(notice: Notice) -> dict[str, Any]:
    """``{"content": "**[warning]** job resnet\\-7: ...", "allowed_mentions":
    {"parse": []}, "flags": 4}``, at most :data:`DISCORD_LIMIT` characters."""
    content = (
        f"**[{notice.level}]** job {discord_escape(notice.job_id)}: {discord_escape(notice.title)}"
    )
    if notice.text is not None:
        content += f" — {discord_escape(notice.text)}"
    if len(content) > DISCORD_LIMIT:
        content = _cut_escaped(content, DISCORD_LIMIT - len(ELLIPSIS)) + ELLIPSIS
    return {"content": content, "allowed_mentions": {"parse": []}, "flags": 4}


def _cut_escaped(text: str, limit: int) -> str:
    """The first ``limit`` characters of backslash-escaped ``text``, one fewer when
    the cut would leave a backslash escaping what follows."""
    cut = text[:limit]
    trailing = len(cut) - len(cut.rstrip("\\"))
    return cut[:-1] if trailing % 2 else cut


# -- ntfy ----------------------------------------------------------------------


def header_value(text: str) -> str:
    """``text`` as one safe HTTP header value: control characters (CR, LF, tab,
    NUL, ...) as spaces, outer whitespace dropped; printable ASCII as it is,
    anything else (or text holding ``=?``, which would read as an encoded word)
    as one RFC 2047 encoded word, ``=?UTF-8?B?<base64 of UTF-8>?=``."""
    flat = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text).strip()
    if flat.isascii() and flat.isprintable() and "=?" not in flat:
        return flat
    return "=?UTF-8?B?" + base64.b64encode(flat.encode("utf-8", "replace")).decode() + "?="


def ntfy_post(url: str, notice: Notice) -> Post:
    """The alert's text (else its title) as a plain-text body, cut to
    :data:`NTFY_LIMIT` bytes; the line's head as ``Title``; ``Priority`` 3 (info),
    4 (warning) or 5 (error); ``Tags`` an emoji for the level and the source."""
    title = bounded_text(f"[{notice.level}] job {notice.job_id}: {notice.title}", TITLE_LIMIT)
    body = bounded_text(notice.text if notice.text is not None else notice.title, NTFY_LIMIT)
    headers = {
        "Title": header_value(title or ""),
        "Priority": _PRIORITY.get(notice.level, "3"),
        "Tags": f"{_EMOJI.get(notice.level, 'warning')},{header_value(notice.source)}",
        "Content-Type": "text/plain; charset=utf-8",
    }
    return Post(url, data=(body or "").encode("utf-8", "replace"), headers=headers)


# -- teams ---------------------------------------------------------------------


def teams_text(text: str) -> str:
    """Job text for a ``TextRun``: as written, with the braces of ``{{`` kept apart
    (U+200B) so that no ``{{DATE(...)}}`` or ``{{TIME(...)}}`` is formatted."""
    return text.replace("{{", "{\u200b{")


def teams_body(notice: Notice) -> dict[str, Any]:
    """A message with one Adaptive Card (version 1.4): a bold heading ``[warning]
    job resnet-7: job stalled``, the level coloured, and the text below, all in
    ``TextRun`` elements."""
    heading = [
        {
            "type": "TextRun",
            "text": f"[{notice.level}] ",
            "weight": "Bolder",
            "color": _COLOR.get(notice.level, "Default"),
        },
        {
            "type": "TextRun",
            "text": teams_text(f"job {notice.job_id}: {notice.title}"),
            "weight": "Bolder",
        },
    ]
    body: list[dict[str, Any]] = [{"type": "RichTextBlock", "inlines": heading}]
    if notice.text is not None:
        text = [{"type": "TextRun", "text": teams_text(notice.text)}]
        body.append({"type": "RichTextBlock", "inlines": text})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}
