"""The contract's limits, level and status names, id and name rules and
timestamp format: the plain-Python part of :mod:`jobwatch.contract.requests`, which
re-exports all of it.

Kept apart so that what a training script imports (:class:`jobwatch.Reporter`)
loads no pydantic: ``import jobwatch`` stays cheap. No I/O here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ALERT_LEVELS",
    "CURRENCY_RULE",
    "FINISHED_STATUSES",
    "JOB_ID_PATTERN",
    "JOB_STATUSES",
    "LOG_LEVELS",
    "LOG_TIME_WINDOW",
    "MAX_ALERTS",
    "MAX_BODY_BYTES",
    "MAX_CLOCK_SKEW",
    "MAX_CONFIG_BYTES",
    "MAX_LOG_LINES",
    "MAX_MESSAGE_BYTES",
    "MAX_SCALAR_NAMES",
    "MAX_SCALAR_POINTS",
    "MAX_SEND_DELAY",
    "MAX_STEP",
    "MAX_TEXT",
    "MAX_UPDATE_ID",
    "MAX_WORLD_SIZE",
    "SCALAR_NAME_PATTERN",
    "SCALAR_NAME_RULE",
    "SENT_LATE_AFTER",
    "ascii_float",
    "ascii_int",
    "check_keys",
    "check_status",
    "currency_code",
    "epoch",
    "format_ts",
    "parse_ts",
    "sent_late",
    "truncate_message",
    "valid_job_id",
    "valid_scalar_name",
]

LOG_LEVELS = ("info", "warning", "error")
ALERT_LEVELS = LOG_LEVELS
"""An alert's ``level`` takes the same three values as a log line's."""
JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body the server reads (1 MiB); more answers 413."""
MAX_CONFIG_BYTES = 64 * 1024
"""Largest job ``config`` (its hyperparameters), in bytes of compact UTF-8 JSON
(``json.dumps(config, separators=(",", ":"), ensure_ascii=False)``): 64 KiB,
room for a few thousand settings and small enough that listing a page of jobs
with their configs stays cheap."""
MAX_LOG_LINES = 1000
"""Most log lines one progress update may carry."""
MAX_MESSAGE_BYTES = 16 * 1024
"""A log message longer than this (in UTF-8) is truncated to it, with a marker."""
MAX_CLOCK_SKEW = 24 * 3600.0
"""A worker ``timestamp`` further than this from server time (s) is ignored for ordering."""
LOG_TIME_WINDOW = 7 * 24 * 3600.0
"""A log line's own timestamp is kept only if at most this many seconds old (7 days)."""
MAX_TEXT = 1024
"""Most characters in a name, operation, worker id or provider field."""
MAX_WORLD_SIZE = 65_536
"""Most ranks (workers) a distributed job may have."""
CURRENCY_RULE = "must be 1-16 letters A-Z or digits 0-9, e.g. QUBIC, USD or EUR"
"""What a currency may be, as error messages say it."""
MAX_UPDATE_ID = 64
"""Most characters in a progress update's ``updateId``."""
MAX_SCALAR_NAMES = 100
"""Most distinct training-metric (scalar) names one job may have."""
MAX_STEP = 2**62
"""Largest training step (``scalars[].step``, ``log_metrics(step=)``): steps are
stored as 64-bit integers, with room to spare."""
MAX_SCALAR_POINTS = 1000
"""Most scalar values (points) one progress update may carry."""
SCALAR_NAME_RULE = (
    "1-64 characters of letters, digits and _ - . / :, starting with a letter, digit or _"
)
SCALAR_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,63}$"
"""Training-metric names as a JSON Schema pattern (see :func:`valid_scalar_name`)."""
_SCALAR_NAME = re.compile(SCALAR_NAME_PATTERN.strip("^$"))

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""Job ids as a JSON Schema pattern (see :func:`valid_job_id`)."""
_JOB_ID = re.compile(JOB_ID_PATTERN.strip("^$"))
_CURRENCY = re.compile(r"[A-Za-z0-9]{1,16}")

# -- timestamps ------------------------------------------------------------


def format_ts(epoch_s: float | None) -> str | None:
    """Format seconds since the Unix epoch as ``2026-11-29T10:31:02.123Z``.

    Returns ``None`` for ``None``; milliseconds are truncated, not rounded, so a
    timestamp never moves into the future.
    """
    global _last_second
    if epoch_s is None:
        return None
    seconds, millis = divmod(math.floor(epoch_s * 1000), 1000)
    cached_seconds, prefix = _last_second  # one read: threads swap the whole pair
    if seconds != cached_seconds:
        t = time.gmtime(seconds)
        prefix = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        _last_second = (seconds, prefix)
    return f"{prefix}.{millis:03d}Z"


_last_second: tuple[int | None, str] = (None, "")
"""The last whole second :func:`format_ts` formatted: a server formats the same
second for every event, sample and log line of a batch."""


def parse_ts(text: object) -> float | None:
    """Seconds since the Unix epoch of a wire timestamp (``2026-11-29T10:31:02.123Z``).

    Returns ``None`` for anything else (``None``, a malformed string), which
    front-ends show as unknown. A timestamp without a zone counts as UTC.
    """
    if not isinstance(text, str):
        return None
    try:
        return epoch(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def epoch(dt: datetime) -> float:
    """Seconds since the Unix epoch of ``dt``; a ``dt`` without a zone counts as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


MAX_SEND_DELAY = 30 * 86400.0
"""Longest age of a request accepted, in seconds (30 days): ``sentAt`` less
``timestamp``. A spool older than that is not a run's record but a lost folder."""


SENT_LATE_AFTER = 1.0
"""Seconds after which a request is sent with its ``sentAt``: one that waited
longer (an outage, a retry, a spool) would otherwise date the job by its arrival."""


def sent_late(composed: float, now: float) -> dict[str, str]:
    """``{"sentAt": now}`` (ISO 8601) to add to a request composed at ``composed``
    and sent at ``now`` (both seconds since the epoch on the worker's clock) when it
    waited more than :data:`SENT_LATE_AFTER`; ``{}`` when it did not, or waited
    more than :data:`MAX_SEND_DELAY` (the server would refuse its age: it is then
    dated by its arrival, as before)."""
    if not SENT_LATE_AFTER < now - composed <= MAX_SEND_DELAY:
        return {}  # nearly every request: nothing to format
    return {"sentAt": format_ts(now) or ""}


def valid_job_id(job_id: str) -> bool:
    """Whether ``job_id`` is allowed: 1-128 characters of ``A-Z a-z 0-9 . _ : @ -``,
    starting with a letter or digit (safe in URL paths without escaping)."""
    return _JOB_ID.fullmatch(job_id) is not None


def valid_currency(currency: str) -> bool:
    """Whether ``currency`` is a currency code (see :func:`currency_code`)."""
    return bool(_CURRENCY.fullmatch(currency))


def currency_code(currency: str) -> str:
    """``currency`` as stored: upper-cased; 1-16 ASCII letters and digits.

    A short code (ISO 4217 ``USD``, a token ticker ``QUBIC``) is all a
    currency needs to be, and a code cannot carry markup or terminal controls
    into the viewers that show it.

    Raises
    ------
    ValueError
        Anything else (with :data:`CURRENCY_RULE` as the message).
    """
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(CURRENCY_RULE)
    return currency.upper()


def truncate_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Cut ``message`` to at most ``limit`` bytes of UTF-8, with a marker saying how much was cut.

    The cut never splits a character; the marker reads
    ``" …[truncated 1234 bytes]"`` and counts within the limit.
    """
    raw = message.encode("utf-8")
    if len(raw) <= limit:
        return message
    marker_room = 40
    kept = raw[: limit - marker_room].decode("utf-8", errors="ignore")
    cut = len(raw) - len(kept.encode("utf-8"))
    return f"{kept} …[truncated {cut} bytes]"


def valid_scalar_name(name: str) -> bool:
    """Whether ``name`` is allowed as a training-metric name (see :data:`SCALAR_NAME_RULE`):
    ``"loss"``, ``"val/accuracy"``, ``"lr_group:0"``."""
    return _SCALAR_NAME.fullmatch(name) is not None


MAX_ALERTS = 100
"""Most alerts one progress update may carry."""


def check_status(status: str | None) -> str | None:
    """``status`` if it is ``None`` or one of :data:`jobwatch.contract.requests.JOB_STATUSES`.

    Raises
    ------
    ValueError
        Any other value, naming the allowed ones.
    """
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"status must be one of {', '.join(JOB_STATUSES)} or None, got {status!r}")
    return status


def check_keys(value: Any, path: str) -> None:
    """Refuse a mapping key that is not a string, anywhere in ``value``.

    JSON's object keys are strings, so Python's encoder writes ``1`` as ``"1"``;
    a mapping holding both ``1`` and ``"1"`` would silently become one key.

    Raises
    ------
    ValueError
        Naming the key, its type and where it is (``path`` then ``['a'][0]``...).
    RecursionError
        ``value`` is nested beyond Python's recursion limit.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"the key {key!r} ({type(key).__name__}) in {path} is not a string"
                )
            check_keys(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for place, item in enumerate(value):
            check_keys(item, f"{path}[{place}]")


def ascii_int(text: str) -> int:
    """``int(text)`` for a number written in ASCII digits only.

    Python's ``int()`` (like regex ``\\d`` and ``str.isdigit``) also takes other
    scripts' digits (U+FF17, a full-width 7; U+0663, an Arabic-Indic 3), which a
    user did not mean as a number; what a person, a query or a variable gives as a
    number is read with this instead.

    Raises
    ------
    ValueError
        ``text`` has a character outside ASCII, or is not a whole number.
    """
    if not text.isascii():
        raise ValueError(f"not a number in ASCII digits: {text!r}")
    return int(text)


def ascii_float(text: str) -> float:
    """``float(text)`` for a number written in ASCII only (see :func:`ascii_int`).

    Raises
    ------
    ValueError
        ``text`` has a character outside ASCII, or is not a number.
    """
    if not text.isascii():
        raise ValueError(f"not a number in ASCII digits: {text!r}")
    return float(text)
