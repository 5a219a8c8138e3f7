"""A distributed job's workers as the viewers show them: one row of texts per rank.

The notebook monitor's workers table and its snapshot show each rank's node, rank,
status, when it was last seen, its own progress and step rate, and whether it is a
straggler, with its current operation as the row's tooltip. The job page writes the
same texts with its own formatting module (``server/web/static/workers.js``), and both
draw them with ``notebook/static/workers.js``. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobwatch.contract.basics import parse_ts
from jobwatch.view.formatting import DASH, format_duration, format_number, format_percent

__all__ = ["WORKER_COLUMNS", "worker_cells", "workers_summary"]

WORKER_COLUMNS = (
    "node",
    "rank",
    "status",
    "last seen",
    "progress",
    "step rate",
    "straggler",
)
"""The table's columns; each row also carries the current operation after them."""
STATUSES = ("running", "silent", "left", "finished")
"""A worker's statuses (``GET /workers``); any other reads ``running``."""
MAX_OPERATION = 200
"""Most characters of a rank's current operation kept for its tooltip."""


def worker_cells(worker: Mapping[str, Any], now: float) -> list[str]:
    """The texts of one rank's row: :data:`WORKER_COLUMNS`, then its current operation.

    Parameters
    ----------
    worker:
        A worker of ``GET /workers`` (wire keys).
    now:
        Seconds since the epoch, for "last seen" (``"12s ago"``).

    Notes
    -----
    The step rate is the worker's smoothed progress rate (``rate``, % per second)
    shown per minute: ``"1.5 %/min"``.
    """
    seen = parse_ts(worker.get("lastUpdateAt"))
    rate = worker.get("rate")
    progress = worker.get("progress")
    status = worker.get("status")
    rank = worker.get("rank")
    return [
        str(worker.get("node") or ""),
        DASH if rank is None else str(rank),
        status if status in STATUSES else "running",
        DASH if seen is None else f"{format_duration(max(0.0, now - seen))} ago",
        format_percent(float(progress) if isinstance(progress, (int, float)) else 0.0),
        f"{format_number(rate * 60)} %/min" if isinstance(rate, (int, float)) else DASH,
        "straggler" if worker.get("straggler") else "",
        str(worker.get("currentOperation") or "")[:MAX_OPERATION],
    ]


def workers_summary(world_size: int, workers: Sequence[Mapping[str, Any]]) -> str:
    """``"512 of 512 ranks on 64 nodes · 1 silent · 2 stragglers"``."""
    nodes = len({worker.get("node") for worker in workers})
    silent = sum(1 for worker in workers if worker.get("status") == "silent")
    stragglers = sum(1 for worker in workers if worker.get("straggler"))
    text = f"{len(workers)} of {world_size} ranks on {nodes} node{'' if nodes == 1 else 's'}"
    if silent:
        text += f" · {silent} silent"
    if stragglers:
        text += f" · {stragglers} straggler{'' if stragglers == 1 else 's'}"
    return text
