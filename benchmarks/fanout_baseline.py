"""The fan-out benchmark's yardstick: a minimal threaded flask-sock broadcaster.

What an application written in an afternoon would do: one Flask app, a
flask-sock route that answers ``subscribed`` and keeps the connection in a set,
and a ``POST`` that serialises the progress event once and calls ``ws.send``
on every connection in turn, under Werkzeug's threaded server. No durable
commit, no queues, no ordering or slow-subscriber guarantees: a floor for the
cost of the same deliveries through the same libraries.

Run: ``python -m benchmarks.fanout_baseline`` (prints ``serving on http://...``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask, request
from flask_sock import Sock
from werkzeug.serving import make_server


def create_app() -> Flask:
    """The broadcaster: ``PUT /api/jobs/<id>``, ``POST .../progress`` and ``/ws``."""
    app = Flask(__name__)
    sock = Sock(app)
    lock = threading.Lock()
    subscribers: dict[str, set[Any]] = {}
    seqs: dict[str, int] = {}

    @app.put("/api/jobs/<job_id>")
    def create(job_id: str) -> dict[str, Any]:
        return {"jobId": job_id}

    @app.post("/api/jobs/<job_id>/progress")
    def progress(job_id: str) -> dict[str, Any]:
        body = request.get_json()
        with lock:
            seqs[job_id] = seq = seqs.get(job_id, 0) + 1
            targets = list(subscribers.get(job_id, ()))
        event = {"type": "JOB_PROGRESS", "jobId": job_id, "seq": seq, "data": body}
        text = json.dumps(event)
        for ws in targets:
            try:
                ws.send(text)
            except Exception:  # a closed subscriber is simply dropped
                with lock:
                    subscribers.get(job_id, set()).discard(ws)
        return {"seq": seq}

    @sock.route("/ws")
    def ws_route(ws: Any) -> None:
        job_id = json.loads(ws.receive())["subscriptionId"]
        ws.send(json.dumps({"type": "subscribed", "subscriptionId": job_id, "seq": 0}))
        with lock:
            subscribers.setdefault(job_id, set()).add(ws)
        try:
            while ws.receive() is not None:
                pass
        except Exception:  # the connection closed
            pass
        finally:
            with lock:
                subscribers.get(job_id, set()).discard(ws)

    return app


def main() -> None:
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    print(f"serving on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
