"""One job, many workers: 64 nodes x 8 GPUs (512 ranks) reporting to one job.

Each rank posts one update a second with 5 log lines, as a rank of a distributed
job (``rank``, ``worldSize``, ``localRank``, ``node``); each node's local rank 0
also sends its node's 8 GPUs (as the Reporter samples them). The ranks' updates
are spread evenly over each second, from threads of this process on kept-alive
connections. Server: ``jobwatch serve`` in a subprocess (SQLite, one gunicorn
worker), so its CPU is read from its worker process alone (``/proc``).

Baseline, in the same run and server: one job of one worker posting
:data:`BASELINE_RATE` updates a second, each with 8 GPUs and 5 log lines (the
load of ``benchmarks/kernel.py``, where a notebook monitor's CPU was measured).

Figures:

- the server's CPU per update (its worker's CPU over a window, less what it
  uses idle, over the updates answered), 512 ranks against the one worker;
- the ``/monitor`` answer's size and time once the job holds a minute of samples
  (what every viewer reads first);
- the CPU of a real IPython kernel (jupyter_client) showing a ``JobMonitor`` of
  the job (goal: at most 2 % of a core, as for one worker), and its iopub traffic;
- the job page's frame time in headless Chromium (the interval between animation
  frames, p50/p95/max, and the main thread's long tasks), with the page of the one
  worker's job as the baseline.

``--quick`` runs 8 nodes (64 ranks) with short windows, without the window of every
rank's lines.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from benchmarks.kernel import GOAL_CPU, IopubCounter, monitor_kernel
from benchmarks.kernel import measure as kernel_window
from benchmarks.procs import cpu_seconds, served, worker_pid
from benchmarks.report import Row, percentile

NODES, GPUS_PER_NODE = 64, 8
"""The full run's job: 64 nodes of 8 GPUs, a rank per GPU."""
QUICK_NODES = 8
LOG_LINES = 5
"""Log lines in each rank's update (5 a second per rank)."""
BASELINE_RATE = 10.0
"""Updates a second of the one worker of the baseline job."""
PROCESSES = 2
"""Processes that post the updates (a process's threads share one interpreter lock)."""
THREADS = 32
"""Threads of each process, each with its own kept-alive connection: at 1 update a second
per rank, 8 ranks a thread keep up with answers up to 125 ms late."""
JSON_HEADERS = {"Content-Type": "application/json"}
FRAME_GOAL_MS = 50.0
"""p95 of the page's frame time: a page that draws at 20 frames a second or better
under the load stays usable (scrolling, the filter, the table)."""


def gpus(node: int, step: int, count: int = GPUS_PER_NODE) -> list[dict[str, Any]]:
    """A node's GPUs at ``step``: utilization moves, memory and power near an H100's."""
    return [
        {
            "index": g,
            "uuid": f"GPU-{node:02d}-{g}",
            "name": "NVIDIA H100 80GB HBM3",
            "gpuUtilization": float((node * 7 + g * 13 + step * 3) % 101),
            "gpuMemoryUsed": 60_000.0 + (node + g) % 100,
            "gpuMemoryTotal": 81_559.0,
            "gpuTemperature": 60.0 + (node + g) % 20,
            "powerUsage": 500.0 + (node * 3 + g) % 150,
        }
        for g in range(count)
    ]


def rank_body(rank: int, step: int, world: int) -> bytes:
    """The ``step``-th update of ``rank``: 5 log lines; its node's GPUs from local rank 0."""
    node, local = divmod(rank, GPUS_PER_NODE)
    body: dict[str, Any] = {
        "workerId": f"node-{node:02d}/{rank}",
        "progress": min(99.0, step * 0.1),
        "currentOperation": f"step {step}",
        "rank": rank,
        "worldSize": world,
        "localRank": local,
        "node": f"node-{node:02d}",
        "logLines": [
            {
                "level": "info",
                "message": f"rank {rank} step {step}.{k}: loss {1 / (step + k + 1):.5f}",
            }
            for k in range(LOG_LINES)
        ],
    }
    if local == 0:
        body["metrics"] = {"gpus": gpus(node, step)}
    return json.dumps(body).encode()


def single_body(step: int) -> bytes:
    """The one worker's ``step``-th update: 8 GPUs and 5 log lines."""
    body = {
        "workerId": "one",
        "progress": min(99.0, step * 0.01),
        "currentOperation": f"step {step}",
        "metrics": {"gpus": gpus(0, step)},
        "logLines": [
            {"level": "info", "message": f"step {step}.{k}: loss {1 / (step + k + 1):.5f}"}
            for k in range(LOG_LINES)
        ],
    }
    return json.dumps(body).encode()


def _body(kind: str, world: int, sender: int, step: int) -> bytes:
    return rank_body(sender, step, world) if kind == "ranks" else single_body(step)


def _post(
    url: str,
    job_id: str,
    kind: str,
    world: int,
    mine: list[int],
    rate: float,
    start: float,
    stop: Any,
    counts: Any,
) -> None:
    """One poster thread: each of ``mine`` posts once per period, at its place in it; a
    poster behind its schedule posts at once and skips the periods it missed (as a
    Reporter sends its newest state, not a backlog)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    path = f"/api/jobs/{job_id}/progress"
    period = 1.0 / rate
    step = 0
    while not stop.is_set():
        for sender in mine:
            due = start + step * period + sender * period / max(1, world)
            delay = due - time.time()
            if delay > 0 and stop.wait(delay):
                break
            conn.request("POST", path, _body(kind, world, sender, step), JSON_HEADERS)
            answer = conn.getresponse()
            answer.read()
            with counts.get_lock():
                counts[0] += 1
                counts[1] += answer.status >= 300
        step = max(step + 1, int((time.time() - start) / period))  # missed periods skipped
    conn.close()


def _posters(
    url: str, job_id: str, kind: str, world: int, rate: float, part: int, parts: int,
    start: float, stop: Any, counts: Any,
) -> None:  # fmt: skip
    """One process's poster threads, for every ``parts``-th sender from ``part``."""
    senders = list(range(part, max(1, world), parts))
    threads = [
        threading.Thread(
            target=_post,
            args=(url, job_id, kind, world, senders[t::THREADS], rate, start, stop, counts),
            daemon=True,
        )
        for t in range(min(THREADS, len(senders)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Load:
    """Workers posting until :meth:`stop`, from :data:`PROCESSES` processes of
    :data:`THREADS` threads each (kept-alive connections): ``world`` ranks of a
    distributed job (``kind="ranks"``) or one worker (``kind="one"``), each ``rate``
    times a second, spread evenly over the second. Counts the updates answered."""

    def __init__(self, url: str, job_id: str, kind: str, world: int, rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._counts = context.Array("q", 2)  # answered, errors
        self._taken = 0
        start = time.time() + 2.0  # the processes start meanwhile
        parts = min(PROCESSES, max(1, world))
        self._processes = [
            context.Process(
                target=_posters,
                args=(url, job_id, kind, world, rate, part, parts, start, self._stop, self._counts),
                daemon=True,
            )
            for part in range(parts)
        ]
        for process in self._processes:
            process.start()

    @property
    def errors(self) -> int:
        """Error answers so far."""
        return int(self._counts[1])

    def take(self) -> int:
        """Updates answered since the last call."""
        with self._counts.get_lock():
            answered = int(self._counts[0])
        taken, self._taken = answered - self._taken, answered
        return taken

    def stop(self) -> None:
        """Stop posting and wait for the processes."""
        self._stop.set()
        for process in self._processes:
            process.join(30)
            if process.is_alive():
                process.kill()


@dataclass(frozen=True)
class ServerWindow:
    """The server worker's CPU over a window: per update (ms) and in all (% of a core)."""

    updates_per_s: float
    cpu_percent: float
    ms_per_update: float


def server_window(pid: int, load: Load, seconds: float, idle_percent: float) -> ServerWindow:
    """The server's CPU while ``load`` runs for ``seconds``, its idle share taken off."""
    load.take()
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
    updates = load.take()
    busy = max(0.0, used - idle_percent / 100 * elapsed)
    return ServerWindow(updates / elapsed, 100 * used / elapsed, 1000 * busy / max(1, updates))


def idle_percent(pid: int, seconds: float) -> float:
    """The server worker's CPU with no load (its watchdog, pings), % of a core."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


def monitor_answer(url: str, job_id: str) -> tuple[int, float, int]:
    """``/monitor``: (bytes, seconds to answer, samples in its history)."""
    started = time.monotonic()
    answer = requests.get(f"{url}/api/jobs/{job_id}/monitor", timeout=60)
    elapsed = time.monotonic() - started
    answer.raise_for_status()
    return len(answer.content), elapsed, len(answer.json()["metrics"]["history"])


FRAMES = """(ms) => new Promise((resolve) => {
    const frames = [];
    let longTasks = 0;
    const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) longTasks += entry.duration;
    });
    observer.observe({entryTypes: ["longtask"]});
    let last = null;
    const end = performance.now() + ms;
    const tick = (now) => {
        if (last !== null) frames.push(now - last);
        last = now;
        if (now < end) requestAnimationFrame(tick);
        else { observer.disconnect(); resolve({frames, longTasks}); }
    };
    requestAnimationFrame(tick);
})"""


@dataclass(frozen=True)
class Frames:
    """Animation-frame intervals (ms) over a window, and the long tasks' time (ms per s)."""

    p50: float
    p95: float
    worst: float
    long_ms_per_s: float


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium as the browser tests launch it (:mod:`tests.browser.conftest`)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import conftest

    executable = conftest.chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=conftest.CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def page_frames(browser: Any, url: str, ready: str, seconds: float) -> Frames:
    """Open ``url``, wait for ``ready`` (a selector) and a few seconds of live updates,
    then time the frames for ``seconds``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        page = context.new_page()
        page.goto(url)
        page.locator(ready).first.wait_for(timeout=60_000)
        page.wait_for_timeout(3000)
        out = page.evaluate(FRAMES, seconds * 1000)
    finally:
        context.close()
    frames = out["frames"] or [0.0]
    return Frames(
        percentile(frames, 50), percentile(frames, 95), max(frames), out["longTasks"] / seconds
    )


def kernel_cpu(url: str, job_id: str, seconds: float, every_line: bool = False) -> Any:
    """A real kernel's CPU and iopub traffic while it shows a monitor of ``job_id``: as it
    opens (a distributed job's log view on rank 0), and with ``every_line`` also with
    every rank's lines picked; ``(first window, that one or None)``."""
    with monitor_kernel(url, job_id) as (kernel, pid):
        time.sleep(3.0)  # the first renders and the workers' first read settle
        counter = IopubCounter(kernel.client)  # it reads iopub: no cell runs meanwhile
        try:
            first = kernel_window(pid, counter, seconds)
        finally:
            counter.stop()
        if not every_line:
            return first, None
        cell = kernel.run("monitor.view.logs.rank_filter = None")  # as the page sets it
        assert cell.error() is None, cell.error()
        time.sleep(3.0)
        counter = IopubCounter(kernel.client)
        try:
            return first, kernel_window(pid, counter, seconds)
        finally:
            counter.stop()


def run(quick: bool) -> list[Row]:
    """Rows: server CPU per update, /monitor, kernel CPU and page frame time, each for one
    worker (baseline) and for every rank of the distributed job."""
    nodes = QUICK_NODES if quick else NODES
    world = nodes * GPUS_PER_NODE
    window = 5.0 if quick else 20.0
    warm = 3.0 if quick else 60.0  # the distributed job's /monitor holds a full minute
    label = f"{nodes} nodes x {GPUS_PER_NODE} GPUs ({world} ranks)"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, served(Path(tmp) / "jobs.db") as server:
        pid = worker_pid(server)
        url = server.url
        with requests.Session() as session:
            session.put(f"{url}/api/jobs/one", json={"name": "one worker"}).raise_for_status()
            session.put(
                f"{url}/api/jobs/ddp", json={"name": "ddp", "worldSize": world}
            ).raise_for_status()
        idle = idle_percent(pid, 3.0)

        # -- one worker (baseline) ------------------------------------------------------
        one = Load(url, "one", "one", 1, BASELINE_RATE)
        try:
            time.sleep(2.0)
            base = server_window(pid, one, window, idle)
            base_kernel, _ = kernel_cpu(url, "one", window)
            base_monitor = monitor_answer(url, "one")
            try:
                with chromium() as browser:
                    base_frames: Frames | str = page_frames(
                        browser, f"{url}/jobs/one", ".jobwatch-log-line", window
                    )
            except Exception as exc:  # no Chromium here: said in the table
                base_frames = f"not run: {exc}"
        finally:
            one.stop()

        # -- every rank of the distributed job ------------------------------------------
        ranks = Load(url, "ddp", "ranks", world, 1.0)
        try:
            time.sleep(warm)
            many = server_window(pid, ranks, window, idle)
            many_monitor = monitor_answer(url, "ddp")
            many_kernel, all_lines = kernel_cpu(url, "ddp", window, every_line=not quick)
            try:
                with chromium() as browser:
                    many_frames: Frames | str = page_frames(
                        browser, f"{url}/jobs/ddp", ".jobwatch-heat-cell", window
                    )
            except Exception as exc:
                many_frames = f"not run: {exc}"
            errors = ranks.errors
        finally:
            ranks.stop()

    note = f"{window:.0f} s windows; server idle {idle:.2f} % of a core taken off"
    rows.append(
        Row(
            "distributed",
            f"server CPU per update, one worker at {BASELINE_RATE:.0f}/s, 8 GPUs + 5 lines (baseline)",
            f"{base.ms_per_update:.2f} ms ({base.cpu_percent:.1f} % of a core, "
            f"{base.updates_per_s:.0f} updates/s)",
            1.0,
            "",
            note,
        )
    )
    rows.append(
        Row(
            "distributed",
            f"server CPU per update, {label} at 1/s, 5 lines each, a node's GPUs from its local rank 0",
            f"{many.ms_per_update:.2f} ms ({many.cpu_percent:.1f} % of a core, "
            f"{many.updates_per_s:.0f} updates/s)",
            many.ms_per_update / base.ms_per_update if base.ms_per_update else None,
            "",
            f"{note}; {many.updates_per_s:.0f} of {world} updates/s posted (a poster behind "
            f"its schedule skips a turn), {errors} errors",
        )
    )
    for what, (size, seconds, samples), ratio in (
        ("one worker (baseline)", base_monitor, 1.0),
        (label, many_monitor, many_monitor[0] / base_monitor[0]),
    ):
        rows.append(
            Row(
                "distributed",
                f"/monitor answer, {what}",
                f"{size / 1024:,.0f} KB in {seconds * 1000:.0f} ms ({samples:,} samples)",
                ratio,
                "",
                "history: the last 60 s of samples",
            )
        )

    def kernel_figure(w: Any) -> str:
        return (
            f"{w.cpu_percent:.2f} % of a core; iopub {w.bytes_per_s / 1024:,.1f} KB/s, "
            f"{w.messages_per_s:,.1f} comm messages/s"
        )

    rows.append(
        Row(
            "distributed",
            f"JobMonitor kernel CPU, one worker at {BASELINE_RATE:.0f}/s x 8 GPUs x 5 lines (baseline)",
            kernel_figure(base_kernel),
            1.0,
            f"<= {GOAL_CPU:.0f} % of a core",
            "a real kernel (jupyter_client)",
        )
    )
    rows.append(
        Row(
            "distributed",
            f"JobMonitor kernel CPU, {label}, as it opens (rank 0's lines)",
            kernel_figure(many_kernel),
            many_kernel.cpu_percent / base_kernel.cpu_percent if base_kernel.cpu_percent else None,
            f"<= {GOAL_CPU:.0f} % of a core",
            f"{world} updates/s and {world * LOG_LINES:,} log lines/s posted; the monitor's "
            "view: rank 0's lines, progress changes",
        )
    )
    if all_lines is not None:
        rows.append(
            Row(
                "distributed",
                f"JobMonitor kernel CPU, {label}, every rank's lines picked",
                kernel_figure(all_lines),
                all_lines.cpu_percent / base_kernel.cpu_percent
                if base_kernel.cpu_percent
                else None,
                "",
                f"{world * LOG_LINES:,} log lines/s into the log view (it holds the newest 1,000)",
            )
        )
    for what, frames, base_p95 in (
        ("one worker (baseline)", base_frames, None),
        (label, many_frames, base_frames.p95 if isinstance(base_frames, Frames) else None),
    ):
        if isinstance(frames, str):
            rows.append(Row("distributed", f"job page frame time, {what}", frames, None, ""))
            continue
        rows.append(
            Row(
                "distributed",
                f"job page frame time in Chromium, {what}",
                f"p50 {frames.p50:.1f} ms, p95 {frames.p95:.1f} ms, max {frames.worst:.0f} ms; "
                f"long tasks {frames.long_ms_per_s:.0f} ms/s",
                frames.p95 / base_p95 if base_p95 else 1.0,
                f"p95 <= {FRAME_GOAL_MS:.0f} ms",
                "headless Chromium; interval between animation frames; ratio = p95 / baseline p95",
            )
        )
    return rows


if __name__ == "__main__":
    import sys

    from benchmarks.report import machine, markdown

    print(f"machine: {machine()}")
    print(markdown(run("--quick" in sys.argv)))
