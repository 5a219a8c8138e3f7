"""What one subscriber sees of a job's events: a view it asked for, without I/O.

A distributed job's stream carries every rank's updates: with 512 ranks
reporting once a second with 5 log lines each, about a thousand events and
2,500 log lines a second, while a viewer shows rank 0's figures, each node's
GPUs and one rank's lines. ``subscribe:job`` may ask for less (docs/api.md
"Streaming"):

- ``logs: {rank?, node?}``: a ``JOB_LOGS`` event keeps only the lines of that
  rank and/or node, and one left without a line is not sent;
- ``progress: "changes"``: a ``JOB_PROGRESS`` event is sent when it carries a GPU
  sample or training metrics, when its status, progress or operation differs from
  the last one sent, or :data:`PROGRESS_HEARTBEAT` seconds after the last one sent
  (so time remaining and cost stay fresh); the other ranks' updates repeat rank 0's
  figures and are left out. A node's sample (a distributed job's GPUs name their
  node) counts as news at most every ``max(1, nodes / SAMPLES_PER_SECOND)`` seconds:
  a viewer of 64 nodes sampling once a second gets each node's GPUs every 4 s, 16
  samples a second (a kernel spends about 0.2 ms on each event it reads).

Every other event goes as it is. An event left out still counts as sent in the
stream's order (:class:`~jobwatch.server.core.ws_session.JobStream`): a
subscriber sees gaps in ``seq``, which the contract allows, and resumes with
``since`` as always. The view only reads the JSON of an event it may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["PROGRESS_HEARTBEAT", "SAMPLES_PER_SECOND", "EventView"]

PROGRESS_HEARTBEAT = 1.0
"""Seconds after which a ``JOB_PROGRESS`` event goes under ``progress: "changes"`` even
when it changes nothing shown: the reporting interval of a Reporter, so estimates move
as often as with one worker."""

SAMPLES_PER_SECOND = 16
"""Most node samples a second a ``progress: "changes"`` view passes on as news (see the
module); 16 nodes or fewer send every sample."""

_LOGS = b'"type":"JOB_LOGS"'
_PROGRESS = b'"type":"JOB_PROGRESS"'


@dataclass
class EventView:
    """One subscription's view of its job's events.

    Parameters
    ----------
    rank, node:
        Keep only the log lines of this rank and/or node (``None``: any).
    changes_only:
        Leave out the ``JOB_PROGRESS`` events that change nothing shown (see the module).
    """

    rank: int | None = None
    node: str | None = None
    changes_only: bool = False
    _shown: tuple[Any, ...] | None = field(default=None, repr=False)
    _shown_at: float = field(default=-float("inf"), repr=False)
    _node_shown_at: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def filters_logs(self) -> bool:
        """Whether some log lines are left out."""
        return self.rank is not None or self.node is not None

    @property
    def everything(self) -> bool:
        """Whether every event goes as it is (the contract's stream)."""
        return not self.filters_logs and not self.changes_only

    def apply(self, message: bytes, now: float) -> bytes | None:
        """The message to send for the event ``message`` (as published), or ``None``
        to leave it out; ``now`` in monotonic seconds."""
        if self.everything:
            return message
        head = message[:40]
        if _LOGS in head and self.filters_logs:
            return self._logs(message)
        if _PROGRESS in head and self.changes_only:
            return self._progress(message, now)
        return message

    def _logs(self, message: bytes) -> bytes | None:
        event = orjson.loads(message)
        lines = event["data"]["logs"]
        kept = [line for line in lines if self._matches(line)]
        if not kept:
            return None
        if len(kept) == len(lines):
            return message
        event["data"]["logs"] = kept
        return orjson.dumps(event)

    def _matches(self, line: dict[str, Any]) -> bool:
        return (self.rank is None or line.get("rank") == self.rank) and (
            self.node is None or line.get("node") == self.node
        )

    def _progress(self, message: bytes, now: float) -> bytes | None:
        data = orjson.loads(message)["data"]
        shown = (data.get("status"), data.get("progress"), data.get("currentOperation"))
        metrics = data.get("metrics")
        node = self._node_of(metrics)
        sample = bool(metrics) and (node is None or self._node_due(node, now))
        news = sample or bool(data.get("scalars")) or shown != self._shown
        if not news and now - self._shown_at < PROGRESS_HEARTBEAT:
            return None
        self._shown, self._shown_at = shown, now
        if metrics and node is not None:
            self._node_shown_at[node] = now
        return message

    @staticmethod
    def _node_of(metrics: Any) -> str | None:
        """The node a sample's GPUs name (a distributed job's), or ``None``."""
        gpus = (metrics or {}).get("gpus") if isinstance(metrics, dict) else None
        node = gpus[0].get("node") if isinstance(gpus, list) and gpus else None
        return node if isinstance(node, str) else None

    def _node_due(self, node: str, now: float) -> bool:
        """Whether ``node``'s sample is news: its last one sent is old enough."""
        nodes = len(self._node_shown_at) + (node not in self._node_shown_at)
        every = max(1.0, nodes / SAMPLES_PER_SECOND)
        return now - self._node_shown_at.get(node, -float("inf")) >= every
