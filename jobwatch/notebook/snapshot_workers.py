"""A distributed job's workers in the monitor's static snapshot: no kernel, no script.

One line counts the ranks and nodes and names the silent ranks and the
stragglers; below it, every GPU as a small square in one inline SVG, a node's
GPUs side by side and the nodes wrapping, coloured by utilization (as the live
heat strip, ``static/workers.js``), each with its node, GPU and value as a
tooltip (``<title>``). 64 nodes of 8 GPUs are under 40 KB of HTML. Every job
string is escaped (markupsafe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from jobwatch.view.gpu_heat import HeatNode
from jobwatch.view.workers import workers_summary

__all__ = ["MOST_NAMED", "workers_html", "workers_text"]

MOST_NAMED = 8
"""Most silent ranks (and stragglers) named in the snapshot; the rest are counted."""
CELL, GAP, NODE_GAP, PER_ROW = 9, 2, 10, 8
"""A GPU's square and the gap between two (px); the gap between two nodes; nodes a row."""
COLD, HOT = (229, 231, 235), (21, 128, 61)
"""The colours of 0 % and 100 % utilization (sRGB): light grey to the page's green."""


def workers_text(world_size: int, workers: Sequence[Mapping[str, Any]]) -> str:
    """``"workers: 512 of 512 ranks on 64 nodes · 1 silent (rank 300 on n37)"``."""
    return "workers: " + workers_summary(world_size, workers) + _named(workers)


def workers_html(
    world_size: int, workers: Sequence[Mapping[str, Any]], heat: Sequence[HeatNode]
) -> Markup:
    """The summary line and the GPUs of every node as one SVG (none without GPU samples)."""
    line = Markup('<div class="jobwatch-snapshot-workers">{}</div>').format(
        workers_text(world_size, workers)
    )
    return line + _heat_svg(heat) if heat else line


def _named(workers: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for what, picked in (
        ("silent", [w for w in workers if w.get("status") == "silent"]),
        ("straggling", [w for w in workers if w.get("straggler")]),
    ):
        if picked:
            names = [f"rank {w.get('rank')} on {w.get('node')}" for w in picked[:MOST_NAMED]]
            more = f" and {len(picked) - MOST_NAMED} more" if len(picked) > MOST_NAMED else ""
            parts.append(f"{what}: {', '.join(names)}{more}")
    return f" ({'; '.join(parts)})" if parts else ""


def _colour(utilization: float | None) -> str:
    if utilization is None:
        return "none"
    share = max(0.0, min(100.0, utilization)) / 100
    rgb = (round(c + (h - c) * share) for c, h in zip(COLD, HOT, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _heat_svg(heat: Sequence[HeatNode]) -> Markup:
    widest = max(len(node.gpus) for node in heat)
    block = widest * (CELL + GAP) - GAP + NODE_GAP
    rows = (len(heat) + PER_ROW - 1) // PER_ROW
    width, height = min(len(heat), PER_ROW) * block, rows * (CELL + GAP * 2)
    # One f-string a GPU, its node and label escaped once each (markupsafe's format per
    # square cost 30 ms a snapshot of 512 GPUs).
    cells = []
    labels: dict[str, str] = {}
    for place, node in enumerate(heat):
        left, top = (place % PER_ROW) * block, (place // PER_ROW) * (CELL + GAP * 2)
        name = escape(node.node or "?")
        for i, gpu in enumerate(node.gpus):
            label = labels.get(gpu.label)
            if label is None:
                label = labels[gpu.label] = escape(gpu.label)
            value = "not reported" if gpu.utilization is None else f"{gpu.utilization:.0f} %"
            cells.append(
                f'<rect x="{left + i * (CELL + GAP)}" y="{top}" width="{CELL}" height="{CELL}" '
                f'fill="{_colour(gpu.utilization)}"><title>{name} {label}: {value}</title></rect>'
            )
    return Markup(
        '<svg class="jobwatch-snapshot-heat" role="img" width="{}" height="{}" '
        'viewBox="0 0 {} {}" aria-label="GPU utilization of {} nodes" '
        'style="display:block;max-width:100%;margin:2px 0">'
        '<g stroke="#9ca3af" stroke-width="0.5">{}</g></svg>'
    ).format(width, height, width, height, len(heat), Markup("".join(cells)))
