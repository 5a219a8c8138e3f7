"""A TCP proxy that cuts idle connections, and a subscription followed through it:
the parts of tests/system/test_idle.py, shared with its soak (benchmarks/idle.py)."""

from __future__ import annotations

import math
import queue
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from jobwatch.client.subscription import Subscription

EVENT_TIMEOUT = 5.0
"""Seconds an event may take to arrive once posted."""


class IdleProxy:
    """A TCP proxy on 127.0.0.1 that forwards bytes both ways to ``target`` and
    closes a connection after ``idle_timeout`` seconds without a byte either way.

    Attributes
    ----------
    accepted:
        Connections accepted so far.
    idle_closes:
        Connections it closed for idleness.
    longest_quiet:
        Longest time (seconds) any connection went without a byte.
    """

    def __init__(self, target: tuple[str, int], idle_timeout: float) -> None:
        self.target = target
        self.idle_timeout = idle_timeout
        self.accepted = 0
        self.idle_closes = 0
        self.longest_quiet = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            thread = threading.Thread(target=self._forward, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        peers = {client: upstream, upstream: client}
        last_byte = time.monotonic()
        with selectors.DefaultSelector() as selector, client, upstream:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                quiet = time.monotonic() - last_byte
                if quiet >= self.idle_timeout:
                    with self._lock:
                        self.idle_closes += 1
                    return
                for key, _ in selector.select(min(0.2, self.idle_timeout - quiet)):
                    sock: Any = key.fileobj
                    try:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        return  # one side closed: close both
                    now = time.monotonic()
                    with self._lock:
                        self.longest_quiet = max(self.longest_quiet, now - last_byte)
                    last_byte = now

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)


class Follower:
    """A :class:`Subscription` through the proxy, iterated in a thread; records
    its state changes and queues its events."""

    def __init__(self, ws_url: str, job_id: str) -> None:
        self.states: list[str] = []
        self.events: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()
        self.subscription = Subscription(ws_url, job_id, on_state=self.states.append)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.subscription:
                self.events.put(event)
        except BaseException as exc:
            self.events.put(exc)

    def wait_live(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.subscription.state != "live":
            assert time.monotonic() < deadline, f"not live after {timeout} s: {self.states}"
            time.sleep(0.05)

    def next_event(self, timeout: float) -> dict[str, Any]:
        item = self.events.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.subscription.close()
        self._thread.join(5)


def post_progress(url: str, job_id: str, progress: float) -> int:
    """One progress update; the ``seq`` of its ``JOB_PROGRESS`` (no log lines: the last seq)."""
    body = {"workerId": "idle-worker", "progress": progress, "currentOperation": "awake"}
    response = requests.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=10)
    assert response.status_code == 200, response.text
    seq: int = response.json()["seq"]
    return seq


def create_job(url: str, job_id: str) -> None:
    """``PUT /api/jobs/{job_id}`` on the server at ``url``; it must create the job."""
    response = requests.put(f"{url}/api/jobs/{job_id}", json={}, timeout=10)
    assert response.status_code == 201, response.text


def target(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``http://host:port`` URL."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@dataclass(frozen=True)
class QuietRun:
    """What :func:`stay_quiet` saw: the proxy's counters, the subscription's
    reconnects and state changes, and the event posted after the quiet time."""

    accepted: int
    idle_closes: int
    longest_quiet: float
    reconnects: int
    states: list[str]
    event: dict[str, Any]
    seq: int


def stay_quiet(
    server_url: str,
    proxy_idle_timeout: float,
    quiet_seconds: float,
    *,
    report_every: float | None = None,
) -> QuietRun:
    """Follow a new job through an :class:`IdleProxy` that cuts connections idle
    for ``proxy_idle_timeout`` seconds, send it nothing for ``quiet_seconds``,
    then post one progress update and wait for its event.

    Every quarter second of the quiet time it checks that the subscription is
    still live on its first connection and received nothing (an
    ``AssertionError`` says when it stopped being so). ``report_every``
    (seconds): print how it is going that often (the long soak).
    """
    proxy = IdleProxy(target(server_url), proxy_idle_timeout)
    follower = None
    try:
        create_job(server_url, "quiet")
        follower = Follower(proxy.ws_url(), "quiet")
        follower.wait_live()
        started = time.monotonic()
        next_report = started + (report_every or math.inf)
        while (quiet := time.monotonic() - started) < quiet_seconds:
            assert follower.states == ["live"], f"after {quiet:.1f} s: {follower.states}"
            assert proxy.idle_closes == 0, f"the proxy cut the connection after {quiet:.1f} s"
            assert proxy.accepted == 1
            assert follower.events.empty(), follower.events.get()
            if time.monotonic() >= next_report:
                print(
                    f"[idle] {quiet:.0f} s quiet: live, 1 connection, longest gap "
                    f"{proxy.longest_quiet:.1f} s",
                    flush=True,
                )
                next_report += report_every or math.inf
            time.sleep(0.25)

        seq = post_progress(server_url, "quiet", 42.0)
        event = follower.next_event(EVENT_TIMEOUT)
        return QuietRun(
            accepted=proxy.accepted,
            idle_closes=proxy.idle_closes,
            longest_quiet=proxy.longest_quiet,
            reconnects=follower.subscription.reconnects,
            states=list(follower.states),
            event=event,
            seq=seq,
        )
    finally:
        if follower is not None:
            follower.close()
        proxy.close()
