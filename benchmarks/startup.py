"""Start-up: ``import jobwatch`` and ``from jobwatch import Reporter`` in a fresh
interpreter, against the interpreter's own start (``python -c pass``) and, where
it is installed, ``import tqdm`` measured in the same run."""

from __future__ import annotations

import importlib.util
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.report import Row

_STATEMENTS = {
    "pass": "pass",
    "tqdm": "import tqdm",
    "jobwatch": "import jobwatch",
    "reporter": "from jobwatch import Reporter",
}


def _cost_ms(statement: str) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) milliseconds of one fresh ``python -c statement``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall * 1000, cpu * 1000


def _medians(names: list[str], rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU time per statement, interleaved so that load on a
    shared machine falls on all of them alike. (On a loaded machine the CPU
    time is the steadier figure: the wall clock also counts waiting for a core.)"""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            runs[name].append(_cost_ms(_STATEMENTS[name]))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in runs.items()
    }


def run(quick: bool) -> list[Row]:
    """Rows: the interpreter's start (baseline), tqdm's import where installed, and
    ``import jobwatch`` / ``from jobwatch import Reporter``, each as milliseconds
    (wall and CPU) beyond the bare start."""
    names = ["pass", "jobwatch", "reporter"]
    has_tqdm = importlib.util.find_spec("tqdm") is not None
    if has_tqdm:
        names.insert(1, "tqdm")
    medians = _medians(names, 5 if quick else 30)
    bare_wall, bare_cpu = medians["pass"]

    def beyond(name: str) -> str:
        wall, cpu = medians[name]
        return f"{wall - bare_wall:.1f} ms wall, {cpu - bare_cpu:.1f} ms CPU"

    rows = [
        Row(
            "startup",
            "python -c pass (baseline)",
            f"{bare_wall:.1f} ms wall, {bare_cpu:.1f} ms CPU",
            1.0,
            "",
        ),
    ]
    if has_tqdm:
        rows.append(Row("startup", "import tqdm, beyond the bare start", beyond("tqdm"), None, ""))
    for name, what in (
        ("jobwatch", "import jobwatch"),
        ("reporter", "from jobwatch import Reporter"),
    ):
        rows.append(
            Row(
                "startup",
                f"{what}, beyond the bare start (ratio: whole start / bare start, wall)",
                beyond(name),
                medians[name][0] / bare_wall,
                "<= 50 ms",
            )
        )
    return rows
