"""Soak: many workers reporting for minutes to ``jobwatch serve`` as shipped
(SQLite file, durable group commits), with a subscriber on every job.

500 simulated workers, one job each, post the seed's progress body (its
metrics and one log line) once a second for 5 minutes; 50 WebSocket
connections subscribe to 10 jobs each (``--quick``: 100 workers for 20 s,
10 connections). The workers run in their own processes (250 a process),
each a thread with its own keep-alive ``http.client`` connection on a fixed
schedule, their send times spread evenly over the second. The subscribers
run in another process and read every connection through one selector,
counting per job the distinct ``JOB_PROGRESS`` seqs they receive.

Everything stops by itself: each worker sends a fixed number of updates and
gives up :data:`GRACE` seconds after its schedule ends; the subscribers stop
once every job has what its worker sent, or :data:`DRAIN_TIMEOUT` seconds
later.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import selectors
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import websocket

from benchmarks.ingest import SEED_BODY
from benchmarks.procs import cpu_seconds, rss_mb, worker_pid
from benchmarks.report import Row, percentile
from jobwatch.server.deploy.process import ServerProcess, serve_command

WORKERS_PER_PROCESS = 250
"""Simulated workers per load process."""
POST_TIMEOUT = 10.0
"""Seconds one ``POST /progress`` may take before it counts as an error."""
GRACE = 30.0
"""Seconds past the end of its schedule a worker may take to catch up before it gives up."""
DRAIN_TIMEOUT = 30.0
"""Seconds the subscribers get, after the last update, to read what is still on its way."""
SETUP_TIMEOUT = 60.0
"""Seconds a child process may take to start, connect and say it is ready."""
WARM_UP = 10.0
"""Seconds into the run when the "start" memory is read: by then every worker's
connection is open, so the figures compare like with like (at most a quarter of the run)."""


@dataclass(frozen=True)
class Plan:
    """How many workers for how long, and how the subscriptions are spread."""

    workers: int
    seconds: int
    connections: int
    jobs_per_connection: int


FULL = Plan(workers=500, seconds=300, connections=50, jobs_per_connection=10)
QUICK = Plan(workers=100, seconds=20, connections=10, jobs_per_connection=10)


# -- the workers (load processes) --------------------------------------------------


@dataclass
class _Tally:
    """What one load thread did: acknowledged updates per job, errors, timings."""

    acked: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)
    per_second: Counter[int] = field(default_factory=Counter)
    last_done: float = 0.0

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)

    def merge(self, other: _Tally) -> None:
        self.acked.update(other.acked)
        self.attempts += other.attempts
        self.errors += other.errors
        self.error_samples.extend(other.error_samples[: 5 - len(self.error_samples)])
        self.latencies_ms.extend(other.latencies_ms)
        self.lags_ms.extend(other.lags_ms)
        self.per_second.update(other.per_second)
        self.last_done = max(self.last_done, other.last_done)


def _body(worker: str, step: int, updates: int) -> bytes:
    """The seed's progress body for ``step`` (1-based) of ``updates``, with one log line."""
    body = {
        **SEED_BODY,
        "workerId": worker,
        "progress": round(99 * step / updates, 3),
        "currentOperation": f"step {step}/{updates}",
        "logLines": [{"level": "info", "message": f"{worker}: step {step} done"}],
    }
    return json.dumps(body).encode()


def _worker(url: str, job_id: str, phase: float, start: float, updates: int, tally: _Tally) -> None:
    """One simulated worker: update k of its job at ``start + k + phase`` seconds.

    Each worker has its own keep-alive connection, like a real one: workers
    sharing a connection would turn one slow answer into late sends for all
    queued behind it (seen with 25 a connection: send lag p99 8.7 s over a
    5-minute run), hiding server stalls as a lower offered rate. A worker that
    falls behind sends at once to catch up; it gives up :data:`GRACE` seconds
    after its schedule ends.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=POST_TIMEOUT
    )
    path = f"/api/jobs/{job_id}/progress"
    headers = {"Content-Type": "application/json"}
    give_up_at = start + updates + GRACE
    try:
        for k in range(updates):
            due = start + k + phase
            now = time.monotonic()
            if now >= give_up_at:
                return
            if due > now:
                time.sleep(due - now)
            body = _body(f"worker-{job_id}", k + 1, updates)
            tally.attempts += 1
            sent_at = time.monotonic()
            tally.lags_ms.append((sent_at - due) * 1000)
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                tally.error(f"{job_id}: {exc!r}")
                conn.close()  # the next request opens a fresh connection
                continue
            done = time.monotonic()
            tally.latencies_ms.append((done - sent_at) * 1000)
            tally.per_second[int(done - start)] += 1
            tally.last_done = max(tally.last_done, done)
            if response.status == 200:
                tally.acked[job_id] += 1
            else:
                tally.error(f"{job_id}: {response.status} {answer[:200]!r}")
    finally:
        conn.close()


def _load_process(pipe: Connection, url: str, jobs: list[tuple[str, float]], updates: int) -> None:
    """Entry point of one load process: one thread per ``(job, phase)``; says
    ready, waits for the start time, runs the schedule and sends its tally."""
    pipe.send("ready")
    start: float = pipe.recv()
    tallies = [_Tally() for _ in jobs]
    threads = [
        threading.Thread(
            target=_worker, args=(url, job_id, phase, start, updates, tally), daemon=True
        )
        for (job_id, phase), tally in zip(jobs, tallies, strict=True)
    ]
    cpu_before = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, start + updates + GRACE + POST_TIMEOUT - time.monotonic()))
    total = _Tally()
    for tally in tallies:
        total.merge(tally)
    pipe.send((total, (time.process_time() - cpu_before) / max(1e-9, time.monotonic() - start)))


# -- the subscribers ---------------------------------------------------------------


def _open(ws_url: str, job_ids: list[str]) -> websocket.WebSocket:
    """One connection subscribed to ``job_ids`` (every subscription acknowledged)."""
    # the pure-Python UTF-8 check (without wsaccel) would cost more than the read itself
    ws = websocket.create_connection(ws_url, timeout=SETUP_TIMEOUT, skip_utf8_validation=True)
    for job_id in job_ids:
        ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": job_id}))
    acked = 0
    while acked < len(job_ids):
        reply = json.loads(ws.recv())
        if reply.get("type") != "subscribed":
            raise RuntimeError(f"subscription refused: {reply}")
        acked += 1
    ws.settimeout(5.0)  # a frame is already arriving when the selector wakes us
    return ws


def _subscriber_process(
    pipe: Connection, ws_url: str, groups: list[list[str]], hard_timeout: float
) -> None:
    """Entry point of the subscriber process.

    Says ``ready`` once every subscription is acknowledged, then reads until
    the parent sends ``{job: updates sent}`` and every job has that many
    ``JOB_PROGRESS`` seqs (or :data:`DRAIN_TIMEOUT` seconds pass), or
    ``hard_timeout`` seconds in all.
    """
    sockets = [_open(ws_url, group) for group in groups]
    pipe.send("ready")
    cpu_before, wall_before = time.process_time(), time.monotonic()
    seqs: dict[str, set[int]] = {job_id: set() for group in groups for job_id in group}
    logs: Counter[str] = Counter()
    frames, closed = 0, 0
    expected: dict[str, int] | None = None
    selector = selectors.DefaultSelector()
    selector.register(pipe, selectors.EVENT_READ)
    for ws in sockets:
        selector.register(ws, selectors.EVENT_READ, ws)
    stop_at = time.monotonic() + hard_timeout
    while time.monotonic() < stop_at:
        if expected is not None and all(len(seqs[j]) >= n for j, n in expected.items()):
            break
        for key, _ in selector.select(timeout=0.5):
            if key.data is None:
                expected = pipe.recv()
                selector.unregister(pipe)
                stop_at = min(stop_at, time.monotonic() + DRAIN_TIMEOUT)
                continue
            ws = key.data
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except (websocket.WebSocketException, OSError):
                opcode, frame = websocket.ABNF.OPCODE_CLOSE, None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                closed += 1
                selector.unregister(ws)
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue  # ping or pong, answered by websocket-client
            event = json.loads(frame.data)
            if event.get("type") == "JOB_PROGRESS":
                frames += 1
                seqs[event["jobId"]].add(event["seq"])
            elif event.get("type") == "JOB_LOGS":
                logs[event["jobId"]] += 1
    cpu_share = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
    selector.close()
    for ws in sockets:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.send_close()
        ws.shutdown()  # type: ignore[no-untyped-call]
    received = {job_id: len(s) for job_id, s in seqs.items()}
    pipe.send(
        {
            "received": received,
            "duplicates": frames - sum(received.values()),
            "logs": dict(logs),
            "closed": closed,
            "cpu_share": cpu_share,
        }
    )


# -- the run -----------------------------------------------------------------------


@dataclass(frozen=True)
class SoakResult:
    """What a soak measured."""

    plan: Plan
    sent: int
    unsent: int
    rate: float
    slowest_second: int
    errors: int
    error_samples: list[str]
    delivered: float
    jobs_short: int
    duplicates: int
    logs_delivered: float
    closed: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float
    rss_mb: tuple[float, float, float, float]
    server_cpu: float
    load_cpu: float
    subscriber_cpu: float
    machine_cpu: float
    seconds: float


def _receive(pipe: Connection, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError(f"the soak's {what} said nothing in {timeout:.0f} s")
    try:
        return pipe.recv()
    except EOFError:
        raise RuntimeError(f"the soak's {what} exited early (its traceback is above)") from None


def _start(ctx: Any, target: Any, *args: Any) -> tuple[Any, Connection]:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, *args), daemon=True)
    process.start()
    child.close()
    return process, parent


def _machine_busy() -> float:
    """CPU seconds all processes of this machine have used so far (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _create_jobs(url: str, job_ids: list[str]) -> None:
    with requests.Session() as session:
        for job_id in job_ids:
            response = session.put(
                f"{url}/api/jobs/{job_id}", json={"pricePerHour": 1.5}, timeout=10
            )
            response.raise_for_status()


def soak(plan: Plan) -> SoakResult:
    """Run ``plan`` against a fresh ``jobwatch serve`` and measure it."""
    ctx = multiprocessing.get_context("spawn")
    job_ids = [f"soak-{i}" for i in range(plan.workers)]
    per = plan.jobs_per_connection
    groups = [job_ids[c * per : (c + 1) * per] for c in range(plan.connections)]
    schedule = [(job_id, i / plan.workers) for i, job_id in enumerate(job_ids)]
    chunks = [
        schedule[i : i + WORKERS_PER_PROCESS] for i in range(0, len(schedule), WORKERS_PER_PROCESS)
    ]
    processes = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "soak.db")) as server,
    ):
        try:
            server_worker = worker_pid(server)
            _create_jobs(server.url, job_ids)
            hard_timeout = plan.seconds + GRACE + POST_TIMEOUT + DRAIN_TIMEOUT + 60
            subscriber, sub_pipe = _start(
                ctx, _subscriber_process, server.ws_url, groups, hard_timeout
            )
            processes.append(subscriber)
            loads = [
                _start(ctx, _load_process, server.url, chunk, plan.seconds) for chunk in chunks
            ]
            processes.extend(process for process, _ in loads)
            _receive(sub_pipe, SETUP_TIMEOUT, "subscriber process")
            for _, pipe in loads:
                _receive(pipe, SETUP_TIMEOUT, "load process")

            rss_idle, cpu_before = rss_mb(server_worker), cpu_seconds(server_worker)
            machine_before = _machine_busy()
            start = time.monotonic() + 0.5
            for _, pipe in loads:
                pipe.send(start)
            time.sleep(max(0.0, start + min(WARM_UP, plan.seconds / 4) - time.monotonic()))
            rss_start = rss_mb(server_worker)
            time.sleep(max(0.0, start + plan.seconds / 2 - time.monotonic()))
            rss_mid = rss_mb(server_worker)

            total, load_cpu = _Tally(), 0.0
            for _, pipe in loads:
                tally, cpu = _receive(pipe, plan.seconds + GRACE + 2 * POST_TIMEOUT, "load process")
                total.merge(tally)
                load_cpu += cpu
            wall = time.monotonic() - start
            server_cpu = (cpu_seconds(server_worker) - cpu_before) / wall
            machine_cpu = (_machine_busy() - machine_before) / wall
            sub_pipe.send(dict(total.acked))
            seen = _receive(sub_pipe, DRAIN_TIMEOUT + 30, "subscriber process")
            rss_end = rss_mb(server_worker)
        finally:
            for process in processes:
                process.join(10)
                if process.is_alive():
                    process.kill()
                    process.join(5)

    sent = sum(total.acked.values())
    received = seen["received"]
    delivered = sum(min(received.get(j, 0), n) for j, n in total.acked.items())
    seconds_counted = [total.per_second.get(s, 0) for s in range(plan.seconds)]
    return SoakResult(
        plan=plan,
        sent=sent,
        unsent=plan.workers * plan.seconds - total.attempts,
        rate=total.attempts / max(1e-9, total.last_done - start),
        slowest_second=min(seconds_counted),
        errors=total.errors,
        error_samples=total.error_samples,
        delivered=delivered / max(1, sent),
        jobs_short=sum(1 for j, n in total.acked.items() if received.get(j, 0) < n),
        duplicates=seen["duplicates"],
        logs_delivered=sum(min(seen["logs"].get(j, 0), n) for j, n in total.acked.items())
        / max(1, sent),
        closed=seen["closed"],
        p50_ms=percentile(total.latencies_ms, 50),
        p99_ms=percentile(total.latencies_ms, 99),
        max_ms=max(total.latencies_ms, default=float("nan")),
        lag_p99_ms=percentile(total.lags_ms, 99),
        rss_mb=(rss_idle, rss_start, rss_mid, rss_end),
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        subscriber_cpu=seen["cpu_share"],
        machine_cpu=machine_cpu,
        seconds=time.monotonic() - started,
    )


def run(quick: bool) -> list[Row]:
    """Rows: rate and errors, POST latency, delivery, server worker memory."""
    r = soak(QUICK if quick else FULL)
    p = r.plan
    target = p.workers
    what = f"{p.workers} workers x 1 update/s for {p.seconds} s (seed metrics + 1 log line)"
    errors = f"errors {r.errors}" + (f" (e.g. {r.error_samples[0]})" if r.error_samples else "")
    idle, start, mid, end = r.rss_mb
    warm_up = min(WARM_UP, p.seconds / 4)
    return [
        Row(
            "soak",
            what,
            f"sent {r.sent:,} at {r.rate:,.1f} req/s (target {target}), {errors}",
            r.rate / target,
            "ratio ~1.0, errors 0",
            f"ratio = achieved / target rate; slowest second {r.slowest_second} updates; "
            f"send lag p99 {r.lag_p99_ms:.0f} ms; unsent {r.unsent}; "
            f"{len(range(0, p.workers, WORKERS_PER_PROCESS))} load processes, "
            "a keep-alive connection per worker",
        ),
        Row(
            "soak",
            "POST /progress latency during the soak",
            f"p50 {r.p50_ms:.1f} ms  p99 {r.p99_ms:.1f} ms  max {r.max_ms:.0f} ms",
            None,
            "",
            f"CPU: server worker {r.server_cpu:.0%}, load {r.load_cpu:.0%}, "
            f"subscribers {r.subscriber_cpu:.0%} of a core; whole machine "
            f"{r.machine_cpu:.0%} of a core ({os.cpu_count()} cores; more than the sum "
            "means other processes were busy too)",
        ),
        Row(
            "soak",
            f"{p.connections} WebSocket connections x {p.jobs_per_connection} jobs: "
            "JOB_PROGRESS delivered to its subscriber",
            f"delivered {r.delivered:.4f} (jobs short {r.jobs_short}, duplicates "
            f"{r.duplicates}, connections closed {r.closed})",
            None,
            "delivered 1.0",
            f"JOB_LOGS delivered {r.logs_delivered:.4f}",
        ),
        Row(
            "soak",
            "server worker RSS at start / middle / end",
            f"{start:.1f} / {mid:.1f} / {end:.1f} MB",
            end / start,
            "ratio (end / start) ~1.0",
            f"start = {warm_up:.0f} s in, every worker connected; before the load {idle:.1f} MB; "
            f"end / middle {end / mid:.2f}x; whole run {r.seconds:.0f} s",
        ),
    ]
