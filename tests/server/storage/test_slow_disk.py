"""``jobwatch serve`` on a slow disk: while a SQLite commit waits for the disk,
the worker goes on answering. The disk is made slow with a commit delay
(tests/slow_disk/sitecustomize.py); each commit holds its OS thread for
:data:`DELAY` seconds, as a slow ``fsync`` does. The p99 figures are measured
in ``benchmarks/slowdisk.py``; here only the order of the answers is asserted.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.paths import TESTS

pytestmark = pytest.mark.slow

DELAY = 1.5
"""Seconds each SQLite commit that writes waits: long against a loaded test machine."""
SLOW_DISK = TESTS / "slow_disk"


@pytest.fixture
def slow_server(tmp_path: Path):
    path = os.pathsep.join(filter(None, [str(SLOW_DISK), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "JOBWATCH_SLOW_COMMIT_S": str(DELAY)}
    server = ServerProcess(serve_command(tmp_path / "jobs.db"), env=env, startup_timeout=60)
    try:
        yield server
    finally:
        server.kill()


class _Update:
    """One progress update of ``job`` POSTed from a thread; ``done_at`` is when it
    was acknowledged (``None`` until then)."""

    def __init__(self, url: str, job: str) -> None:
        self.url, self.job = url, job
        self.done_at: float | None = None
        self._thread = threading.Thread(target=self._post)

    def _post(self) -> None:
        body = {"workerId": "w", "progress": 50.0, "currentOperation": "epoch 1"}
        reply = requests.post(f"{self.url}/api/jobs/{self.job}/progress", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        self.done_at = time.monotonic()

    def start(self) -> None:
        """Send it, and give it time to reach the wait under test."""
        self._thread.start()
        time.sleep(DELAY / 5)

    def join(self) -> None:
        self._thread.join(30)


def _reads(url: str, job: str) -> dict[str, float]:
    """When ``/api/health`` and the job's ``/monitor`` each answered (200)."""
    answered = {}
    for path in ("/api/health", f"/api/jobs/{job}/monitor"):
        reply = requests.get(f"{url}{path}", timeout=30)
        assert reply.status_code == 200, reply.text
        answered[path] = time.monotonic()
    return answered


def _answered_first(update: _Update, answered: dict[str, float], what: str) -> None:
    """The update was stored, after every read had answered."""
    assert update.done_at is not None  # the update itself was stored
    for path, at in answered.items():
        assert at < update.done_at, f"{path} waited for {what}"
    monitor = requests.get(f"{update.url}/api/jobs/{update.job}/monitor", timeout=30).json()
    assert monitor["job"]["progress"] == 50.0


def test_reads_answer_while_a_commit_waits_for_the_disk(slow_server: ServerProcess) -> None:
    url = slow_server.url
    started = time.monotonic()
    assert requests.put(f"{url}/api/jobs/slow", json={}, timeout=30).status_code == 201
    assert time.monotonic() - started >= DELAY  # the commit delay is in force
    update = _Update(url, "slow")
    update.start()  # its commit is now waiting for the disk
    answered = _reads(url, "slow")
    update.join()
    _answered_first(update, answered, "the commit")


def test_reads_answer_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """Another process (``jobwatch prune``, a backup) holding SQLite's write lock
    makes the writer wait up to ``busy_timeout``: the wait must hold no greenlet."""
    import sqlite3

    db = tmp_path / "jobs.db"
    with ServerProcess(serve_command(db), startup_timeout=60) as server:
        url = server.url
        assert requests.put(f"{url}/api/jobs/locked", json={}, timeout=30).status_code == 201
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, until COMMIT
        update = _Update(url, "locked")
        try:
            update.start()  # it now waits for the lock
            answered = _reads(url, "locked")
            assert update.done_at is None  # the update is still waiting for the lock
        finally:
            other.execute("COMMIT")
            other.close()
        update.join()  # stored once the lock was free
        _answered_first(update, answered, "the other process's lock")
