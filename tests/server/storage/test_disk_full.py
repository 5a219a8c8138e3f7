"""A full disk under ``jobwatch serve`` (gunicorn, gevent, a SQLite file): each
write answers an error, and the log gets one warning per interval, not a
traceback per failed commit. The disk is a 3 MiB tmpfs of the test's own."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess, serve_command

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)],
                   check=True)  # fmt: skip
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_warning_per_interval_not_a_traceback_per_commit(
    small_disk: Path,
) -> None:
    directory = small_disk / "db"
    directory.mkdir(mode=0o700)
    server = ServerProcess(serve_command(directory / "jobs.db"))
    try:
        job = requests.post(f"{server.url}/api/jobs", json={"workerId": "w"}, timeout=30)
        job_id = job.json()["job"]["id"]
        with (small_disk / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"x" * 65536)
                    filler.flush()
            except OSError:
                pass
        lines = [{"level": "info", "message": "y" * 2000}] * 20
        statuses = set()
        for i in range(100):
            body = {"workerId": "w", "progress": i / 10, "logLines": lines}
            answer = requests.post(
                f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=60
            )
            statuses.add(answer.status_code)
        output = server.output()
    finally:
        server.kill()
    assert statuses <= {200, 503}, statuses
    assert 503 in statuses
    assert output.count("Traceback") == 0, output[-3000:]
