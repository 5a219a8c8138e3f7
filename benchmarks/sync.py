"""What the notebook monitor sends over the comm for one change, whatever it holds.

Counted at the comm (as in :mod:`benchmarks.memory`): the JSON of each
message's content plus its binary buffers.

- One new 12-byte log line with 1,000 lines of 16 KiB held. Baseline: the
  list synced whole on every change (what a LogView not yet
  shown still does); shipped: one "lines" message with the new line.
- One chart redraw (the five GPU lines) with 2,000 samples held, for 1 and 8
  GPUs. Baseline: every sample as float64; shipped: the point
  budget (min/max kept) as float32.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.memory import MessageCounter, _counting_comm_factory
from benchmarks.report import Row

HELD_LINES = 1_000
LINE_BYTES = 16 * 1024
SAMPLES = 2_000


def _line(i: int, message: str) -> dict[str, Any]:
    return {"id": i, "level": "info", "timestamp": "2026-11-29T10:31:00.000Z", "message": message}


def _bytes_per_new_line(counter: MessageCounter, shown: bool) -> int:
    from jobwatch.notebook.logview import LogView

    view = LogView()
    if shown:
        view.shown()
    view.append(_line(i, "x" * LINE_BYTES) for i in range(HELD_LINES))
    counter.take()
    view.append([_line(HELD_LINES, "twelve bytes")])
    size, _ = counter.take()
    view.close()
    return size


def _state(gpus: int) -> Any:
    from jobwatch.contract.requests import format_ts
    from jobwatch.view.state import MonitorState

    now = time.time()
    state = MonitorState()
    state.replace_samples(
        {
            "timestamp": format_ts(now - 2 * (SAMPLES - i)),
            "gpus": [
                {"index": g, "gpuUtilization": float((i * 7 + g) % 101), "gpuMemoryUsed": 1e4,
                 "gpuMemoryTotal": 8e4, "gpuTemperature": 60.0 + i % 9, "powerUsage": 300.0}
                for g in range(gpus)
            ],
        }
        for i in range(SAMPLES)
    )  # fmt: skip
    return state


def _old_set(mark: Any, series: Any, scale: float = 1.0) -> None:
    """The redraw before the point budget: every sample, float64."""
    import numpy as np

    labels = list(series.lines)
    y = np.asarray([series.lines[label] for label in labels], dtype=float) * scale
    with mark.hold_sync():
        mark.x = (np.asarray(series.x, dtype=float) * 1000).astype("datetime64[ms]")
        mark.y = y[0] if len(labels) == 1 else y
        mark.labels = labels


def _bytes_per_redraw(counter: MessageCounter, gpus: int, budget: bool) -> int:
    from jobwatch.notebook.charts.gpu import Charts

    charts = Charts()
    state = _state(gpus)
    counter.take()
    if budget:
        charts.update(state, None)
    else:
        for mark, metric, scale in (
            (charts.utilization, "gpuUtilization", 1.0),
            (charts.temperature, "gpuTemperature", 1.0),
            (charts.memory_used, "gpuMemoryUsed", 1 / 1024),
            (charts.memory_total, "gpuMemoryTotal", 1 / 1024),
            (charts.power, "powerUsage", 1.0),
        ):
            _old_set(mark, state.series(metric, None), scale)
    size, _ = counter.take()
    charts.close()
    return size


def run(quick: bool) -> list[Row]:
    """Rows: bytes per new log line, bytes per chart redraw (1 and 8 GPUs), each against
    the way it was synced before."""
    import comm

    counter = MessageCounter()
    saved = comm.create_comm
    comm.create_comm = _counting_comm_factory(counter)
    try:
        line_old = _bytes_per_new_line(counter, shown=False)
        line_new = _bytes_per_new_line(counter, shown=True)
        redraws = {
            gpus: (_bytes_per_redraw(counter, gpus, False), _bytes_per_redraw(counter, gpus, True))
            for gpus in (1, 8)
        }
    finally:
        comm.create_comm = saved
    held = f"{HELD_LINES:,} lines of {LINE_BYTES // 1024} KiB held"
    rows = [
        Row("sync", f"one new 12-byte log line, {held}: the list synced whole (before, baseline)",
            f"{line_old / 1e6:,.1f} MB", 1.0, ""),
        Row("sync", f"one new 12-byte log line, {held}: a 'lines' message (shipped)",
            f"{line_new:,} bytes", line_new / line_old, "< 4 KB"),
    ]  # fmt: skip
    for gpus, (old, new) in redraws.items():
        what = f"one chart redraw, {gpus} GPU{'s' if gpus > 1 else ''}, {SAMPLES:,} samples held"
        rows += [
            Row("sync", f"{what}: every sample, float64 (before, baseline)",
                f"{old / 1024:,.0f} KB", 1.0, ""),
            Row("sync", f"{what}: point budget, min/max kept, float32 (shipped)",
                f"{new / 1024:,.1f} KB", new / old, "< 64 KB" if gpus == 8 else ""),
        ]  # fmt: skip
    return rows
