"""``jobwatch costs``: spend per day and per group, as a table or CSV.

Asks the server's ``GET /api/costs`` (docs/api.md "Spend across jobs" says what
is counted) over the jobs the token may read. Every text that came from a job
(its name, provider or tenant) is printed terminal-safe (:func:`clean`), and in
CSV a value that a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@`` first) is prefixed with ``'`` (OWASP's advice on CSV injection).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from jobwatch.cli.connect import UsageError, connect
from jobwatch.contract.costs import DEFAULT_SINCE, GROUPS, CostsQuery, iana_zones, parse_tz
from jobwatch.errors import ValidationError
from jobwatch.view.terminal_safe import clean

if TYPE_CHECKING:
    from jobwatch.contract.answers import CostReport

__all__ = ["add_parser", "default_tz", "print_csv", "print_table", "run"]

EXIT_USAGE = 2
GROUP_WIDTH = 28
"""Most characters of a group's name in the table (longer names end in ``…``)."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LOCALTIME = Path("/etc/localtime")
"""This machine's zone on Linux and macOS: a link into a zoneinfo folder, whose path
below ``zoneinfo/`` is the zone's IANA name."""
_UTC_NAMES = frozenset(
    {"Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu"}
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``costs`` to the ``jobwatch`` command's subcommands."""
    costs = commands.add_parser(
        "costs",
        help="spend per day and per group (provider, tenant or name)",
        description="What the jobs cost, per day and per group, finished and running jobs "
        "alike: each job's own price integrated over the part of its run in each day "
        "(docs/api.md 'Spend across jobs' says exactly what is counted).",
    )
    costs.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help="'<N>d': the N days ending today (1-366), 'month': this calendar month, or a date "
        "YYYY-MM-DD (default 7d)",
    )
    costs.add_argument("--by", choices=GROUPS, help="group the jobs (default: totals only)")
    costs.add_argument(
        "--csv", action="store_true", help="CSV on stdout: one row per day and group"
    )
    costs.add_argument(
        "--tz",
        help="time zone whose midnights cut the days: an IANA name (Europe/Paris), UTC or "
        "+05:30 (default $TZ if it names a zone, else this machine's zone, else its current UTC "
        "offset)",
    )
    costs.add_argument("--url", help="server URL (default $JOBWATCH_URL or http://127.0.0.1:8765)")
    costs.add_argument("--token", help="bearer token for the server (default $JOBWATCH_TOKEN)")


def default_tz(localtime: Path | None = None) -> str:
    """The zone ``--tz`` defaults to, by its name where one is known: ``$TZ`` when it
    names a zone (``Europe/Paris``, ``:Europe/Paris``), else the zone ``localtime``
    (default :data:`LOCALTIME`) links to, else this machine's current UTC offset
    (``+01:00``, which does not follow a daylight-saving change inside the window;
    ``UTC`` for ``+00:00``). UTC's aliases (``Etc/UTC``...) read ``UTC``."""
    named = os.environ.get("TZ", "").lstrip(":")
    if named:
        try:
            parse_tz(named)
        except ValueError:
            pass
        else:
            return named
    linked = _linked_zone(LOCALTIME if localtime is None else localtime)
    if linked is not None:
        return "UTC" if linked in _UTC_NAMES else linked
    offset = time.strftime("%z")  # e.g. +0100
    if len(offset) != 5 or offset[1:] == "0000":
        return "UTC"
    return f"{offset[:3]}:{offset[3:]}"


def _linked_zone(localtime: Path) -> str | None:
    """The IANA name of the zone file ``localtime`` links to, if it is one."""
    try:
        target = localtime.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a loop of links
        return None
    parts = target.parts
    if "zoneinfo" not in parts:
        return None
    below = parts[len(parts) - parts[::-1].index("zoneinfo") :]
    name = "/".join(below)
    return name if name in iana_zones() else None


def run(args: argparse.Namespace) -> int:
    """Print the report; returns the exit code (2 for a bad ``--since`` or ``--tz``,
    whether this command or the server found it).

    Raises
    ------
    UsageError
        ``--url`` or ``--token`` is unusable, or ``--since``/``--tz`` is malformed.
    """
    tz = args.tz or default_tz()
    try:
        CostsQuery.model_validate({"since": args.since, "by": args.by, "tz": tz})
    except ValueError as exc:
        raise UsageError(_first_message(exc)) from None
    with connect(args.url, args.token) as client:
        try:
            report = client.costs(since=args.since, by=args.by, tz=tz)
        except ValidationError as exc:  # e.g. a date more than 366 days before the server's today
            message = "; ".join(d["message"] for d in exc.details) or exc.message
            raise UsageError(clean(message, single_line=True)) from None
    if args.csv:
        print_csv(report, sys.stdout)
    else:
        print_table(report, sys.stdout)
    return 0


def _first_message(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            field = ".".join(str(p) for p in found[0]["loc"])
            return f"--{field}: {found[0]['msg'].removeprefix('Value error, ')}"
    return str(exc)


def _group(value: str | None, by: str | None) -> str:
    if value is None:
        return "(operator)" if by == "tenant" else "(none)"
    return clean(value, single_line=True)


def print_table(report: CostReport, out: TextIO) -> None:
    """The report as text: the groups (with ``by``), then each day's spend per currency."""
    days = report["days"]
    window = f"{days[0]} to {days[-1]}" if days else "today"
    by = report["by"]
    grouped = f", by {by}" if by else ""
    zone = clean(report["timeZone"], single_line=True)
    out.write(f"Spend from {window} ({zone}){grouped}; running jobs up to now.\n")
    currencies = [t["currency"] for t in report["totals"]]
    if not currencies:
        out.write("No job with a price ran in this window.\n")
    if by and report["groups"]:
        out.write(
            f"\n{by.upper():<{GROUP_WIDTH}} {'CURRENCY':<10} {'COST':>12} {'HOURS':>9} "
            f"{'JOBS':>6} {'RUNNING':>8}\n"
        )
        for group in report["groups"]:
            name = _group(group["group"], by)
            if len(name) > GROUP_WIDTH:
                name = name[: GROUP_WIDTH - 1] + "…"
            out.write(
                f"{name:<{GROUP_WIDTH}} {clean(group['currency'], single_line=True):<10} "
                f"{group['cost']:>12.2f} {group['hours']:>9.1f} {group['jobs']:>6} "
                f"{group['running']:>8}\n"
            )
    if currencies:
        safe = [clean(c, single_line=True) for c in currencies]
        out.write(f"\n{'DAY':<12}" + "".join(f" {c:>12}" for c in safe) + "\n")
        for i, day in enumerate(days):
            cells = "".join(f" {t['daily'][i]:>12.2f}" for t in report["totals"])
            out.write(f"{day:<12}{cells}\n")
        out.write(f"{'total':<12}" + "".join(f" {t['cost']:>12.2f}" for t in report["totals"]))
        out.write("\n")
    unpriced = report["unpriced"]
    if unpriced["jobs"]:
        plural = "s" if unpriced["jobs"] != 1 else ""
        out.write(
            f"\nNot counted: {unpriced['jobs']} job{plural} without a price "
            f"({unpriced['hours']:.1f} h).\n"
        )


def print_csv(report: CostReport, out: TextIO) -> None:
    """The report as CSV: ``date,group,currency,cost`` (``date,currency,cost`` without
    ``by``), one row per day and group (or currency), oldest day first."""
    writer = csv.writer(out, lineterminator="\n")
    by = report["by"]
    if by:
        writer.writerow(["date", by, "currency", "cost"])
        for i, day in enumerate(report["days"]):
            for group in report["groups"]:
                name = "" if group["group"] is None else _cell(group["group"])
                writer.writerow([day, name, _cell(group["currency"]), f"{group['daily'][i]:.6f}"])
        return
    writer.writerow(["date", "currency", "cost"])
    for i, day in enumerate(report["days"]):
        for total in report["totals"]:
            writer.writerow([day, _cell(total["currency"]), f"{total['daily'][i]:.6f}"])


def _cell(text: str) -> str:
    safe = clean(text, single_line=True)
    return "'" + safe if safe.startswith(_FORMULA_START) else safe
