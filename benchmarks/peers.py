"""jobwatch next to the trackers people use instead: trackio, W&B (offline) and
MLflow (local file store), on the same loop (``python -m benchmarks --only peers``).

For each tracker, set up as its documentation's first example does:

- **per-call cost**: one log call of two training metrics with a step
  (``Reporter.log_metrics``, ``trackio.log``, ``wandb.Run.log``,
  ``mlflow.log_metrics``): the best of 5 runs of calls, each run's average
  (so a call that sometimes writes a batch counts with its share). Between
  runs the tracker is left to catch up, untimed;
- **loop overhead**: a loop of steps of :data:`STEP_SECONDS` of CPU work each
  (a stand-in calibrated on this machine, in CPU time) that logs the two metrics every
  step, with the tracker against the same loop without it. Rounds without and
  with alternate (every other pair the other way round); the ratio is the
  median over pairs of the time with the tracker over the time without, with
  the range of the pairs' ratios beside it. A slow tracker's rounds
  have fewer steps (about :data:`ROUND_SECONDS` each, at least 50). The wall
  time counts what the tracker's threads take from the loop (and its other
  processes where they compete for the same cores);
- **CPU per step**: the log call's CPU in the loop's thread (best of 5 runs)
  plus what the tracker's other threads and processes use per logged step
  (W&B's ``wandb-core`` is a child process; jobwatch's sender and trackio's
  writer are threads): their CPU from a round's first step until
  :data:`SETTLE_SECONDS` after its last, the tracker drained, so that a batch
  written or sent later counts too, less the same in a round that logged
  nothing (the median of the rounds' differences). This is the steadiest
  figure on a loaded machine (the loop's own CPU swings by tens of
  microseconds a step there, and the wall time far more);
- **finish**: the seconds its ``finish()``/``complete()``/``end_run()`` took
  after the last round (writing or sending what it still holds).

Each tracker runs in a child Python of its own (``python -m benchmarks.peers
--one NAME``), so that one's threads, processes and imports do not weigh on
another's figures; the baseline loop is timed in that same child. jobwatch
reports to ``jobwatch serve`` in another process on loopback, as a job would
to its server (``gpu=False``: no GPU sampling on either side); trackio writes its
local SQLite database (``TRACKIO_DIR`` in a temporary folder), W&B runs with
``WANDB_MODE=offline`` (its ``wandb-core`` process writes the run's file),
MLflow with a ``file:`` tracking URI in a temporary folder (its file store,
which MLflow 3 keeps only behind ``MLFLOW_ALLOW_FILE_STORE=true``) and, as
``mlflow-sqlite``, with the SQLite database MLflow 3 recommends instead. Each keeps its
defaults otherwise (W&B's and trackio's system metrics included).

A tracker that is not installed is skipped, with the reason printed and in
its row (``python -m benchmarks --quick`` in the project's environment, which
has none of them, times jobwatch alone). To run them all, in an environment
of their own (none of them needs torch)::

    python -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install -e ".[server]" trackio wandb mlflow
    /tmp/peers-venv/bin/python -m benchmarks.peers          # --quick: fewer, shorter rounds

(``python -m benchmarks --only peers`` there too once the ``dev`` and ``scale``
extras are installed: the table's other groups import them.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from benchmarks.report import Row
from benchmarks.step_work import StepWork

GROUP = "peers"
STEP_SECONDS = 100e-6
"""A step's own work: 100 us, a loop of 10,000 steps a second that logs every
step (more often than training does, so that a tracker's cost shows)."""
PEERS = {
    "jobwatch": "jobwatch",
    "trackio": "trackio",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "mlflow-sqlite": "mlflow",
}
"""Tracker name -> the module that must be importable."""
ROUND_SECONDS = {True: 0.5, False: 3.0}
"""About how long a round with the tracker may take (``--quick``: True)."""
SETTLE_SECONDS = {True: 0.6, False: 1.5}
"""How long after a round its CPU is still counted (trackio writes a batch every 0.5 s)."""
_step_work = StepWork()
"""A step's own work, sized in :func:`measure` to :data:`STEP_SECONDS` of this
thread's CPU (CPU time, so that every tracker's child sizes its steps alike
however loaded the machine is while it calibrates)."""


class Tracker:
    """One tracker as the loop uses it: ``log(values, step)``, ``drain()``
    (wait for what it holds, untimed), ``finish()``."""

    def __init__(
        self,
        log: Callable[[dict[str, float], int], object],
        finish: Callable[[], object],
        drain: Callable[[], object] = lambda: None,
    ) -> None:
        self.log, self.finish, self.drain = log, finish, drain


def _jobwatch(folder: Path, url: str | None) -> Tracker:
    from jobwatch import Reporter

    reporter = Reporter(f"bench-peers-{os.getpid()}", url=url, gpu=False)
    return Tracker(
        lambda values, step: reporter.log_metrics(values, step=step),
        reporter.complete,
        lambda: reporter.flush(timeout=60),
    )


def _trackio(folder: Path, url: str | None) -> Tracker:
    os.environ["TRACKIO_DIR"] = str(folder)
    import trackio

    trackio.init(project="bench-peers", name="loop")
    return Tracker(lambda values, step: trackio.log(values, step=step), trackio.finish)


def _wandb(folder: Path, url: str | None) -> Tracker:
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    import wandb

    run = wandb.init(project="bench-peers", dir=str(folder), mode="offline")
    return Tracker(lambda values, step: run.log(values, step=step), run.finish)


def _mlflow(folder: Path, url: str | None, uri: str | None = None) -> Tracker:
    # MLflow 3.x refuses its file store unless told to (it is "in maintenance mode")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow

    mlflow.set_tracking_uri(uri or (folder / "mlruns").as_uri())
    mlflow.set_experiment("bench-peers")
    mlflow.start_run()
    return Tracker(lambda values, step: mlflow.log_metrics(values, step=step), mlflow.end_run)


MAKERS: dict[str, Callable[[Path, str | None], Tracker]] = {
    "jobwatch": _jobwatch,
    "trackio": _trackio,
    "wandb": _wandb,
    "mlflow": _mlflow,
    "mlflow-sqlite": lambda folder, url: _mlflow(folder, url, f"sqlite:///{folder / 'mlflow.db'}"),
}


def _children_cpu() -> float:
    """CPU seconds used so far by this process's children, recursively, alive now
    (W&B's ``wandb-core``); psutil reads them in clock ticks (10 ms)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        total += times.user + times.system
    return total


def _loop(
    steps: int, first: int, tracker: Tracker | None, settle: float
) -> tuple[float, float, float]:
    """``(wall seconds, CPU seconds of this thread, CPU seconds of the rest)`` of
    ``steps`` steps, logging at steps ``first``, ``first + 1``, ... when
    ``tracker`` is given. The wall time and this thread's CPU are the steps';
    the rest (this process's other threads and its children) is counted on
    until ``settle`` seconds after the last step, the tracker drained, so that
    the work it put off (a batch it writes or sends later) counts too."""
    state = [0.0]
    children = _children_cpu()
    process = time.process_time()
    start_thread = time.thread_time()
    start = time.perf_counter()
    for step in range(first, first + steps):
        _step_work(state)
        if tracker is not None:
            tracker.log({"loss": 1.0 / (step + 1), "accuracy": state[0] % 1.0}, step)
    end = time.perf_counter()
    thread = time.thread_time() - start_thread
    if tracker is not None:
        tracker.drain()
    time.sleep(max(0.0, end + settle - time.perf_counter()))
    mine = time.thread_time() - start_thread  # the drain's waiting included
    rest = time.process_time() - process - mine + _children_cpu() - children
    return end - start, thread, rest


def _per_call(tracker: Tracker, first: int, calls: int) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this thread)`` per log call: each the best
    of 5 runs of ``calls``, draining between."""
    best = best_cpu = float("inf")
    for run in range(5):
        start, cpu = time.perf_counter(), time.thread_time()
        for step in range(first + run * calls, first + (run + 1) * calls):
            tracker.log({"loss": 1.0 / (step + 1), "accuracy": 0.5}, step)
        best = min(best, (time.perf_counter() - start) / calls)
        best_cpu = min(best_cpu, (time.thread_time() - cpu) / calls)
        tracker.drain()
    return best, best_cpu


def measure(name: str, quick: bool, url: str | None) -> dict[str, Any]:
    """One tracker's figures, in this process (see the module docstring)."""
    rounds, steps = (3, 1000) if quick else (7, 4000)
    with tempfile.TemporaryDirectory() as tmp:
        _step_work.calibrate(STEP_SECONDS, time.thread_time, rounds=1000)
        tracker = MAKERS[name](Path(tmp), url)
        step = 0
        probe = time.perf_counter()  # how many calls fit a run of about 0.2 s
        for step in range(20):
            tracker.log({"loss": 1.0, "accuracy": 0.5}, step)
        each = (time.perf_counter() - probe) / 20
        tracker.drain()
        calls = int(min(2000, max(20, (0.05 if quick else 0.2) / max(each, 1e-7))))
        per_call, per_call_cpu = _per_call(tracker, 20, calls)
        step = 20 + 5 * calls
        # a slow tracker's rounds are shorter (at most about ROUND_SECONDS), never under 50 steps
        budget = ROUND_SECONDS[quick] / (per_call + STEP_SECONDS)
        steps = int(max(50, min(steps, budget)))
        _loop(steps // 4, 0, None, 0.0)  # warm up
        pairs, bare, tracked, bare_cpu, background = [], [], [], [], []
        for round_ in range(rounds):
            pair = [False, True] if round_ % 2 == 0 else [True, False]
            timed = {}
            for with_tracker in pair:
                timed[with_tracker] = _loop(
                    steps, step, tracker if with_tracker else None, SETTLE_SECONDS[quick]
                )
                step += steps if with_tracker else 0
            bare.append(timed[False][0])
            tracked.append(timed[True][0])
            bare_cpu.append(timed[False][1])
            background.append(timed[True][2] - timed[False][2])
            pairs.append(timed[True][0] / timed[False][0])
        start = time.perf_counter()
        tracker.finish()
        finish_s = time.perf_counter() - start
    return {
        "per_call_s": per_call,
        "calls": calls,
        "step_s": statistics.median(bare) / steps,
        "steps": steps,
        "rounds": rounds,
        "ratio": statistics.median(pairs),
        "cpu_per_step_s": per_call_cpu + statistics.median(background) / steps,
        "step_cpu_s": statistics.median(bare_cpu) / steps,
        "pairs": [min(pairs), statistics.median(pairs), max(pairs)],
        "finish_s": finish_s,
    }


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def _child(name: str, quick: bool, url: str | None, timeout: float) -> dict[str, Any]:
    """Run :func:`measure` for ``name`` in a child Python; its figures, or ``{"error": ...}``."""
    command = [sys.executable, "-m", "benchmarks.peers", "--one", name]
    command += ["--quick"] if quick else []
    command += ["--url", url] if url else []
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=root, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"took over {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}


def run(quick: bool) -> list[Row]:
    """Rows: each tracker's log call and loop overhead; jobwatch's are the baseline."""
    from jobwatch.server.deploy.process import ServerProcess, serve_command

    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "peers.db")) as server,
    ):
        for name, module in PEERS.items():
            if importlib.util.find_spec(module) is None:
                reason = f"not installed (pip install {module}; see benchmarks/peers.py)"
                print(f"peers: skipping {name}: {reason}", file=sys.stderr)
                results[name] = {"skipped": reason}
                continue
            results[name] = _child(name, quick, server.url, timeout=300 if quick else 900)
            if "error" in results[name]:
                print(f"peers: {name} failed: {results[name]['error']}", file=sys.stderr)
    base = results["jobwatch"]
    rows = []
    for name, got in results.items():
        label = (
            name if name == "jobwatch" or "skipped" in got else f"{name} {_version(PEERS[name])}"
        )
        if "per_call_s" not in got:
            why = got.get("skipped") or got.get("error", "")
            rows.append(Row(GROUP, label, f"skipped: {why}", None, ""))
            continue
        ratio = None
        if "per_call_s" in base:
            ratio = got["per_call_s"] / base["per_call_s"]
        rows.append(
            Row(
                GROUP,
                f"{label}: one log call of 2 metrics (ratio: x jobwatch's)",
                f"{got['per_call_s'] * 1e6:,.1f} us",
                ratio,
                "jobwatch the cheapest",
                f"best of 5 runs of {got['calls']:,} calls",
            )
        )
        loop = f"loop of {got['step_s'] * 1e6:.0f} us steps logging every step"
        cpu_ratio = 1 + got["cpu_per_step_s"] / got["step_cpu_s"]
        rows.append(
            Row(
                GROUP,
                f"{label}: CPU per step, the call and the tracker's other threads and "
                "processes (ratio: step + it / step)",
                f"{got['cpu_per_step_s'] * 1e6:,.1f} us per step",
                cpu_ratio,
                "jobwatch the least",
                f"call: best of 5 runs; the rest: median of {got['rounds']} rounds of "
                f"{got['steps']:,} steps, less the same without logging",
            )
        )
        rows.append(
            Row(
                GROUP,
                f"{label}: {loop}, wall time (ratio: with / without)",
                f"{got['ratio']:.3f}x (pairs {got['pairs'][0]:.3f}-{got['pairs'][2]:.3f}x), "
                f"finish {got['finish_s']:.2f} s",
                got["ratio"],
                "jobwatch the least",
                "median over alternating pairs of rounds, in one child process",
            )
        )
    return rows


def main() -> None:
    """``python -m benchmarks.peers [--quick]``: the table; ``--one NAME``: one
    tracker's figures as a JSON line (what :func:`run` starts)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    parser.add_argument("--one", choices=sorted(MAKERS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.quick, args.url)), flush=True)
        return
    from benchmarks.report import markdown

    print(markdown(run(args.quick)))


if __name__ == "__main__":
    main()
