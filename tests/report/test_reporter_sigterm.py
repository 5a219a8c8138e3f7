"""SIGTERM (torchrun stopping the survivors of a dead rank, SLURM scancel, a
spot reclaim) fails the job and still kills the process as the signal would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from jobwatch import Client

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from jobwatch import Reporter

    if sys.argv[3] == "own":
        def handler(signum, frame):
            print("own handler", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, handler)
    r = Reporter(sys.argv[2], url=sys.argv[1], gpu=False, system=False, interval=0.05,
                 spool=False)
    r.update(40, "step 8/20")
    r.flush(10)
    r.log("last words before the signal")
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
    """
)


def _start(url: str, job_id: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, job_id, mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def test_sigterm_fails_the_job_and_the_process_still_dies_by_it(server):
    child = _start(server.url, "terminated", "default")
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    assert child.wait(10) == -signal.SIGTERM
    assert time.monotonic() - started < 4  # a launcher's grace period is short
    client = Client(server.url)
    job = client.get_job("terminated")
    assert job["status"] == "failed"
    assert job["error"] == "terminated by SIGTERM"
    assert job["progress"] == 40
    messages = [line["message"] for line in client.logs("terminated")["logs"]]
    assert "last words before the signal" in messages


def test_a_handler_of_the_users_own_is_left_alone(server):
    child = _start(server.url, "own-handler", "own")
    child.send_signal(signal.SIGTERM)
    assert child.wait(10) == 7
    assert child.stdout is not None and "own handler" in child.stdout.read()
    job = Client(server.url).get_job("own-handler")
    assert job["status"] == "running"  # the user's handler decides; it did not fail the job
