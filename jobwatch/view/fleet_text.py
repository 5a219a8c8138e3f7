"""A fleet as text: the cells of one row per job and the totals line.

Shared by ``jobwatch top`` and the text fallback of
:class:`~jobwatch.notebook.jobs_table.JobsTable`, so a fleet reads the same in
a terminal and in a notebook without widgets. Remote strings (names,
operations) go through :func:`~jobwatch.view.terminal_safe.clean`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from jobwatch.contract.basics import parse_ts
from jobwatch.view.budget import budget_state, projection_text
from jobwatch.view.fleet import FleetState, Totals
from jobwatch.view.formatting import (
    DASH,
    format_bar,
    format_cost,
    format_duration,
    format_metric,
    format_percent,
)
from jobwatch.view.terminal_safe import clean

__all__ = [
    "COLUMNS",
    "cells",
    "format_totals",
    "format_workers",
    "render_table",
    "row_budget_state",
]

COLUMNS = (
    ("name", "NAME"),
    ("status", "STATUS"),
    ("progress", "PROGRESS"),
    ("timeRemaining", "REMAINING"),
    ("costSoFar", "COST"),
    ("estimatedTotalCost", "EST. / BUDGET"),
    ("gpuUtilization", "GPU"),
    ("gpuTemperature", "TEMP"),
    ("updatedAt", "UPDATED"),
)
"""(summary field, header) of each column, in order; each field but ``estimatedTotalCost``
(shown with the budget: :func:`~jobwatch.view.budget.projection_text`) is one of
:data:`jobwatch.view.fleet.SORT_KEYS`."""


def format_workers(job: Mapping[str, Any]) -> str:
    """``"4 workers on 2 nodes"`` for a distributed job (one with a ``worldSize``),
    ``""`` for a job of one worker. ``job`` is a job object or a fleet summary."""
    if not isinstance(job.get("worldSize"), int):
        return ""
    workers, nodes = job.get("workers"), job.get("nodes")
    if not isinstance(workers, int) or not isinstance(nodes, int):
        return f"{job['worldSize']} ranks"
    return (
        f"{workers} worker{'' if workers == 1 else 's'} on {nodes} node{'' if nodes == 1 else 's'}"
    )


def cells(row: Mapping[str, Any], cost: float | None, now: float) -> tuple[str, ...]:
    """The text of one job's row, a cell per :data:`COLUMNS`.

    Parameters
    ----------
    row:
        A job summary (wire names).
    cost:
        Its cost so far now (:meth:`jobwatch.view.fleet.FleetState.cost`).
    now:
        Seconds since the epoch, for "updated 4s ago".
    """
    name = str(row.get("name") or row.get("id", ""))
    if row.get("name") and row.get("name") != row.get("id"):
        name = f"{name} ({row.get('id')})"
    status = str(row.get("status") or DASH)
    if row.get("stalled"):
        status += " STALLED"
    alerts = row.get("alerts")
    if isinstance(alerts, int) and alerts > 0:
        status += f" !{alerts}"
    workers = row.get("workers")
    if isinstance(row.get("worldSize"), int) and isinstance(workers, int):
        status += f" {workers}w/{row.get('nodes')}n"  # a distributed job: workers/nodes
    progress = row.get("progress")
    percent = float(progress) if isinstance(progress, int | float) else 0.0
    updated = parse_ts(row.get("updatedAt"))
    currency = clean(str(row.get("currency") or ""), single_line=True)
    return (
        clean(name, single_line=True),
        status,
        f"{format_bar(percent, 10)} {format_percent(percent, 5)}",
        format_duration(row.get("timeRemaining")),
        format_cost(cost, currency),
        projection_text(row.get("estimatedTotalCost"), row.get("budget"), currency),
        format_metric(row.get("gpuUtilization"), "%"),
        format_metric(row.get("gpuTemperature"), "°C"),
        DASH if updated is None else f"{format_duration(now - updated)} ago",
    )


def row_budget_state(row: Mapping[str, Any], cost: float | None) -> str | None:
    """The budget state (:func:`~jobwatch.view.budget.budget_state`) of a fleet row whose
    cost so far is now ``cost``."""
    return budget_state(row.get("budget"), cost, row.get("estimatedTotalCost"))


def format_totals(totals: Totals, connection: str | None = None) -> str:
    """``"42 jobs: 12 running (2 stalled), 30 other | running 3.20 QUBIC | today 45.1 QUBIC"``."""
    jobs = sum(totals.counts.values())
    running = totals.counts.get("running", 0)
    stalled = f" ({totals.stalled} stalled)" if totals.stalled else ""
    parts = [
        f"{jobs} jobs: {running} running{stalled}, {totals.counts.get('pending', 0)} pending",
        f"running {_money(totals.running)}",
        f"today {_money(totals.today)}",
    ]
    if connection is not None:
        parts.append(connection)
    return " | ".join(parts)


def _money(amounts: Mapping[str, float]) -> str:
    if not amounts:
        return DASH
    return ", ".join(format_cost(value, currency) for currency, value in sorted(amounts.items()))


def render_table(
    state: FleetState,
    *,
    sort: str = "status",
    descending: bool = False,
    status: str | None = None,
    name: str = "",
    limit: int = 50,
    now: float | None = None,
) -> str:
    """The fleet as plain text: the totals line, a header and at most ``limit`` rows.

    Parameters are those of :meth:`jobwatch.view.fleet.FleetState.view`, and
    ``now`` (seconds since the epoch; default the current time).
    """
    now = time.time() if now is None else now
    rows = state.view(sort, descending, status, name)
    table = [tuple(header for _key, header in COLUMNS)]
    table += [cells(row, state.cost(row["id"]), now) for row in rows[:limit]]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = [format_totals(state.totals())]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    return "\n".join(lines)
