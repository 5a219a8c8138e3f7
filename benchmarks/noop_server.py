"""The ingest baselines: a no-op Flask endpoint that parses the same body,
under exactly the gunicorn setup of ``jobwatch serve`` (one gevent worker), or
with ``--sync-workers N`` under gunicorn's defaults with N processes (what
``gunicorn -w 2 app`` runs: sync workers, one request at a time each).

Run: ``python -m benchmarks.noop_server --port 0 [--sync-workers 2]``
"""

from __future__ import annotations

import argparse
from typing import Any


def create_noop_app() -> Any:
    """A Flask app whose ``POST /api/jobs/<id>/progress`` parses JSON and answers."""
    from flask import Flask, jsonify, request

    app = Flask("noop")

    @app.post("/api/jobs/<job_id>/progress")
    def progress(job_id: str) -> Any:
        body = request.get_json()
        return jsonify({"success": True, "jobId": job_id, "progress": body["progress"]})

    return app


def main() -> None:
    from jobwatch.server.deploy.run import announce, gunicorn_options, gunicorn_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sync-workers", type=int, default=0)
    args = parser.parse_args()
    options = gunicorn_options("127.0.0.1", args.port)
    if args.sync_workers:
        options.update(workers=args.sync_workers, worker_class="sync")
        del options["worker_connections"]
    options["when_ready"] = announce("baseline: no-op Flask endpoint")
    gunicorn_server(options, create_noop_app).run()


if __name__ == "__main__":
    main()
