"""Every GPU of a job at a glance: each GPU's newest utilization, grouped by node.

A distributed job's node sends its own GPUs (its local rank 0 samples them), so
one sample holds one node's GPUs, and the samples of the nodes interleave. The
heat strip of the notebook monitor and its snapshot shows, for each GPU, its
newest utilization among the samples of the last :data:`GPU_WINDOW` seconds
before the newest sample, its node's GPUs side by side and the nodes in order:
one small cell per GPU stays readable from 1 GPU to 64 nodes of 8 GPUs. These
are the rules of the job page's ``gpusByNode`` (``server/web/static/workers.js``).

:class:`GpuHeat` follows a :class:`~jobwatch.view.state.MonitorState`'s samples as
they arrive (each sample read once), so a redraw costs the GPUs, not the history.
No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobwatch.view.state import MonitorState, Sample

__all__ = ["GPU_WINDOW", "GpuHeat", "HeatCell", "HeatNode", "node_order"]

GPU_WINDOW = 30.0
"""Seconds before the newest sample in which each GPU's newest value is looked for
(several sampling rounds of every node); as ``GPU_WINDOW`` of the job page."""

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class HeatCell:
    """One GPU: ``label`` (``"GPU 3 (H100)"``) and its newest ``utilization`` (%, ``None``
    when not reported)."""

    key: str
    number: int
    label: str
    utilization: float | None


@dataclass(frozen=True)
class HeatNode:
    """One node's GPUs, by number (``node`` is ``""`` for a GPU that names none)."""

    node: str
    gpus: tuple[HeatCell, ...]


def node_order(node: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of node names with their numbers read as numbers (``n2`` before
    ``n10``), as the page's ``localeCompare(..., {numeric: true})``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in _DIGITS.split(node)
        if part
    )


class GpuHeat:
    """The heat strip's data of one monitor's state, kept up to date as samples arrive.

    Parameters
    ----------
    window:
        Seconds before the newest sample in which readings count (default :data:`GPU_WINDOW`).
    """

    def __init__(self, window: float = GPU_WINDOW) -> None:
        self.window = window
        self._readings: dict[tuple[str, str], tuple[float, HeatCell]] = {}
        self._last: Sample | None = None
        self._epoch = -1
        self._newest = -float("inf")

    def nodes(self, state: MonitorState) -> list[HeatNode]:
        """Each node's GPUs with their newest utilization; nodes in :func:`node_order`."""
        self._follow(state)
        since = self._newest - self.window
        grouped: dict[str, list[HeatCell]] = {}
        stale = []
        for place, (ts, cell) in self._readings.items():
            if ts >= since:
                grouped.setdefault(place[0], []).append(cell)
            else:
                stale.append(place)
        for place in stale:  # a GPU gone (a node left): forgotten, not kept for ever
            del self._readings[place]
        return [
            HeatNode(node, tuple(sorted(cells, key=lambda c: (c.number, c.key))))
            for node, cells in sorted(grouped.items(), key=lambda item: node_order(item[0]))
        ]

    def _follow(self, state: MonitorState) -> None:
        """Read the samples that arrived since the last call (all of them after the
        state's samples were replaced or given their history)."""
        samples = state.samples
        if state.samples_epoch != self._epoch:
            self._epoch, self._last, self._newest = state.samples_epoch, None, -float("inf")
            self._readings.clear()
        fresh: list[Sample] = []
        for sample in reversed(samples):
            if sample is self._last:
                break
            fresh.append(sample)
        else:
            if self._last is not None:  # it left the deque unseen: start over
                self._readings.clear()
                self._newest = -float("inf")
        for sample in reversed(fresh):
            self._read(sample)
        if samples:
            self._last = samples[-1]

    def _read(self, sample: Sample) -> None:
        self._newest = max(self._newest, sample.ts)
        for key, values in sample.gpus.items():
            gpu = sample.ids[key]
            label = f"GPU {gpu.number}" + (f" ({gpu.name})" if gpu.name else "")
            cell = HeatCell(key, gpu.number, label, values.get("gpuUtilization"))
            self._readings[(sample.nodes.get(key, ""), key)] = (sample.ts, cell)
