"""The cost of one system sample (:class:`jobwatch.report.system.SystemSampler`).

The reporter's thread takes one sample per request (every interval, 1 s by
default): CPU, the machine's memory, the process tree's memory, the working
directory's disk and the disk and network counters, all through psutil. Goal:
at most 1 ms per sample. The baseline, measured in the same run, is one
``psutil.virtual_memory()`` (one read of ``/proc/meminfo``), the floor of any
psutil reading; a sample is about ten such reads. Listing the process's
children reads every process of the machine, so it is done every
:data:`~jobwatch.report.system.TREE_REFRESH` seconds, not every sample: its
cost is shown alone and spread over the samples between two listings.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

from benchmarks.report import Row
from jobwatch.report import system

GROUP = "system"
CHILDREN = 4
"""Child processes in the second measurement (DataLoader workers, say)."""


def _median_us(call: Callable[[], object], n: int) -> float:
    call()
    costs = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        costs.append(time.perf_counter() - start)
    return statistics.median(costs) * 1e6


def _with_children(n: int) -> tuple[float, float]:
    """(steady sample, tree listing) in µs with ``CHILDREN`` sleeping children."""
    children = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        for _ in range(CHILDREN)
    ]
    try:
        sampler = system.SystemSampler()  # lists the children now
        steady = _median_us(sampler, n)
        root = psutil.Process()
        listing = _median_us(lambda: root.children(recursive=True), max(5, n // 20))
        return steady, listing
    finally:
        for child in children:
            child.kill()
            child.wait()


def run(quick: bool) -> list[Row]:
    """Median costs in µs; the ratios are to one ``psutil.virtual_memory()``."""
    n = 200 if quick else 2000
    baseline = _median_us(psutil.virtual_memory, n)
    sampler = system.SystemSampler()
    steady = _median_us(sampler, n)
    with_children, listing = _with_children(n)
    processes = len(psutil.pids())
    spread = with_children + listing / system.TREE_REFRESH  # one sample a second
    return [
        Row(
            GROUP,
            "baseline: psutil.virtual_memory() (one /proc read)",
            f"{baseline:.0f} µs",
            1.0,
            "",
        ),
        Row(
            GROUP,
            "one system sample, the process alone",
            f"{steady:.0f} µs",
            steady / baseline,
            "<= 1 ms",
            "median",
        ),
        Row(
            GROUP,
            f"one system sample, the process and {CHILDREN} children",
            f"{with_children:.0f} µs",
            with_children / baseline,
            "<= 1 ms",
            "median",
        ),
        Row(
            GROUP,
            f"listing the process's children ({processes} processes on the machine)",
            f"{listing / 1000:.1f} ms",
            listing / baseline,
            f"once per {system.TREE_REFRESH:.0f} s",
            "median",
        ),
        Row(
            GROUP,
            "per sample at 1 s intervals, listing spread over its samples",
            f"{spread:.0f} µs",
            spread / baseline,
            "<= 1 ms",
            f"{CHILDREN} children",
        ),
    ]
