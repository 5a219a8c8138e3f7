"""The benchmark table: one row per figure, with its ratio to the baseline of its group."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured figure: ``ratio`` is against the group's baseline in the same run."""

    group: str
    what: str
    figure: str
    ratio: float | None
    goal: str
    note: str = ""


def machine() -> str:
    """A line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def markdown(rows: list[Row]) -> str:
    """The table as Markdown."""
    lines = [
        "| group | what | figure | ratio | goal | tool |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"| {row.group} | {row.what} | {row.figure} | {ratio} | {row.goal} | {row.note} |"
        )
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
