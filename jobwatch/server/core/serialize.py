"""Stored rows to wire objects, and strict JSON out.

Every JSON document the server emits goes through :func:`dumps`: orjson,
which writes non-finite floats as ``null``, so no ``NaN`` or ``Infinity`` can
reach a client's ``JSON.parse``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from jobwatch.contract.job_fields import WIRE_FIELDS
from jobwatch.contract.metrics import GPU_METRICS, SYSTEM_METRICS
from jobwatch.contract.requests import format_ts


def dumps(obj: Any) -> bytes:
    """Serialise ``obj`` as strict JSON (UTF-8 bytes; NaN and infinities become null)."""
    return orjson.dumps(obj)


@dataclass(frozen=True)
class Event:
    """One streamed event of a job: ``{type, jobId, seq, data}`` on the wire.

    ``type`` is ``JOB_PROGRESS``, ``JOB_LOGS`` or ``JOB_COMPLETED``; ``seq``
    grows by one per event within a job.
    """

    job_id: str
    seq: int
    type: str
    data: dict[str, Any]

    def message(self) -> bytes:
        """The event as the JSON text a subscriber receives."""
        return dumps({"type": self.type, "jobId": self.job_id, "seq": self.seq, "data": self.data})


def _compile_job_to_wire() -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """:func:`job_to_wire`, written from :data:`~jobwatch.contract.job_fields.WIRE_FIELDS`.

    Every answer and fleet message encodes jobs, so the function is generated
    as one dict display (``{"id": job["id"], ...}``), the code one would write
    by hand, rather than a loop over the table: the same bytecode, no lookups
    per field (as :mod:`dataclasses` writes ``__init__``).
    """
    read = {"value": "{}", "time": "format_ts({})", "flag": "bool({})"}
    items = ", ".join(
        f"{field.wire!r}: " + read[field.form].format(f"job[{field.column!r}]")
        for field in WIRE_FIELDS
    )
    namespace: dict[str, Any] = {"format_ts": format_ts}
    exec(f"def job_to_wire(job):\n    return {{{items}}}\n", namespace)
    encode: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace["job_to_wire"]
    encode.__module__ = __name__
    encode.__qualname__ = "job_to_wire"
    encode.__doc__ = (
        "A stored job row as the contract's job object (camelCase, ISO timestamps): "
        "the fields of ``WIRE_FIELDS`` in order."
    )
    return encode


job_to_wire = _compile_job_to_wire()
"""A stored job row (a :class:`~jobwatch.server.core.job_row.JobRow` or a listed one)
as the contract's job object: each field of
:data:`~jobwatch.contract.job_fields.WIRE_FIELDS` in order, times as ISO 8601 UTC
timestamps, flags as booleans. Raises ``KeyError`` for a row without one of the columns."""


_GPU_COLUMNS = tuple((m.wire, m.column) for m in GPU_METRICS)
_SYSTEM_COLUMNS = tuple((m.wire, m.column) for m in SYSTEM_METRICS)
_SYSTEM_WIRE = tuple(m.wire for m in SYSTEM_METRICS)


def sample_to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored sample as ``{timestamp, gpuUtilization, ..., powerUsage}``, the system
    metrics when it has any (:func:`~jobwatch.contract.metrics.wire_fields`), and
    ``gpus`` if any."""
    out: dict[str, Any] = {"timestamp": format_ts(row["ts"])}
    for wire, column in _GPU_COLUMNS:
        out[wire] = row[column]
    system = [row[column] for _, column in _SYSTEM_COLUMNS]
    if system.count(None) != len(system):  # wire_fields' rule, without its dicts (10,000 rows)
        out.update(zip(_SYSTEM_WIRE, system, strict=True))
    if row.get("gpus"):
        out["gpus"] = row["gpus"]
    return out


def log_to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored log line as ``{id, level, timestamp, message}``, with ``rank`` and
    ``node`` when a rank of a distributed job logged it."""
    out = {
        "id": row["id"],
        "level": row["level"],
        "timestamp": format_ts(row["ts"]),
        "message": row["message"],
    }
    if row.get("rank") is not None:
        out["rank"] = row["rank"]
        out["node"] = row["node"]
    return out


def scalar_to_wire(row: Mapping[str, Any], cost: float | None) -> dict[str, Any]:
    """A stored training-metric value as ``{step, timestamp, value, cost}``; ``cost`` is
    what the job had cost at its ``ts`` (currency; ``None`` without a price)."""
    return {
        "step": row["step"],
        "timestamp": format_ts(row["ts"]),
        "value": row["value"],
        "cost": None if cost is None else round(cost, 6),
    }
