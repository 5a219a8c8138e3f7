"""Fan-out of one event to many WebSocket subscribers (jobwatch.server.web.ws.frames,
LockedSocket.try_send, Session.deliver's direct write, MemoryBroker's dispatcher).

An event's frame is built once for every plain connection, written straight to
idle ones without waiting; what a socket's buffer cannot take is left to the
connection's sender, ahead of everything else, so order and whole frames hold.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
import websocket
import wsproto.frame_protocol as fp

from jobwatch.server.core.serialize import Event
from jobwatch.server.events.broker import MemoryBroker
from jobwatch.server.web.ws import frames
from jobwatch.server.web.ws.send_lock import LockedSocket


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_text_frame_is_what_wsproto_writes(n: int) -> None:
    payload = ("é" * (n // 2) + "x" * (n % 2)).encode()
    proto = fp.FrameProtocol(client=False, extensions=[])
    assert frames.text_frame(payload) == proto.send_data(payload.decode(), fin=True)


def _post(api: Any, job_id: str, **body: Any) -> None:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", **body})
    assert r.status_code == 200, r.text


def test_an_event_is_framed_once_for_all_subscribers(
    api: Any, ws_factory: Any, make_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = make_job()["id"]
    clients = [ws_factory() for _ in range(20)]
    for client in clients:
        assert client.subscribe(job_id)["type"] == "subscribed"
    framed: list[bytes] = []
    original = frames.text_frame

    def counting(payload: bytes) -> bytes:
        framed.append(payload)
        return original(payload)

    monkeypatch.setattr(frames, "text_frame", counting)
    _post(api, job_id, progress=42)
    for client in clients:
        events = client.recv_until(lambda m: m["type"] == "JOB_PROGRESS")
        assert events[-1]["data"]["progress"] == 42
    assert len([p for p in framed if b"JOB_PROGRESS" in p]) == 1


def test_a_compressing_connection_still_gets_its_own_frames(
    server: Any, api: Any, make_job: Any
) -> None:
    job_id = make_job()["id"]
    plain = websocket.create_connection(server.ws_url, timeout=5)
    deflate = websocket.create_connection(
        server.ws_url, timeout=5, header=["Sec-WebSocket-Extensions: permessage-deflate"]
    )
    assert "permessage-deflate" in deflate.getheaders().get("sec-websocket-extensions", "")
    subscribe = json.dumps({"type": "subscribe:job", "subscriptionId": job_id})
    plain.send(subscribe)
    assert b"subscribed" in plain.recv_data()[1]
    # websocket-client does not inflate: read the frames raw
    deflate.send(subscribe)
    deflate.sock.settimeout(5)
    assert deflate.sock.recv(65536)[0] == 0xC1  # the compressed "subscribed"
    _post(api, job_id, progress=7)
    assert b"JOB_PROGRESS" in plain.recv_data()[1]
    head = deflate.sock.recv(65536)
    assert head[0] == 0xC1  # FIN, RSV1 (compressed), text
    assert b"JOB_PROGRESS" not in head
    plain.close()
    deflate.close()


def test_try_send_keeps_the_remainder_and_writes_it_first() -> None:
    reader, writer = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock = LockedSocket(writer)
    big = b"A" * 1_000_000
    assert sock.try_send(big) is False  # the buffer took part of it
    assert 0 < sock.pending() < len(big)
    assert sock.try_send(b"C") is None  # nothing overtakes the remainder
    received = bytearray()

    def read() -> None:
        reader.settimeout(5)
        while len(received) < len(big) + 1:
            chunk = reader.recv(65536)
            if not chunk:
                break
            received.extend(chunk)

    thread = threading.Thread(target=read)
    thread.start()
    sock.send(b"B")  # e.g. a ping from simple-websocket's thread
    thread.join(10)
    assert bytes(received) == big + b"B"
    assert sock.pending() == 0
    assert sock.try_send(b"D") is True
    assert reader.recv(10) == b"D"
    reader.close()
    writer.close()


def test_a_slow_subscriber_gets_everything_in_order(
    server: Any, api: Any, ws_factory: Any, make_job: Any
) -> None:
    job_id = make_job()["id"]
    fast = ws_factory()
    assert fast.subscribe(job_id)["type"] == "subscribed"
    slow = websocket.WebSocket()
    slow.sock_opt.sockopt = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
    slow.connect(server.ws_url, timeout=10)
    slow.send(json.dumps({"type": "subscribe:job", "subscriptionId": job_id}))
    assert b"subscribed" in slow.recv_data()[1]
    lines = [{"level": "info", "message": f"line {i} " + "x" * 200} for i in range(300)]
    for i in range(20):  # ~70 kB each: the slow socket's buffers fill after a few
        _post(api, job_id, progress=i + 1, logLines=lines)
    seqs = []
    while len(seqs) < 20:
        message = slow.recv()
        if '"JOB_PROGRESS"' in message:
            seqs.append(json.loads(message)["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    slow.close()


def test_the_dispatcher_delivers_in_order_after_publish_returns() -> None:
    broker = MemoryBroker(dispatch=True)
    got: list[int] = []
    done = threading.Event()

    class Subscriber:
        def deliver(self, job_id: str, seq: int, message: bytes) -> None:
            got.append(seq)
            if seq == 100:
                done.set()

        def resync(self, job_id: str, seq: int) -> None:
            pass

    broker.subscribe("j", Subscriber())
    for seq in range(1, 101):
        broker.publish([Event("j", seq, "JOB_PROGRESS", {})])
    assert done.wait(5)
    assert got == list(range(1, 101))
    broker.close()
