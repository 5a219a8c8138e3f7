"""Idle subscriptions: a quiet WebSocket stays open through a proxy that cuts
connections idle for 60 s, because the server pings (every 25 s as shipped).

The control shows what the long test proves: with the pings far apart, the
same kind of proxy does cut the quiet connection, and the subscription comes
back by itself without losing the next event.
"""

from __future__ import annotations

import queue
import selectors
import socket
import threading
import time
from typing import Any

import pytest
import requests

from jobwatch.server import EmbeddedServer
from jobwatch.server.process import ServerProcess, serve_command
from jobwatch.subscription import Subscription

QUIET_SECONDS = 630.0
"""How long the long test's subscription stays without events (10 min 30 s)."""
PROXY_IDLE_TIMEOUT = 60.0
"""A common load-balancer idle timeout (AWS ALB's default is 60 s)."""
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


def _post_progress(url: str, job_id: str, progress: float) -> int:
    """One progress update; the ``seq`` of its ``JOB_PROGRESS`` (no log lines: the last seq)."""
    body = {"workerId": "idle-worker", "progress": progress, "currentOperation": "awake"}
    response = requests.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=10)
    assert response.status_code == 200, response.text
    seq: int = response.json()["seq"]
    return seq


def _create_job(url: str, job_id: str) -> None:
    response = requests.put(f"{url}/api/jobs/{job_id}", json={}, timeout=10)
    assert response.status_code == 201, response.text


def _target(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.mark.slow
def test_a_quiet_subscription_stays_open_10_minutes_through_a_60_s_idle_proxy(tmp_path):
    server = ServerProcess(serve_command(tmp_path / "idle.db"))
    proxy = IdleProxy(_target(server.url), PROXY_IDLE_TIMEOUT)
    follower = None
    try:
        _create_job(server.url, "quiet")
        follower = Follower(proxy.ws_url(), "quiet")
        follower.wait_live()
        started = time.monotonic()
        next_report = started + 120
        while (quiet := time.monotonic() - started) < QUIET_SECONDS:
            assert follower.states == ["live"], f"after {quiet:.0f} s: {follower.states}"
            assert proxy.idle_closes == 0, f"the proxy cut the connection after {quiet:.0f} s"
            assert proxy.accepted == 1
            assert follower.events.empty(), follower.events.get()
            if time.monotonic() >= next_report:
                print(
                    f"[idle] {quiet:.0f} s quiet: live, 1 connection, longest gap "
                    f"{proxy.longest_quiet:.1f} s",
                    flush=True,
                )
                next_report += 120
            time.sleep(1.0)

        seq = _post_progress(server.url, "quiet", 42.0)
        event = follower.next_event(EVENT_TIMEOUT)
        assert (event["type"], event["seq"], event["data"]["progress"]) == ("JOB_PROGRESS", seq, 42)
        assert follower.states == ["live"]
        assert follower.subscription.reconnects == 0
        assert (proxy.accepted, proxy.idle_closes) == (1, 0)
        # the server's pings (every 25 s, with slack for a busy machine) kept bytes flowing
        assert proxy.longest_quiet < 40.0, proxy.longest_quiet
    finally:
        if follower is not None:
            follower.close()
        proxy.close()
        server.stop()


def test_without_pings_the_proxy_cuts_the_quiet_connection_and_the_next_event_still_arrives():
    with EmbeddedServer(config={"WS_PING_INTERVAL": 600}) as server:
        proxy = IdleProxy(_target(server.url), idle_timeout=2.0)
        follower = None
        try:
            _create_job(server.url, "unpinged")
            follower = Follower(proxy.ws_url(), "unpinged")
            follower.wait_live()
            deadline = time.monotonic() + 15
            while proxy.idle_closes == 0 or follower.states[:3] != ["live", "reconnecting", "live"]:
                assert time.monotonic() < deadline, (proxy.idle_closes, follower.states)
                time.sleep(0.05)
            assert follower.subscription.reconnects >= 1

            seq = _post_progress(server.url, "unpinged", 7.0)
            event = follower.next_event(EVENT_TIMEOUT)
            assert (event["type"], event["seq"]) == ("JOB_PROGRESS", seq)
            assert proxy.accepted >= 2
        finally:
            if follower is not None:
                follower.close()
            proxy.close()
