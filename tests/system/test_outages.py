"""Reliability under failure: a 30 s server outage under a training loop, and
stuck or killed subscribers beside healthy ones."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
import websocket

from jobwatch import Client, Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_a_30_second_outage_never_blocks_the_loop_and_loses_nothing(tmp_path):
    port = free_port()
    config = {"DATABASE": str(tmp_path / "jobs.db")}
    server = EmbeddedServer(port=port, config=config)
    url = server.url
    reporter = Reporter("outage", url=url, gpu=False, interval=0.2)
    worst, sent, started = 0.0, 0, time.monotonic()
    down_at, up_at = 3.0, 33.0
    try:
        while (elapsed := time.monotonic() - started) < 38.0:
            if server is not None and elapsed >= down_at and not server.stopped:
                server.stop()
            if server is not None and server.stopped and elapsed >= up_at:
                server = EmbeddedServer(port=port, config=config)
            t0 = time.perf_counter()
            reporter.update(min(99.0, elapsed * 2.5), f"step {sent}")
            reporter.log(f"line {sent}")
            worst = max(worst, time.perf_counter() - t0)
            sent += 1
            time.sleep(0.05)
        assert reporter.complete({"lines": sent}, timeout=60)
    finally:
        reporter.close(timeout=5)
    try:
        with Client(url) as client:
            logs: list[str] = []
            while len(logs) < client.logs("outage", limit=1)["total"]:
                page = client.logs("outage", limit=1000, offset=len(logs))["logs"]
                logs += [line["message"] for line in page]
            job = client.get_job("outage")
    finally:
        server.stop()
    assert logs == [f"line {i}" for i in range(sent)]
    assert job["status"] == "completed" and job["result"] == {"lines": sent}
    assert worst < 1.0, f"update()/log() waited {worst:.3f} s: the loop was blocked"


SUBSCRIBER = """
import json, sys, time, websocket
ws = websocket.create_connection(sys.argv[1], timeout=10)
ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": sys.argv[2]}))
ws.recv()
print("ready", flush=True)
time.sleep(3600)
"""


def test_stuck_and_killed_subscribers_do_not_delay_workers_or_healthy_ones():
    with EmbeddedServer(config={"WS_QUEUE_SIZE": 64}) as server:
        requests.put(f"{server.url}/api/jobs/busy", json={}, timeout=5)
        healthy: list[list[int]] = [[] for _ in range(10)]

        def read(into: list[int]) -> None:
            for event in Client(server.url).subscribe("busy"):
                if event["type"] == "JOB_PROGRESS":
                    into.append(event["seq"])

        readers = [threading.Thread(target=read, args=(into,), daemon=True) for into in healthy]
        for thread in readers:
            thread.start()
        stuck = websocket.create_connection(
            server.ws_url, timeout=10, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
        )
        stuck.send(json.dumps({"type": "subscribe:job", "subscriptionId": "busy"}))
        stuck.recv()  # then never reads again
        killed = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, server.ws_url, "busy"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert killed.stdout is not None and killed.stdout.readline().strip() == "ready"
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)
        time.sleep(0.5)
        for _ in range(100):
            if server.services.broker.subscriber_count("busy") >= 12:
                break
            time.sleep(0.05)

        # Random hex: deflate only halves it, so 150 updates of 4 x 15 KB (about 4.5 MB
        # compressed) overflow any kernel send buffer (tcp_wmem at most 4 MB).
        noise = os.urandom(7500).hex()
        posts: list[float] = []
        with requests.Session() as session:
            for i in range(1, 151):
                t0 = time.perf_counter()
                answer = session.post(
                    f"{server.url}/api/jobs/busy/progress",
                    json={
                        "workerId": "w",
                        "progress": i / 4,
                        "logLines": [
                            {"level": "info", "message": f"{i}.{k} {noise}"} for k in range(4)
                        ],
                    },
                    timeout=10,
                )
                posts.append(time.perf_counter() - t0)
                assert answer.status_code == 200
        requests.post(f"{server.url}/api/jobs/busy/complete", json={"workerId": "w"}, timeout=5)
        for thread in readers:
            thread.join(20)
        expected = list(range(1, 301, 2))  # each update is a JOB_PROGRESS then a JOB_LOGS
        for into in healthy:
            assert into == expected  # every update, in order, to each healthy subscriber
        posts.sort()
        assert posts[-1] < 5.0, (
            "a worker's POST waited on a subscriber"
        )  # no wait: sends never block
        # The server dropped both: the stuck one when its send queue filled, the dead one
        # when its socket failed; only the 10 healthy subscriptions remain until they end.
        deadline = time.monotonic() + 15
        while server.services.broker.subscriber_count("busy") > 0:
            assert time.monotonic() < deadline, server.services.broker.subscriber_count("busy")
            time.sleep(0.1)
        # A client that reads again finds the 1008 close frame and its reason after the
        # backlog, unless the server had to cut the socket (it waits 5 s for the peer).
        stuck.settimeout(10)
        closes: list[bytes] = []
        try:
            while True:
                opcode, data = stuck.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    closes.append(data)
                    break
        except (websocket.WebSocketException, OSError):
            pass  # cut: the connection is gone either way
        for frame in closes:
            assert int.from_bytes(frame[:2], "big") == 1008 and b"too slow" in frame[2:]
        stuck.close()


def test_the_monitor_resumes_across_a_server_restart(tmp_path):
    from jobwatch.notebook.monitor import JobMonitor

    port = free_port()
    config = {"DATABASE": str(tmp_path / "jobs.db")}
    server = EmbeddedServer(port=port, config=config)
    client = Client(server.url)
    client.create_job(job_id="restarting")
    for i in range(1, 6):
        client.report_progress(
            "restarting", "w", i, logs=[{"level": "info", "message": f"before {i}"}]
        )
    monitor = JobMonitor("restarting", server.url, widgets=True)
    try:
        deadline = time.monotonic() + 10
        while monitor.state.connection != "live":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # live: the follower's thread has made its subscription (it may not have
        # before; under load this read None)
        monitor._follower.subscription.backoff.base = 0.05
        server.stop()
        deadline = time.monotonic() + 10
        while monitor.state.connection != "reconnecting":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server = EmbeddedServer(port=port, config=config)
        for i in range(6, 11):
            client.report_progress(
                "restarting", "w", i * 10, logs=[{"level": "info", "message": f"after {i}"}]
            )
        deadline = time.monotonic() + 15
        while monitor.view.progress.value != 100.0:
            assert time.monotonic() < deadline, monitor.state.connection
            time.sleep(0.05)
        messages = [line["message"] for line in monitor.view.logs.lines]
        assert messages == [f"before {i}" for i in range(1, 6)] + [
            f"after {i}" for i in range(6, 11)
        ]
        assert monitor.state.connection == "live" and monitor._follower.subscription.reconnects == 1
    finally:
        monitor.close()
        server.stop()


def test_no_reconnect_storm_while_the_server_stays_down():
    from jobwatch.client.subscription import Subscription

    attempts: list[float] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def refuse() -> None:  # accepts and hangs up at once: a server that is down
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            attempts.append(time.monotonic())
            conn.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    subscription = Subscription(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", "job")
    reader = threading.Thread(target=lambda: list(subscription), daemon=True)
    started = time.monotonic()
    reader.start()
    time.sleep(8)
    subscription.close()
    reader.join(5)
    stop.set()
    thread.join(5)
    listener.close()
    # 0.25 s doubling to 30 s with full jitter: about 6 tries in 8 s on average; 12 would
    # need the 7th to 11th waits (ceilings 16-30 s) all near 0. Without backoff: thousands.
    assert 2 <= len(attempts) <= 12, [round(t - started, 2) for t in attempts]
    assert not reader.is_alive()
