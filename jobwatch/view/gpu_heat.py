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

import functools
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


@functools.lru_cache(maxsize=4096)
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
        self._readings: dict[str, dict[str, tuple[float, HeatCell]]] = {}
        """node -> GPU key -> (time, cell) of its newest reading."""
        self._order: list[str] | None = None  # the nodes in node_order, while no node comes or goes
        self._last: Sample | None = None
        self._epoch = -1
        self._newest = -float("inf")

    def nodes(self, state: MonitorState) -> list[HeatNode]:
        """Each node's GPUs with their newest utilization; nodes in :func:`node_order`."""
        self._follow(state)
        since = self._newest - self.window
        out = []
        for node in self._nodes_in_order():
            readings = self._readings[node]
            stale = [key for key, (ts, _cell) in readings.items() if ts < since]
            for key in stale:  # a GPU gone (a node left): forgotten, not kept for ever
                del readings[key]
            if not readings:
                del self._readings[node]
                self._order = None
                continue
            cells = sorted((cell for _ts, cell in readings.values()), key=_cell_order)
            out.append(HeatNode(node, tuple(cells)))
        return out

    def _nodes_in_order(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._readings, key=node_order)
        return list(self._order)

    def _follow(self, state: MonitorState) -> None:
        """Read the samples that arrived since the last call (all of them after the
        state's samples were replaced or given their history)."""
        samples = state.samples
        if state.samples_epoch != self._epoch:
            self._epoch, self._last, self._newest = state.samples_epoch, None, -float("inf")
            self._readings.clear()
            self._order = None
        fresh: list[Sample] = []
        for sample in reversed(samples):
            if sample is self._last:
                break
            fresh.append(sample)
        else:
            if self._last is not None:  # it left the deque unseen: start over
                self._readings.clear()
                self._order = None
                self._newest = -float("inf")
        for sample in reversed(fresh):
            self._read(sample)
        if samples:
            self._last = samples[-1]

    def _read(self, sample: Sample) -> None:
        self._newest = max(self._newest, sample.ts)
        for key, values in sample.gpus.items():
            gpu = sample.ids[key]
            node = sample.nodes.get(key, "")
            readings = self._readings.get(node)
            if readings is None:
                readings = self._readings[node] = {}
                self._order = None
            label = f"GPU {gpu.number}" + (f" ({gpu.name})" if gpu.name else "")
            cell = HeatCell(key, gpu.number, label, values.get("gpuUtilization"))
            readings[key] = (sample.ts, cell)


def _cell_order(cell: HeatCell) -> tuple[int, str]:
    return cell.number, cell.key
