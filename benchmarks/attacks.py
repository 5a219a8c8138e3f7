"""Hostile clients against the default ``jobwatch serve``, on loopback, bounded in time.

Starvation: ``/api/health`` and a well-behaved worker's POST are timed
(p99) without an attack (the baseline), during a 2,000-socket slowloris (a
header line every 5 s, from 40 loopback addresses so the per-address cap
does not simply refuse them; the attacker in a niced process of its own, so
that the machine's cores, not this process's interpreter lock, are shared) and during 3,000 idle WebSockets (from 12
addresses). The server's output is searched for tracebacks afterwards.

Memory: the worker's RSS (``/proc/PID/status``) before, at its peak during,
and after each attack: six subscribers replaying a job of 100 MB of log lines
with ``since: 0`` that never read; six subscribers that never read while 1 MiB
events are posted; six clients that ask for ``GET /api/jobs?limit=1000`` over
300 jobs of 1 MB results and never read the answer.

Hostile jobs: /api/health p99 and the worker's RSS before and during each of
700 jobs whose name, operation and worker id are 1,024 four-byte characters
each, with a fleet subscriber reading its first pages; one fleet subscription
over jobs holding 1 MB results; one WebSocket that never reads sending 1,000
``subscribe:job`` for a job with a 1 MB result; ``/api/prometheus`` with 10
running jobs of 1,024 GPUs (the webhook flood is checked by tests/server/events/test_webhook.py).

Every loop is bounded in count and time and stops by itself; only 127.0.0.0/8
is contacted. The benchmark raises its own open-files limit to serve as the
attacker.
"""

from __future__ import annotations

import base64
import contextlib
import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from benchmarks.procs import rss_mb, worker_pid
from benchmarks.report import Row
from jobwatch.server.deploy.process import ServerProcess, serve_command

P99_GOAL_MS = 100.0
RSS_GOAL_MB = 300.0
LINE = "x" * 16_000


def _addresses(count: int, base: str = "127.0.1.") -> list[str]:
    return [f"{base}{i}" for i in range(1, count + 1)]


def _host_port(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


# -- well-behaved clients, timed ----------------------------------------------------


class _FsyncProbe:
    """Times a 4 KiB write + fsync in ``folder`` every 50 ms while running: what a
    progress POST's commit waits for at least (SQLite's WAL with
    ``synchronous=FULL`` syncs each commit), on a disk other work shares."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "fsync-probe"
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with open(self.path, "wb") as file:
            while not self._stop.wait(0.05):
                started = time.perf_counter()
                file.write(b"x" * 4096)
                file.flush()
                os.fsync(file.fileno())
                self.times.append(time.perf_counter() - started)

    def __enter__(self) -> _FsyncProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _p99_ms(server: ServerProcess, seconds: float) -> tuple[float, float, int]:
    """p99 latency (ms) of GET /api/health and of a progress POST over ``seconds``,
    and the number of failed requests (timeouts count as failures)."""
    health: list[float] = []
    posts: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    progress = 0.0
    with requests.Session() as session:
        while time.monotonic() < deadline:
            for target, bucket in (("health", health), ("post", posts)):
                started = time.perf_counter()
                try:
                    if target == "health":
                        answer = session.get(f"{server.url}/api/health", timeout=5)
                    else:
                        progress = (progress + 0.1) % 100
                        answer = session.post(
                            f"{server.url}/api/jobs/good/progress",
                            json={"workerId": "good", "progress": progress},
                            timeout=5,
                        )
                    answer.raise_for_status()
                except requests.RequestException:
                    failures += 1
                    bucket.append(5.0)
                    continue
                bucket.append(time.perf_counter() - started)
            time.sleep(0.02)
    return _p99(health), _p99(posts), failures


def _p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100)[98] * 1000


# -- attackers ---------------------------------------------------------------------


class _Slowloris:
    """``count`` sockets that each send a request head one line at a time, every
    ``every`` seconds, reopening any the server closes, until stopped."""

    def __init__(self, where: tuple[str, int], count: int, every: float = 5.0) -> None:
        self.where = where
        self.sources = _addresses(40)
        self.count = count
        self.every = every
        self.opened = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, index: int) -> socket.socket | None:
        try:
            sock = socket.create_connection(
                self.where, timeout=5, source_address=(self.sources[index % 40], 0)
            )
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            self.opened += 1
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        socks: dict[int, socket.socket] = {}
        for i in range(self.count):
            sock = self._open(i)
            if sock is not None:
                socks[i] = sock
                selector.register(sock, selectors.EVENT_READ, i)
        next_line = time.monotonic() + self.every
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                index = key.data
                sock = socks.pop(index)
                selector.unregister(sock)
                with contextlib.suppress(OSError):
                    sock.recv(65536)
                sock.close()
                self.closed_by_server += 1
                fresh = self._open(index)
                if fresh is not None:
                    socks[index] = fresh
                    selector.register(fresh, selectors.EVENT_READ, index)
            if time.monotonic() >= next_line:
                next_line += self.every
                for sock in socks.values():
                    with contextlib.suppress(OSError):
                        sock.send(b"X-Slow: 1\r\n")
        for sock in socks.values():
            sock.close()

    def __enter__(self) -> _Slowloris:
        self._thread.start()
        time.sleep(2.0)  # most sockets are open before the timing starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


ATTACKER_NICE = 10
"""The attacker process's niceness: the timed client and the server come first."""


def _loris_process(where: tuple[str, int], count: int, stop: Any, opened: Any, closed: Any) -> None:
    """A child process's body: a slowloris until ``stop`` is set (see :func:`_slowloris`)."""
    os.nice(ATTACKER_NICE)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with _Slowloris(where, count) as loris:
        stop.wait(600)
    opened.value, closed.value = loris.opened, loris.closed_by_server


@contextlib.contextmanager
def _slowloris(server: ServerProcess, count: int) -> Iterator[Callable[[], tuple[int, int]]]:
    """A :class:`_Slowloris` in a process of its own, niced, so that the attacker's
    work (reopening thousands of sockets at once) neither holds the timed
    client's interpreter lock nor outranks it for the CPU; yields a reader of
    (sockets opened, sockets the server cut), valid once the block ends."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    opened, closed = context.Value("i", 0), context.Value("i", 0)
    child = context.Process(
        target=_loris_process, args=(_host_port(server), count, stop, opened, closed)
    )
    child.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _server_connections(server) < count * 0.9:
            time.sleep(0.2)  # most sockets are open before the timing starts
        yield lambda: (opened.value, closed.value)
    finally:
        stop.set()
        child.join(60)


def _server_connections(server: ServerProcess) -> int:
    """Established TCP connections to the server's port (both ends on loopback count once)."""
    port = _host_port(server)[1]
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


def _idle_websockets(server: ServerProcess, count: int) -> tuple[list[socket.socket], int]:
    """Open ``count`` WebSockets (12 source addresses) that then say nothing;
    returns the open sockets and how many were refused."""
    where = _host_port(server)
    sources = _addresses(12, "127.0.2.")
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{where[1]}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    opened: list[socket.socket] = []
    refused = 0
    for i in range(count):
        try:
            sock = socket.create_connection(where, timeout=10, source_address=(sources[i % 12], 0))
            sock.sendall(request)
            head = sock.recv(4096)
        except OSError:
            refused += 1
            continue
        if head.startswith(b"HTTP/1.1 101"):
            opened.append(sock)
        else:
            refused += 1
            sock.close()
    return opened, refused


def _starvation_rows(quick: bool) -> list[Row]:
    seconds = 5.0 if quick else 15.0
    n_loris, n_idle = (500, 600) if quick else (2_000, 3_000)
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "db")) as server,
    ):
        requests.put(f"{server.url}/api/jobs/good", json={}, timeout=5).raise_for_status()
        with _FsyncProbe(Path(tmp)) as probe:
            base_health, base_post, base_failed = _p99_ms(server, seconds)
        rows.append(
            _p99_row("no attack (baseline)", base_health, base_post, base_failed, 1.0, probe.times)
        )
        with _slowloris(server, n_loris) as loris, _FsyncProbe(Path(tmp)) as probe:
            health, post, failed = _p99_ms(server, seconds)
        opened, cut = loris()
        rows.append(
            _p99_row(
                f"{n_loris:,}-socket slowloris, attacker in a process of its own at nice "
                f"{ATTACKER_NICE} ({opened:,} opened, {cut:,} cut by the server)",
                health,
                post,
                failed,
                max(health, post) / max(base_health, base_post),
                probe.times,
            )
        )
        sockets, refused = _idle_websockets(server, n_idle)
        try:
            with _FsyncProbe(Path(tmp)) as probe:
                health, post, failed = _p99_ms(server, seconds)
        finally:
            for sock in sockets:
                sock.close()
        rows.append(
            _p99_row(
                f"{n_idle:,} idle WebSockets ({len(sockets):,} open, {refused:,} refused)",
                health,
                post,
                failed,
                max(health, post) / max(base_health, base_post),
                probe.times,
            )
        )
        output = server.output()
    tracebacks = output.count("Traceback")
    rows.append(
        Row("attacks", "tracebacks in the server's log", f"{tracebacks}", None, "0 (no loop)")
    )
    return rows


def _p99_row(
    what: str, health: float, post: float, failed: int, ratio: float, fsyncs: list[float]
) -> Row:
    figure = f"health p99 {health:.1f} ms, POST p99 {post:.1f} ms, {failed} failed"
    note = f"4 KiB write + fsync on the same disk meanwhile: p99 {_p99(fsyncs):.1f} ms"
    return Row("attacks", what, figure, ratio, f"p99 < {P99_GOAL_MS:.0f} ms, 0 failed", note)


# -- memory ------------------------------------------------------------------------


@contextlib.contextmanager
def _peak_rss(pid: int) -> Iterator[Callable[[], float]]:
    """Sample ``pid``'s RSS every 0.1 s while the block runs; yields a reader of the peak."""
    peak = [rss_mb(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(OSError, RuntimeError):
                peak[0] = max(peak[0], rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join(5)


def _deaf(server: ServerProcess) -> socket.socket:
    """A TCP connection that takes as little as the kernel lets it (4 KiB receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(_host_port(server))
    return sock


def _deaf_subscriber(server: ServerProcess, job: str, since: int | None) -> socket.socket:
    import json

    sock = _deaf(server)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.recv(4096)
    body = {"type": "subscribe:job", "subscriptionId": job}
    if since is not None:
        body["since"] = since
    payload = json.dumps(body).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


def _post_lines(url: str, job: str, megabytes: int, lines: int) -> None:
    body = {
        "workerId": "w",
        "progress": 1,
        "logLines": [{"level": "info", "message": LINE} for _ in range(lines)],
    }
    per_post = lines * len(LINE)
    with requests.Session() as session:
        for _ in range(megabytes * 1_000_000 // per_post):
            session.post(f"{url}/api/jobs/{job}/progress", json=body, timeout=60).raise_for_status()


def _memory_rows(quick: bool) -> list[Row]:
    log_mb, event_mb, n_results = (20, 20, 60) if quick else (100, 200, 300)
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "db")) as server,
    ):
        pid = worker_pid(server)
        url = server.url
        requests.put(f"{url}/api/jobs/bomb", json={}, timeout=5)
        _post_lines(url, "bomb", log_mb, 30)
        requests.put(f"{url}/api/jobs/stream", json={}, timeout=5)
        with requests.Session() as session:
            for i in range(n_results):
                session.put(f"{url}/api/jobs/r{i}", json={}, timeout=5)
                session.post(
                    f"{url}/api/jobs/r{i}/complete",
                    json={"workerId": "w", "result": "r" * 1_000_000},
                    timeout=30,
                ).raise_for_status()
        time.sleep(1.0)
        start = rss_mb(pid)
        rows.append(
            Row("memory attacks", "worker RSS at rest (baseline)", f"{start:.0f} MB", 1.0, "")
        )

        with _peak_rss(pid) as peak:
            deaf = [_deaf_subscriber(server, "bomb", 0) for _ in range(6)]
            started = time.perf_counter()
            requests.get(f"{url}/api/jobs/bomb/monitor", timeout=30).raise_for_status()
            monitor_ms = (time.perf_counter() - started) * 1000
            time.sleep(35.0 if not quick else 5.0)  # past the 30 s send timeout
            for sock in deaf:
                sock.close()
        rows.append(
            _rss_row(
                f"6 deaf replays of {log_mb} MB of logs (since 0)",
                peak(),
                start,
                f"/monitor meanwhile {monitor_ms:.0f} ms",
            )
        )

        with _peak_rss(pid) as peak:
            deaf = [_deaf_subscriber(server, "stream", None) for _ in range(6)]
            time.sleep(0.5)
            _post_lines(url, "stream", event_mb, 64)  # ~1 MiB events
            for sock in deaf:
                sock.close()
        rows.append(_rss_row(f"6 deaf subscribers, {event_mb} MB of 1 MiB events", peak(), start))

        with _peak_rss(pid) as peak:
            readers = []
            for _ in range(6):
                sock = _deaf(server)
                sock.sendall(b"GET /api/jobs?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                readers.append(sock)
            time.sleep(5.0)
            for sock in readers:
                sock.close()
        rows.append(
            _rss_row(
                f"6 deaf readers of GET /api/jobs?limit=1000 ({n_results} x 1 MB)", peak(), start
            )
        )
        time.sleep(3.0)
        after = rss_mb(pid)
        rows.append(
            Row(
                "memory attacks",
                "worker RSS after the attacks",
                f"{after:.0f} MB",
                after / start,
                "within 20 % of the start (<= 1.20x)",
            )
        )
    return rows


def _rss_row(what: str, peak: float, start: float, note: str = "") -> Row:
    return Row(
        "memory attacks", what, f"peak {peak:.0f} MB", peak / start, f"< {RSS_GOAL_MB:.0f} MB", note
    )


# -- hostile jobs ------------------------------------------------------------------

WIDE = "\U0001f600" * 1024
"""1,024 four-byte characters: the most text a name or an operation may hold."""


def _health_p99_during(server: ServerProcess, attack: Callable[[], object]) -> tuple[float, float]:
    """(/api/health p99 in ms, the attack's seconds) while ``attack`` runs in a thread."""
    done = threading.Event()
    times: list[float] = []

    def run_attack() -> None:
        try:
            attack()
        finally:
            done.set()

    with requests.Session() as session:
        # untimed: the process's first answer (imports, the first connection) is no attack's
        session.get(f"{server.url}/api/health", timeout=30).raise_for_status()
        started = time.perf_counter()
        thread = threading.Thread(target=run_attack, daemon=True)
        thread.start()
        while not done.is_set() or len(times) < 20:
            t0 = time.perf_counter()
            try:
                session.get(f"{server.url}/api/health", timeout=30).raise_for_status()
                times.append(time.perf_counter() - t0)
            except requests.RequestException:
                times.append(30.0)
            time.sleep(0.02)
    thread.join(120)
    return _p99(times), time.perf_counter() - started


def _fleet_first_pages(server: ServerProcess) -> int:
    """Subscribe to the fleet and read its first pages; how many summaries came."""
    import json

    import websocket

    ws = websocket.create_connection(server.ws_url, timeout=30)
    try:
        ws.send(json.dumps({"type": "subscribe:jobs"}))
        ws.settimeout(3.0)
        count = 0
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            while True:
                message = json.loads(ws.recv())
                if message.get("type") == "JOBS_CHANGED":
                    count += len(message["data"]["jobs"])
        return count
    finally:
        ws.close()


def _hostile_job_rows(quick: bool) -> list[Row]:
    n_wide, n_results, n_subscribes, n_gpu_jobs = (
        (200, 100, 300, 3) if quick else (700, 1000, 1000, 10)
    )
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "db")) as server,
    ):
        pid, url = worker_pid(server), server.url
        base, _ = _health_p99_during(server, lambda: time.sleep(2.0))
        start = rss_mb(pid)
        rows.append(
            Row(
                "hostile jobs",
                "no attack (baseline)",
                f"health p99 {base:.1f} ms, RSS {start:.0f} MB",
                1.0,
                f"p99 < {P99_GOAL_MS:.0f} ms",
            )
        )
        with requests.Session() as session:
            for i in range(n_wide):
                session.put(f"{url}/api/jobs/wide{i}", json={"name": WIDE}, timeout=30)
                session.post(
                    f"{url}/api/jobs/wide{i}/progress",
                    json={"workerId": WIDE[:256], "progress": 1, "currentOperation": WIDE},
                    timeout=30,
                )
        got: list[int] = []
        with _peak_rss(pid) as peak:
            p99, _ = _health_p99_during(server, lambda: got.append(_fleet_first_pages(server)))
        rows.append(
            _hostile_row(
                f"fleet subscriber over {n_wide} jobs of 4 KiB names/operations "
                f"({got[0] if got else 0} summaries received)",
                p99,
                peak(),
                start,
            )
        )

        with requests.Session() as session:
            for i in range(n_results):
                session.put(f"{url}/api/jobs/res{i}", json={}, timeout=30)
                session.post(
                    f"{url}/api/jobs/res{i}/complete",
                    json={"workerId": "w", "result": "r" * 1_000_000},
                    timeout=60,
                )
        with _peak_rss(pid) as peak:
            p99, _ = _health_p99_during(server, lambda: _fleet_first_pages(server))
        rows.append(
            _hostile_row(
                f"one fleet subscription over {n_results} jobs of 1 MB results", p99, peak(), start
            )
        )

        def deaf_subscribes() -> None:
            sock = _deaf_subscriber(server, "res0", 0)
            for _ in range(n_subscribes - 1):
                import json

                payload = json.dumps(
                    {"type": "subscribe:job", "subscriptionId": "res0", "since": 0}
                ).encode()
                mask = os.urandom(4)
                sock.sendall(
                    bytes([0x81, 0x80 | len(payload)])
                    + mask
                    + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                )
            time.sleep(3.0)
            sock.close()

        with _peak_rss(pid) as peak:
            p99, _ = _health_p99_during(server, deaf_subscribes)
        rows.append(
            _hostile_row(
                f"a deaf socket sends {n_subscribes} subscribe:job to a 1 MB-result job",
                p99,
                peak(),
                start,
            )
        )

        gpus = [{"index": i, "gpuUtilization": 50, "powerUsage": 100} for i in range(1024)]
        with requests.Session() as session:
            for i in range(n_gpu_jobs):
                session.put(f"{url}/api/jobs/gpu{i}", json={"name": WIDE}, timeout=30)
                session.post(
                    f"{url}/api/jobs/gpu{i}/progress",
                    json={"workerId": WIDE[:256], "progress": 1, "metrics": {"gpus": gpus}},
                    timeout=30,
                )
        size = [0]

        def scrape() -> None:
            size[0] = len(requests.get(f"{url}/api/prometheus", timeout=120).content)

        with _peak_rss(pid) as peak:
            p99, seconds = _health_p99_during(server, scrape)
        rows.append(
            _hostile_row(
                f"/api/prometheus with {n_gpu_jobs} running jobs of 1,024 GPUs "
                f"({size[0] / 1e6:.1f} MB in {seconds:.1f} s)",
                p99,
                peak(),
                start,
            )
        )
    return rows


def _hostile_row(what: str, p99: float, peak: float, start: float) -> Row:
    return Row(
        "hostile jobs",
        what,
        f"health p99 {p99:.1f} ms, RSS peak {peak:.0f} MB",
        peak / start,
        f"p99 < {P99_GOAL_MS:.0f} ms, RSS < {RSS_GOAL_MB:.0f} MB",
    )


def run(quick: bool) -> list[Row]:
    """The starvation, memory and hostile-job rows (see the module doc)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker needs sockets
    return _starvation_rows(quick) + _memory_rows(quick) + _hostile_job_rows(quick)
