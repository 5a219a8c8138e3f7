"""The Reporter under what real training does: retries that committed, resumed
runs, checkpoints, and a worker clock stepped back by NTP."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


class LateAnswers:
    """WSGI middleware on the real app: the first ``n`` progress requests are
    applied (committed) and then answered ``delay`` seconds late, after the
    client has given up waiting."""

    def __init__(self, server: EmbeddedServer, n: int, delay: float) -> None:
        self.n, self.delay = n, delay
        self.progress_calls = 0
        self._lock = threading.Lock()
        self._inner = server.app.wsgi_app
        server.app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        answer = self._inner(environ, start_response)
        if environ["PATH_INFO"].endswith("/progress"):
            body = b"".join(answer)  # the write is committed once the body exists
            with self._lock:
                self.progress_calls += 1
                late = self.progress_calls <= self.n
            if late:
                time.sleep(self.delay)
            return [body]
        return answer


class ProgressBodies:
    """WSGI middleware on the real app: keeps the JSON body of every progress
    request it passes on, to see what a reporter declares."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._inner = server.app.wsgi_app
        server.app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"].endswith("/progress"):
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            self.bodies.append(json.loads(raw))
            environ["wsgi.input"] = io.BytesIO(raw)
        return self._inner(environ, start_response)

    def resumed_from(self) -> list[Any]:
        return [body.get("resumedFrom") for body in self.bodies]


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


def test_updates_that_committed_but_timed_out_are_stored_once(server: EmbeddedServer) -> None:
    late = LateAnswers(server, n=3, delay=0.6)
    reporter = Reporter("retried", url=server.url, gpu=False, interval=0.05, timeout=0.2)
    for k in range(10):
        reporter.log(f"line {k}")
    reporter.update(50)
    assert reporter.flush(timeout=30)
    reporter.close()
    assert late.progress_calls > 3  # the first answers were late, so it retried
    logs = Client(server.url).logs("retried", limit=100)
    assert [line["message"] for line in logs["logs"]] == [f"line {k}" for k in range(10)]


def test_track_starts_part_way_like_tqdm_initial(server: EmbeddedServer) -> None:
    client = Client(server.url)
    reporter = Reporter("ckpt", url=server.url, gpu=False, interval=0.05)
    epochs = reporter.track(range(4, 10), total=10, initial=4, description="epoch")
    assert reporter.flush(timeout=10)
    job = client.get_job("ckpt")
    assert (job["progress"], job["currentOperation"]) == (40, "epoch 4/10")
    assert list(epochs) == [4, 5, 6, 7, 8, 9]
    assert reporter.flush(timeout=10)
    job = client.get_job("ckpt")
    assert (job["progress"], job["currentOperation"]) == (100, "epoch 10/10")
    # without a total: the items done plus the items left
    rest = reporter.track([7, 8, 9], initial=7)
    assert reporter.flush(timeout=10)
    assert client.get_job("ckpt")["currentOperation"] == "7/10"
    list(rest)
    reporter.close()


def test_track_with_initial_declares_the_resume(server: EmbeddedServer) -> None:
    """A declared resume gets no time remaining until progress moves (docs/api.md
    "Estimates"); a worker that declared none gets the seed's average at once."""
    seen = ProgressBodies(server)
    client = Client(server.url)
    reporter = Reporter("ckpt-eta", url=server.url, gpu=False, interval=0.05)
    epochs = reporter.track(range(4, 10), total=10, initial=4)
    assert reporter.flush(timeout=10)
    assert client.monitor("ckpt-eta")["timeRemaining"] is None
    next(epochs)
    next(epochs)  # the first item is done: 50 %
    assert reporter.flush(timeout=10)
    assert client.get_job("ckpt-eta")["progress"] == 50
    assert client.monitor("ckpt-eta")["timeRemaining"] is not None
    reporter.close()
    assert set(seen.resumed_from()) == {40.0}


def test_attaching_to_a_running_job_declares_the_resume(server: EmbeddedServer) -> None:
    seen = ProgressBodies(server)
    client = Client(server.url)
    first = Reporter("attach-eta", url=server.url, worker_id="w", gpu=False, interval=0.05)
    first.update(45)
    assert first.close(timeout=10)
    assert client.monitor("attach-eta")["timeRemaining"] is not None  # the seed's average
    assert seen.resumed_from() == [None]
    second = Reporter("attach-eta", url=server.url, worker_id="w", gpu=False, interval=0.05)
    second.update(40, "resumed from the checkpoint")
    assert second.flush(timeout=10)
    assert client.monitor("attach-eta")["timeRemaining"] is None
    second.close()
    assert seen.resumed_from()[1:] == [45.0] * (len(seen.bodies) - 1)


@pytest.mark.parametrize("initial", [-1, 1.5, True, "3", None])
def test_track_refuses_a_bad_initial(server: EmbeddedServer, initial: Any) -> None:
    reporter = Reporter("bad-initial", url=server.url, gpu=False)
    with pytest.raises(ValueError, match="initial must be an integer >= 0"):
        reporter.track(range(3), initial=initial)
    reporter.close()


# -- a worker whose wall clock steps back --------------------------------------------------

FAKETIME_LIB = next(
    (
        p
        for p in (
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        )
        if Path(p).exists()
    ),
    None,
)


def _need_faketime() -> str:
    if FAKETIME_LIB is None or shutil.which("faketime") is None:
        reason = "libfaketime is not installed (apt-get install faketime)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI must provide it)")
        pytest.skip(reason)
    return FAKETIME_LIB


WORKER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from jobwatch import Reporter

    url, step_file = sys.argv[1], Path(sys.argv[2])
    pause = threading.Event().wait  # time.sleep fails under libfaketime's negative offsets
    reporter = Reporter("ntp", url=url, gpu=False, interval=0.05)
    for p in range(0, 101, 2):
        if p == 40:
            step_file.write_text("-30s")  # NTP steps this process's wall clock back 30 s
            pause(0.2)
        reporter.update(p, f"step {p}")
        pause(0.05)
        reporter.flush(timeout=5)
    reporter.close()
    """
)


@pytest.mark.slow
def test_a_worker_clock_stepped_back_does_not_freeze_its_progress(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """A 30 s step back (inside the server's late window): a reporter that
    stamped updates with the wall clock would have had every update after the
    step refused as late, leaving the job at 38 %."""
    lib = _need_faketime()
    step_file = tmp_path / "faketime"
    step_file.write_text("+0s")
    env = {
        **os.environ,
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": str(step_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    subprocess.run(
        [sys.executable, str(script), server.url, str(step_file)],
        env=env,
        check=True,
        timeout=60,
    )
    job = Client(server.url).get_job("ntp")
    assert (job["progress"], job["currentOperation"]) == (100, "step 100")
