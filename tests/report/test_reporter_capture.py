"""``capture_output``: what a run prints becomes its log, still printed, once, never
jobwatch's own output; across a fork too. Each case runs a child Python so that its
streams are real ones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from tests.paths import REPO


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


def run(server: EmbeddedServer, body: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    job_id = f"cap-{uuid.uuid4().hex[:8]}"
    script = (
        "import os, sys, logging\n"
        "from jobwatch import Reporter\n"
        f"report = Reporter({job_id!r}, url={server.url!r}, gpu=False, interval=0.05, "
        "spool=False, capture_output=True)\n" + textwrap.dedent(body)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    raw = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=60, check=False
    )
    # decoded by hand: text=True would turn each \r into \n
    done = subprocess.CompletedProcess(
        raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode()
    )
    assert done.returncode == 0, done.stderr
    return job_id, done


def lines(server: EmbeddedServer, job_id: str) -> list[tuple[str, str]]:
    with Client(server.url) as client:
        logs: list[dict[str, Any]] = client.logs(job_id, limit=1000)["logs"]
    return [(line["level"], line["message"]) for line in logs]


def test_printed_lines_become_log_lines_and_are_still_printed(server: EmbeddedServer) -> None:
    job_id, done = run(
        server,
        """
        print("epoch 1 loss 0.5")
        print("warning: lr high", file=sys.stderr)
        sys.stdout.write("two\\nlines\\n")
        sys.stdout.write("a partial ")
        sys.stdout.write("line\\n")
        for i in range(1, 4):
            sys.stderr.write(f"\\r{i * 10}%|###")
        sys.stderr.write("\\n")
        sys.stdout.write("no newline at the end")
        report.complete()
        print("after close: printed, not shipped")
        """,
    )
    assert done.stdout == (
        "epoch 1 loss 0.5\ntwo\nlines\na partial line\nno newline at the end"
        "after close: printed, not shipped\n"
    )
    assert done.stderr == "warning: lr high\n\r10%|###\r20%|###\r30%|###\n"
    got = lines(server, job_id)
    assert got[:6] == [
        ("info", "epoch 1 loss 0.5"),
        ("warning", "warning: lr high"),
        ("info", "two"),
        ("info", "lines"),
        ("info", "a partial line"),
        ("warning", "\r30%|###"),  # the frames collapse to the newest, as the view shows it
    ]


def test_a_partial_line_is_sent_at_close(server: EmbeddedServer) -> None:
    job_id, _ = run(
        server,
        """
        print("whole")
        sys.stdout.write("no newline at the end")
        report.complete()
        """,
    )
    assert lines(server, job_id) == [("info", "whole"), ("info", "no newline at the end")]


def test_jobwatchs_own_output_is_not_captured(server: EmbeddedServer) -> None:
    job_id, done = run(
        server,
        """
        from jobwatch.client.own_io import doing_io, own_output
        with own_output():
            print("the live view's frame")
        with doing_io():
            print("during a request", file=sys.stderr)
        print("the run's own")
        report.complete()
        """,
    )
    assert "the live view's frame" in done.stdout and "during a request" in done.stderr
    assert lines(server, job_id) == [("info", "the run's own")]


def test_a_second_capture_of_the_same_reporter_doubles_nothing(server: EmbeddedServer) -> None:
    job_id, _ = run(
        server,
        """
        from jobwatch.report.capture import OutputCapture
        again = OutputCapture(report._forward, report)
        print("once")
        again.stop()
        report.complete()
        """,
    )
    assert lines(server, job_id) == [("info", "once")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_capture_survives_a_fork(server: EmbeddedServer) -> None:
    job_id, done = run(
        server,
        """
        print("parent before")
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            print("child line")
            sys.stdout.flush()
            report.flush(10)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent after")
        report.complete()
        """,
    )
    assert done.stdout.count("child line") == 1
    got = lines(server, job_id)
    assert sorted(got) == sorted(
        [("info", "parent before"), ("info", "child line"), ("info", "parent after")]
    )


def test_two_threads_printing_at_once_keep_their_own_lines(server: EmbeddedServer) -> None:
    # a thread's partial line is its own: another thread's whole line printed
    # meanwhile is neither glued to it nor splits it
    job_id, done = run(
        server,
        """
        import threading
        half_written, other_done = threading.Event(), threading.Event()

        def first():
            sys.stdout.write("first starts, ")
            half_written.set()
            other_done.wait(10)
            sys.stdout.write("first ends\\n")

        def second():
            half_written.wait(10)
            print("second whole")
            other_done.set()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sys.stdout.write("main's partial ")
        worker = threading.Thread(target=lambda: sys.stdout.write("worker's partial"))
        worker.start()
        worker.join()
        report.complete()
        """,
    )
    assert done.stdout.startswith("first starts, second whole\nfirst ends\n")
    got = lines(server, job_id)
    assert got[:2] == [("info", "second whole"), ("info", "first starts, first ends")]
    # partial lines of every thread are sent at close, none lost
    assert sorted(got[2:]) == [("info", "main's partial "), ("info", "worker's partial")]
