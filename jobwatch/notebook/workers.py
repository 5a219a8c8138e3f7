"""The workers panel of a job monitor: every node's GPUs and a table of the ranks.

Shown only for a distributed job (one with a ``worldSize``): a job of one worker
keeps the monitor as it was. The browser side is ``static/workers.js`` (the job
page draws with the same file); this side writes its three traits from a
:class:`~jobwatch.view.state.MonitorState`: the ranks as the last ``GET /workers``
listed them (read by the monitor's follower every few seconds, and at once after a
worker alert), and each GPU's newest utilization grouped by node
(:class:`~jobwatch.view.gpu_heat.GpuHeat`), at most every :data:`HEAT_INTERVAL`
seconds. A trait changes only when its value does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from jobwatch.view.gpu_heat import GpuHeat, HeatNode
from jobwatch.view.state import MonitorState
from jobwatch.view.workers import worker_cells

__all__ = ["HEAT_INTERVAL", "WorkersView"]

HEAT_INTERVAL = 1.0
"""Seconds between two redraws of the heat strip for new samples, as the GPU charts'."""

_STATIC = Path(__file__).parent / "static"


class WorkersView(anywidget.AnyWidget):
    """A distributed job's GPU heat strip and ranks table (hidden for other jobs).

    Change it through :meth:`show`, from the monitor's render.
    """

    _esm = _STATIC / "workers.js"
    _css = _STATIC / "workers.css"

    world_size = traitlets.Int(
        None,
        allow_none=True,
        help="The job's ranks (count); None for a job of one worker: nothing is shown.",
    ).tag(sync=True)
    # Not validated element by element: 512 ranks of 8 texts each are 4,096 checks a
    # read of /workers; show() writes them from worker_cells, texts only.
    rows: traitlets.List[Any] = traitlets.List(
        help="One list of texts per rank, by rank: node, rank, status, last seen, "
        "progress, step rate, straggler, current operation (jobwatch.view.workers).",
    ).tag(sync=True)
    heat: traitlets.List[Any] = traitlets.List(
        help="One [node, [label, ...], [utilization in % or None, ...]] per node, nodes "
        "and GPUs in order: each GPU's newest utilization (jobwatch.view.gpu_heat).",
    ).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._heat = GpuHeat()
        self.heat_nodes: tuple[HeatNode, ...] = ()
        """The GPUs by node as last drawn (read by the monitor's snapshot)."""
        self._workers_shown = -1
        self._samples_shown = -1
        self._heat_at = -float("inf")

    def show(self, state: MonitorState, *, clock: float | None = None) -> None:
        """Show ``state``'s workers and GPUs; ``clock`` (monotonic seconds) paces the heat
        strip (default: now)."""
        world_size = state.job.get("worldSize")
        self.world_size = world_size if isinstance(world_size, int) else None
        if state.workers_version != self._workers_shown:
            self._workers_shown = state.workers_version
            now = state.clock()
            self.rows = [worker_cells(worker, now) for worker in state.workers]
        moment = time.monotonic() if clock is None else clock
        due = moment - self._heat_at >= HEAT_INTERVAL or state.finished
        if state.samples_version != self._samples_shown and due:
            self._samples_shown, self._heat_at = state.samples_version, moment
            self.heat_nodes = tuple(self._heat.nodes(state))
            heat = [
                [
                    node.node,
                    [cell.label for cell in node.gpus],
                    [cell.utilization for cell in node.gpus],
                ]
                for node in self.heat_nodes
            ]
            if heat != self.heat:
                self.heat = heat
