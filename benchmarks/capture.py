"""What console capture (``Reporter(capture_output=True)``) costs a printed line,
with the goal of at most 2 us (``python -m benchmarks --only capture``).

The figure is ``print()`` of a short line while capture is on, less ``print()``
of the same line without capture, in the same run: the CPU time of the
printing thread (``time.thread_time()``), so that neither the reporter's own
thread nor other processes on a shared machine count in it (their share is the
last row). Both print into the same sink (``os.devnull`` opened as a text
file, so that what is measured is the capture and not a terminal); without
capture the sink itself, with capture the tee the Reporter put in front of it.
Rounds without and with capture alternate; each round prints :data:`LINES`
lines and the figure is the best round of each (:mod:`timeit`'s rule: the
least disturbed). The lines captured in a round are sent before the next one,
so that no round is timed against a full buffer. The Reporter reports to
``jobwatch serve`` in another process.

Also shown: a ``\\r`` progress frame (what tqdm writes: no newline, the kept
line collapses to the newest frame), and the CPU the whole process spends on a
captured line including the reporter's thread composing and sending it (the
rounds' CPU time up to the flush that delivers them), next to the same line
given to ``Reporter.log()``: the part after the line is queued is what any log
line costs, captured or not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from benchmarks.report import Row
from jobwatch import Reporter
from jobwatch.server.deploy.process import ServerProcess, serve_command

GROUP = "capture"
LINE = "step 1000 loss 0.1234 acc 0.987"
"""A short line, as a training loop prints it."""
LINES = 2000
"""Lines printed in one timed round (below the reporter's 10,000-line buffer)."""


def _print_lines(stream: TextIO, lines: int) -> float:
    """CPU seconds of this thread per ``print(LINE, file=stream)``, over ``lines`` calls."""
    start = time.thread_time()
    for _ in range(lines):
        print(LINE, file=stream)
    return (time.thread_time() - start) / lines


def _frames(stream: TextIO, frames: int) -> float:
    """CPU seconds of this thread per ``\\r`` progress frame written to ``stream``
    (a line ended every 100)."""
    start = time.thread_time()
    for i in range(frames):
        stream.write(f"\r{i % 100:3d}%|####      | {i}/{frames}")
        if i % 100 == 99:
            stream.write("\n")
    return (time.thread_time() - start) / frames


def _best(
    bare: Callable[[], float], captured: Callable[[], float], reporter: Reporter, rounds: int
) -> tuple[float, float]:
    """Best seconds per call of ``bare`` and of ``captured`` over alternating rounds."""
    best_bare = best_captured = float("inf")
    for round_ in range(rounds):
        pair = [(0, bare), (1, captured)]
        for which, timed in pair if round_ % 2 == 0 else pair[::-1]:
            seconds = timed()
            if which:
                best_captured = min(best_captured, seconds)
                reporter.flush(timeout=60)
            else:
                best_bare = min(best_bare, seconds)
    return best_bare, best_captured


def _cpu_per_line(emit: Callable[[], None], reporter: Reporter, lines: int) -> float:
    """Process CPU seconds per line: ``emit()`` ``lines`` times, then the flush
    that delivers them (the reporter thread's composing and sending included);
    the best of 3."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(lines):
            emit()
        reporter.flush(timeout=60)
        best = min(best, (time.process_time() - start) / lines)
    return best


def run(quick: bool) -> list[Row]:
    """Rows: ``print()`` without capture (baseline), with it (the added cost per
    line), a ``\\r`` frame with and without, and the CPU per line in all."""
    rounds = 3 if quick else 10
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below, after the tees are gone
    saved = sys.stdout, sys.stderr
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            ServerProcess(serve_command(Path(tmp) / "capture.db")) as server,
        ):
            sys.stdout = sys.stderr = sink
            reporter = Reporter("bench-capture", url=server.url, gpu=False, capture_output=True)
            tee = sys.stdout
            try:
                _print_lines(tee, 200)  # the job is created, the first lines sent
                reporter.flush(timeout=60)
                bare, captured = _best(
                    lambda: _print_lines(sink, LINES),
                    lambda: _print_lines(tee, LINES),
                    reporter,
                    rounds,
                )
                frame_bare, frame_captured = _best(
                    lambda: _frames(sink, LINES), lambda: _frames(tee, LINES), reporter, rounds
                )
                cpu_bare = _cpu_per_line(lambda: print(LINE, file=sink), reporter, LINES)
                cpu_captured = _cpu_per_line(lambda: print(LINE, file=tee), reporter, LINES)
                cpu_logged = _cpu_per_line(
                    lambda: (print(LINE, file=sink), reporter.log(LINE)), reporter, LINES
                )
            finally:
                reporter.close(timeout=30)
    finally:
        sys.stdout, sys.stderr = saved
        sink.close()
    added = captured - bare
    return [
        Row(
            GROUP, "print() of a short line, no capture (baseline)", f"{bare * 1e6:.2f} us", 1.0, ""
        ),
        Row(
            GROUP,
            "the same print() with capture_output=True",
            f"{captured * 1e6:.2f} us: +{added * 1e6:.2f} us per line",
            captured / bare,
            "<= 2 us per line added",
            f"best of {rounds} rounds of {LINES:,} lines each",
        ),
        Row(
            GROUP,
            "a \\r progress frame (tqdm-like), with capture",
            f"{frame_captured * 1e6:.2f} us: +{(frame_captured - frame_bare) * 1e6:.2f} us per frame",
            frame_captured / frame_bare,
            "",
            f"without capture {frame_bare * 1e6:.2f} us",
        ),
        Row(
            GROUP,
            "process CPU per captured line, sending included (ratio: x the same line via log())",
            f"{(cpu_captured - cpu_bare) * 1e6:.1f} us (log(): {(cpu_logged - cpu_bare) * 1e6:.1f} us)",
            (cpu_captured - cpu_bare) / max(cpu_logged - cpu_bare, 1e-9),
            "",
            "time.process_time() up to the flush that delivers the lines, less print() alone",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.report import markdown

    print(markdown(run("--quick" in sys.argv)))
