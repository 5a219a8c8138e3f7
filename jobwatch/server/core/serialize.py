"""Stored rows to wire objects, and strict JSON out.

Every JSON document the server emits goes through :func:`dumps`: orjson,
which writes non-finite floats as ``null``, so no ``NaN`` or ``Infinity`` can
reach a client's ``JSON.parse``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from jobwatch.contract.gpu_metrics import GPU_METRICS
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


def job_to_wire(job: Mapping[str, Any]) -> dict[str, Any]:
    """A stored job row as the contract's job object (camelCase, ISO timestamps)."""
    return {
        "id": job["id"],
        "name": job["name"],
        "status": job["status"],
        "progress": job["progress"],
        "currentOperation": job["current_operation"],
        "workerId": job["worker_id"],
        "pricePerHour": job["price_per_hour"] if job["node_rate"] is None else job["node_rate"],
        "currency": job["currency"],
        "providerId": job["provider_id"],
        "createdAt": format_ts(job["created_at"]),
        "startedAt": format_ts(job["started_at"]),
        "updatedAt": format_ts(job["updated_at"]),
        "completedAt": format_ts(job["completed_at"]),
        "result": job["result"],
        "error": job["error"],
        "seq": job["seq"],
        "stalled": bool(job["stalled"]),
        "alerts": job["n_alerts"],
        "worldSize": job["world_size"],
        "workers": job["n_workers"]
        if job["world_size"] is not None
        else int(bool(job["worker_id"])),
        "nodes": job["n_nodes"] if job["world_size"] is not None else int(bool(job["worker_id"])),
    }


def sample_to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored sample as ``{timestamp, gpuUtilization, ..., powerUsage}`` (+ ``gpus`` if any)."""
    out = {"timestamp": format_ts(row["ts"]), **{m.wire: row[m.column] for m in GPU_METRICS}}
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


def scalar_to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored training-metric value as ``{step, timestamp, value}``."""
    return {"step": row["step"], "timestamp": format_ts(row["ts"]), "value": row["value"]}
