"""fork() never deadlocks a Reporter, and a child's lines reach the server.

PyTorch DataLoader workers and multiprocessing's fork start method fork a
process whose Reporter thread may hold a lock at that instant. Children run in
their own processes with ``signal.alarm``, so that a deadlock fails the test
instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from tests.paths import REPO, TESTS
from tests.report.conftest import log_messages

FORK_CHILDREN = TESTS / "fork_children.py"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")


def _errors(client: Client, job_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    while True:
        page = client.logs(job_id, level="error", limit=1000, offset=len(lines))
        lines += page["logs"]
        if len(lines) >= page["total"]:
            return lines


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_children_forked_while_a_parent_thread_logs_never_block(
    module_server: EmbeddedServer, job_id: str
) -> None:
    children = 48
    done = run(str(FORK_CHILDREN), module_server.url, job_id, str(children))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"hung": 0, "failed": 0, "ok": children, "parent_delivered": True}
    assert report == expected, done.stderr[-4000:]  # where a stuck child's threads were
    with Client(module_server.url) as client:  # the children's lines are the errors
        messages = {line["message"] for line in _errors(client, job_id)}
    for number in range(children):
        assert f"child {number}" in messages
        assert f"child {number} via logging" in messages


def test_a_multiprocessing_child_delivers_its_lines_when_it_exits(
    module_server: EmbeddedServer, job_id: str
) -> None:
    """multiprocessing's children end with os._exit(), after its own exit hooks, not atexit's."""
    code = f"""
        import multiprocessing
        from jobwatch import Reporter

        def work(number):
            reporter.log(f"from child {{number}}")  # no flush: the child's exit delivers

        reporter = Reporter({job_id!r}, url={module_server.url!r}, gpu=False, interval=600)
        reporter.log("from parent")
        assert reporter.flush(10)
        context = multiprocessing.get_context("fork")
        for number in range(2):
            child = context.Process(target=work, args=(number,))
            child.start()
            child.join(60)
            assert child.exitcode == 0, child.exitcode
        reporter.close(10)
        """
    done = run("-c", textwrap.dedent(code), timeout=120)
    assert done.returncode == 0, done.stderr
    with Client(module_server.url) as client:
        assert sorted(log_messages(client, job_id)) == [
            "from child 0",
            "from child 1",
            "from parent",
        ]


def test_a_child_that_cannot_start_a_sender_warns_once_and_goes_on(
    module_server: EmbeddedServer, job_id: str
) -> None:
    code = f"""
        import os, signal, threading
        from jobwatch import Reporter

        reporter = Reporter({job_id!r}, url={module_server.url!r}, gpu=False)
        reporter.log("parent")
        assert reporter.flush(10)
        pid = os.fork()
        if pid == 0:
            def refuse(self):
                raise RuntimeError("can't start new thread")
            threading.Thread.start = refuse
            signal.alarm(10)
            for number in range(3):
                reporter.log(f"lost {{number}}")
                reporter.update(number)
            assert reporter.flush(1) is False
            assert reporter.close(1) is False
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        reporter.close(10)
        """
    done = run("-c", textwrap.dedent(code), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot start") == 1, done.stderr
    with Client(module_server.url) as client:
        assert log_messages(client, job_id) == ["parent"]


def test_the_sender_imports_nothing_while_it_sends(
    module_server: EmbeddedServer, job_id: str
) -> None:
    """A module import in a sender thread holds that module's import lock; a fork
    then leaves it held in the child, whose sender hangs at the same import.
    (What ``import jobwatch`` leaves for later, the reporter loads in the
    calling thread when created: every import a sender thread starts is
    recorded here, as the import system asks the finders.)"""
    code = f"""
        import sys, threading
        from jobwatch import Reporter

        imported = []
        class Recorder:
            def find_spec(self, name, path=None, target=None):
                if threading.current_thread().name.startswith("jobwatch-reporter"):
                    imported.append(name)
                return None
        sys.meta_path.insert(0, Recorder())
        reporter = Reporter(
            {job_id!r}, url={module_server.url!r}, interval=0.05,
            gpu=lambda: {{"gpuUtilization": 50.0, "gpus": [{{"index": 0, "gpuUtilization": 50.0}}]}},
        )
        reporter.update(10, "epoch 1")
        reporter.log("line")
        assert reporter.flush(10)
        assert reporter.complete({{"accuracy": 0.5}}, timeout=10)
        print(sorted(imported))
        """
    done = run("-c", textwrap.dedent(code), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
