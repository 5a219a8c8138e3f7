"""How a plain ``for item in jobwatch.track(...)`` loop ends the job when the loop's
body raises, breaks or is interrupted: in a script (a real child process), in a
thread, and in a real kernel's cell.

The generator is closed while the body's exception unwinds, and it cannot see
that exception (CPython sets it aside while closing); ``jobwatch.track`` learns it
from ``sys.excepthook``, ``threading.excepthook`` or the cell's result.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jobwatch import Client
from tests.conftest import wait_for
from tests.kernel import Kernel, kernel_with_server
from tests.paths import REPO
from tests.signals import INTERRUPTIBLE

pytestmark = pytest.mark.slow  # child processes, a kernel

SCRIPT = """
import sys, threading, time
import jobwatch

url, job, how = sys.argv[1:4]

def loop(pace=0.0):
    for i in jobwatch.track(range(10), job=job, url=url, description="epoch"):
        time.sleep(pace)
        if i == 4:
            if how in ("raise", "function", "thread", "caught"):
                raise ValueError("boom")
            if how == "break":
                break
            if how == "return":
                return

if how == "raise":  # the loop at the top of the script
    for i in jobwatch.track(range(10), job=job, url=url, description="epoch"):
        if i == 4:
            raise ValueError("boom")
elif how == "thread":
    t = threading.Thread(target=loop)
    t.start()
    t.join()
    time.sleep(1)
elif how == "caught":
    try:
        loop()
    except ValueError:
        print("handled", flush=True)
elif how == "interrupt":
    print("looping", flush=True)
    loop(pace=0.5)
else:
    loop()
"""


def run_script(
    url: str, how: str, timeout: float = 60
) -> tuple[str, subprocess.CompletedProcess[str]]:
    job = f"end-{how}-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, job, how],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False,
    )  # fmt: skip
    return job, done


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.mark.parametrize("how", ["raise", "function", "thread"])
def test_an_exception_out_of_the_loop_fails_the_job(server, client, how) -> None:
    job, done = run_script(server.url, how)
    assert "ValueError: boom" in done.stderr  # the traceback is still printed
    got = client.get_job(job)
    assert (got["status"], got["currentOperation"]) == ("failed", "epoch 4/10"), done.stderr
    assert got["error"] == "ValueError: boom" and got["progress"] == 40.0


@pytest.mark.parametrize("how", ["break", "return", "caught"])
def test_leaving_the_loop_without_an_uncaught_error_completes_the_job(server, client, how) -> None:
    job, done = run_script(server.url, how)
    assert done.returncode == 0, done.stderr
    got = client.get_job(job)
    # completed, as the API has it at 100 %; the operation keeps where the loop stopped
    assert (got["status"], got["currentOperation"]) == ("completed", "epoch 4/10"), done.stderr
    assert got["error"] is None
    lines = [line["message"] for line in client.logs(job)["logs"]]
    assert "jobwatch: the loop stopped early at epoch 4/10" in lines


def test_ctrl_c_cancels_the_job(server, client) -> None:
    job = f"end-interrupt-{uuid.uuid4().hex[:6]}"
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, server.url, job, "interrupt"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, **INTERRUPTIBLE,
    )  # fmt: skip
    try:
        wait_for(lambda: _status(client, job) == "running", timeout=30)
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert "KeyboardInterrupt" in err
    got = client.get_job(job)
    assert got["status"] == "cancelled", err
    assert got["error"] == "interrupted (KeyboardInterrupt)"


def _status(client: Client, job: str) -> str | None:
    try:
        return str(client.get_job(job)["status"])
    except Exception:
        return None


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with kernel_with_server() as k:
        yield k


CELLS = {
    "raise": "for i in jobwatch.track(range(10), job=JOB, description='epoch'):\n"
    "    if i == 4:\n"
    "        raise ValueError('boom')\n",
    "function": "def loop():\n"
    "    for i in jobwatch.track(range(10), job=JOB, description='epoch'):\n"
    "        if i == 4:\n"
    "            raise ValueError('boom')\n"
    "loop()\n",
    "break": "for i in jobwatch.track(range(10), job=JOB, description='epoch'):\n"
    "    if i == 4:\n"
    "        break\n",
    "caught": "try:\n"
    "    for i in jobwatch.track(range(10), job=JOB, description='epoch'):\n"
    "        if i == 4:\n"
    "            raise ValueError('boom')\n"
    "except ValueError:\n"
    "    pass\n",
    "interrupt": "for i in jobwatch.track(range(10), job=JOB, description='epoch'):\n"
    "    if i == 4:\n"
    "        raise KeyboardInterrupt\n",
}
ENDS = {
    "raise": ("failed", "ValueError: boom"),
    "function": ("failed", "ValueError: boom"),
    "break": ("completed", None),
    "caught": ("completed", None),
    "interrupt": ("cancelled", "interrupted (KeyboardInterrupt)"),
}


@pytest.mark.parametrize("how", list(CELLS))
def test_a_cell_ends_the_job_as_its_loop_ended(kernel: Kernel, how: str) -> None:
    job = f"cell-{how}-{uuid.uuid4().hex[:6]}"
    cell = kernel.run(f"JOB = {job!r}\n" + CELLS[how])
    assert (cell.error() is not None) == (how in ("raise", "function", "interrupt"))
    got = kernel.value(
        f"[client.get_job({job!r})[k] for k in ('status', 'error', 'currentOperation')]"
    )
    assert got == [*ENDS[how], "epoch 4/10"]
