"""Start-up: ``import jobwatch`` and ``from jobwatch import Reporter`` in a fresh
interpreter, against the interpreter's own start (``python -c pass``) and, where
it is installed, ``import tqdm`` measured in the same run."""

from __future__ import annotations

import importlib.util
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


def _wall_ms(statement: str) -> float:
    """Wall-clock milliseconds of one fresh ``python -c statement``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return (time.perf_counter() - start) * 1000


def _medians(names: list[str], rounds: int) -> dict[str, float]:
    """Median start-to-exit time per statement, interleaved so that load on a
    shared machine falls on all of them alike."""
    runs: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            runs[name].append(_wall_ms(_STATEMENTS[name]))
    return {name: statistics.median(values) for name, values in runs.items()}


def run(quick: bool) -> list[Row]:
    """Rows: the interpreter's start (baseline), tqdm's import where installed, and
    ``import jobwatch`` / ``from jobwatch import Reporter``, each as milliseconds
    beyond the bare start."""
    names = ["pass", "jobwatch", "reporter"]
    has_tqdm = importlib.util.find_spec("tqdm") is not None
    if has_tqdm:
        names.insert(1, "tqdm")
    medians = _medians(names, 5 if quick else 30)
    bare = medians["pass"]
    rows = [
        Row("startup", "python -c pass (baseline)", f"{bare:.1f} ms", 1.0, ""),
    ]
    if has_tqdm:
        tqdm_ms = medians["tqdm"] - bare
        rows.append(
            Row("startup", "import tqdm, beyond the bare start", f"{tqdm_ms:.1f} ms", None, "")
        )
    for name, what in (
        ("jobwatch", "import jobwatch"),
        ("reporter", "from jobwatch import Reporter"),
    ):
        cost = medians[name] - bare
        rows.append(
            Row(
                "startup",
                f"{what}, beyond the bare start (ratio: whole start / bare start)",
                f"{cost:.1f} ms",
                medians[name] / bare,
                "<= 50 ms",
            )
        )
    return rows
