"""The spend report's request, free of IO: ``GET /api/costs`` and ``jobwatch costs``.

``since`` is ``<N>d`` (the ``N`` calendar days ending today: today and the
``N - 1`` before it, ``1 <= N <= 366``), ``month`` (from the first of this
month) or a date ``YYYY-MM-DD`` (from that day on, at most :data:`MAX_DAYS`
days ago); ``by`` one of :data:`GROUPS` (none:
totals only); ``tz`` the time zone whose midnights cut the days: an IANA name
(``Europe/Paris``; one of :func:`zoneinfo.available_timezones`, less the files that
are no zone: ``localtime``, ``posixrules``, ``Factory``), ``UTC``, or a fixed offset
(``+05:30``). What the report
counts is :mod:`jobwatch.server.core.spend`'s.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DEFAULT_SINCE",
    "GROUPS",
    "MAX_DAYS",
    "CostsQuery",
    "first_day",
    "iana_zones",
    "local_today",
    "parse_tz",
]

GROUPS = ("provider", "tenant", "name")
"""What the report may group jobs by: ``providerId``, the tenant, or the job's name."""
MAX_DAYS = 366
"""Most days one report covers."""
DEFAULT_SINCE = "7d"
"""The window when none is asked for: the last seven days, today included."""
SINCE_RULE = (
    f"'<N>d' with N from 1 to {MAX_DAYS} (e.g. 7d), 'month' (this calendar month), "
    "or a date YYYY-MM-DD"
)
"""What ``since`` may be, in words for error messages."""
TZ_RULE = "an IANA time zone (e.g. Europe/Paris), UTC, or an offset such as +05:30"
"""What ``tz`` may be, in words for error messages."""

# [0-9], not \d: \d and int() take any script's digits (a full-width 7, U+FF17, then d would be 7 days)
_DAYS = re.compile(r"([0-9]{1,3})d")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_OFFSET = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
"""Files of a zoneinfo folder that :func:`zoneinfo.available_timezones` may list but
that name no place: this machine's zone, the POSIX-TZ template and tzdata's
placeholder ("Local time zone must be set")."""


class CostsQuery(BaseModel):
    """``GET /api/costs`` parameters: ``since`` (default ``7d``), ``by`` (optional)
    and ``tz`` (default ``UTC``); see the module's rules."""

    model_config = ConfigDict(strict=False, extra="ignore")

    since: str = DEFAULT_SINCE
    by: Literal["provider", "tenant", "name"] | None = None
    tz: str = Field("UTC", max_length=64)

    @field_validator("since")
    @classmethod
    def _known_since(cls, since: str) -> str:
        days = _DAYS.fullmatch(since)
        if since == "month" or (days is not None and 1 <= int(days.group(1)) <= MAX_DAYS):
            return since
        if _DATE.fullmatch(since):
            try:
                date.fromisoformat(since)
            except ValueError:
                pass
            else:
                return since
        raise ValueError(f"since must be {SINCE_RULE}, got {since!r}")

    @field_validator("tz")
    @classmethod
    def _known_tz(cls, tz: str) -> str:
        parse_tz(tz)
        return tz


def parse_tz(name: str) -> tzinfo:
    """The time zone ``name`` names (see :data:`TZ_RULE`).

    Raises
    ------
    ValueError
        No such zone, or a malformed offset (more than 18 hours).
    """
    offset = _OFFSET.fullmatch(name)
    if offset is not None:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        if delta > timedelta(hours=18) or int(minutes) >= 60:
            raise ValueError(f"tz must be {TZ_RULE}, got {name!r}")
        return timezone(-delta if sign == "-" else delta)
    if name.upper() == "UTC":
        return timezone.utc
    if name not in iana_zones():
        raise ValueError(f"tz must be {TZ_RULE}, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # listed, yet unreadable
        raise ValueError(f"tz must be {TZ_RULE}, got {name!r}") from None


@cache
def iana_zones() -> frozenset[str]:
    """The IANA zone names this machine knows (``Europe/Paris``, ``UTC``...):
    :func:`zoneinfo.available_timezones` (the documented list, from the system's
    zoneinfo folders and the ``tzdata`` package) less :data:`_NOT_ZONES`. Read once
    (walking the folders takes some 30 ms)."""
    return frozenset(available_timezones() - _NOT_ZONES)


def first_day(since: str, today: date) -> date:
    """The first day of the window ``since`` (already valid) asks for, given ``today``.

    Raises
    ------
    ValueError
        A date after ``today`` or more than :data:`MAX_DAYS` days before it.
    """
    days = _DAYS.fullmatch(since)
    if days is not None:
        return today - timedelta(days=int(days.group(1)) - 1)
    if since == "month":
        return today.replace(day=1)
    first = date.fromisoformat(since)
    if first > today:
        raise ValueError(f"since {since} is after today ({today.isoformat()})")
    if (today - first).days >= MAX_DAYS:
        raise ValueError(f"since {since} is more than {MAX_DAYS} days ago; at most {MAX_DAYS} days")
    return first


def local_today(now: float, zone: tzinfo) -> date:
    """The date in ``zone`` at ``now`` (s since the epoch)."""
    return datetime.fromtimestamp(now, zone).date()
