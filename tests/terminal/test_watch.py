"""``jobwatch watch``: the status rendering, the Watcher against a fake client,
and the command as a subprocess against ``jobwatch serve``."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.errors import JobNotFound
from jobwatch.server.deploy.process import ServerProcess
from jobwatch.terminal.watch import Watcher, render_final, render_status
from jobwatch.view.state import MonitorState
from tests.conftest import free_port
from tests.signals import INTERRUPTIBLE

# -- status rendering -------------------------------------------------------------


def job_state(
    job_id: str,
    *,
    status: str = "pending",
    progress: float = 0.0,
    operation: str | None = None,
    elapsed: float | None = None,
    time_remaining: float | None = None,
    cost_so_far: float | None = None,
    estimated_total_cost: float | None = None,
    metrics: dict[str, Any] | None = None,
    connection: str = "connecting",
    result: Any = None,
    error: str | None = None,
) -> MonitorState:
    """A job's state as the watcher holds it, with time standing still."""
    state = MonitorState(clock=lambda: 0.0)
    job = {"id": job_id, "status": status, "progress": progress, "currentOperation": operation}
    job |= {"result": result, "error": error, "startedAt": None, "completedAt": None}
    latest = None if metrics is None else {"timestamp": "2026-11-29T10:00:00.000Z", **metrics}
    state.load_snapshot(
        {
            "job": job,
            "metrics": {"latest": latest, "history": []},
            "logs": [],
            "elapsed": elapsed,
            "timeRemaining": time_remaining,
            "costSoFar": cost_so_far,
            "estimatedTotalCost": estimated_total_cost,
            "currency": "QUBIC",
            "seq": 0,
        }
    )
    state.set_connection(connection)
    return state


def test_render_status_block_and_line() -> None:
    view = job_state(
        "resnet-1",
        status="running",
        progress=45.5,
        operation="Training epoch 5/10",
        elapsed=65,
        time_remaining=192,
        cost_so_far=0.42,
        estimated_total_cost=0.93,
        metrics={"gpuUtilization": 87, "gpuMemoryUsed": 18000, "gpuMemoryTotal": 24000},
        connection="live",
    )
    block = render_status(view)
    assert block.splitlines() == [
        "resnet-1  running  live",
        "[" + "#" * 13 + "-" * 17 + "]  45.5%  Training epoch 5/10",
        "elapsed 1m 05s  remaining 3m 12s  cost 0.420 QUBIC (est. total 0.930 QUBIC)",
        "GPU 87%  mem 17.6/23.4 GiB  temp -  power -",
    ]
    line = render_status(view, one_line=True)
    assert "\n" not in line
    assert " | [#########-----------]  45.5%  Training epoch 5/10 | " in line


def test_the_system_metrics_get_a_line_of_their_own() -> None:
    system = {"cpuUtilization": 63.2, "memoryUsed": 12000, "memoryTotal": 32000}
    system |= {"processMemory": 2300, "diskRead": 1572864, "diskWrite": 0, "networkIn": 512}
    block = render_status(job_state("cpu", status="running", metrics=system))
    assert block.splitlines()[-2:] == [
        "GPU -  mem -  temp -  power -",
        "CPU 63%  mem 11.7/31.2 GiB  process 2.2 GiB  disk -  read 1.5 MiB/s write 0 B/s  "
        "net in 512 B/s out -",
    ]
    assert "CPU" not in render_status(job_state("gpu", metrics={"gpuUtilization": 5}))


def test_a_running_job_at_99_96_percent_reads_99_9_not_100() -> None:
    assert " 99.9%  " in render_status(job_state("j", status="running", progress=99.96))


def test_render_status_of_a_new_job() -> None:
    block = render_status(job_state("j"))
    assert "  0.0%  -" in block
    assert "elapsed -  remaining -  cost - (est. total -)" in block


def test_render_final() -> None:
    done = job_state("j", status="completed", elapsed=65, cost_so_far=0.5, result={"acc": 0.93})
    assert (
        render_final(done)
        == 'job j completed after 1m 05s, cost 0.500 QUBIC\nresult: {"acc": 0.93}'
    )
    no_result = job_state("j", status="completed", elapsed=65, cost_so_far=0.5)
    assert render_final(no_result) == "job j completed after 1m 05s, cost 0.500 QUBIC"
    failed = job_state("j", status="failed", error="CUDA out of memory")
    assert render_final(failed).endswith("\nerror: CUDA out of memory")
    assert "\n" not in render_final(job_state("j", status="cancelled"))


# -- Watcher against a fake client ------------------------------------------------


def stamp(second: int) -> str:
    return f"2026-11-29T10:00:{second:02d}.000Z"


def monitor_answer(job_id: str, status: str = "running", **job: Any) -> dict[str, Any]:
    logs = [
        {"id": i, "level": "info", "timestamp": stamp(0), "message": f"old {i}"} for i in range(30)
    ]
    return {
        "job": {
            "id": job_id,
            "status": status,
            "progress": 10.0,
            "currentOperation": "warming up",
            "startedAt": stamp(0),
            "completedAt": None,
            "result": None,
            "error": None,
            **job,
        },
        "metrics": {"latest": None, "history": []},
        "logs": logs,
        "timeRemaining": None,
        "costSoFar": 0.1,
        "estimatedTotalCost": None,
        "elapsed": 5.0,
        "currency": "QUBIC",
        "seq": 7,
    }


def progress(seq: int, percent: float, operation: str) -> dict[str, Any]:
    data = {"status": "running", "progress": percent, "currentOperation": operation}
    data |= {"metrics": None, "timeRemaining": 30.0, "costSoFar": 0.2, "elapsed": 10.0}
    return {"type": "JOB_PROGRESS", "jobId": "j", "seq": seq, "data": data}


def log_event(seq: int, *lines: tuple[str, str]) -> dict[str, Any]:
    # Line ids grow, as the server gives them: after the snapshot's 0-29.
    logs = [
        {"id": 100 * seq + i, "level": lv, "timestamp": stamp(9), "message": m}
        for i, (lv, m) in enumerate(lines)
    ]
    return {"type": "JOB_LOGS", "jobId": "j", "seq": seq, "data": {"jobId": "j", "logs": logs}}


def completed(seq: int, status: str = "completed", **data: Any) -> dict[str, Any]:
    body = {"status": status, "result": None, "error": None, "completedAt": stamp(40)}
    body |= {"costSoFar": 1.5, "currency": "QUBIC", **data}
    return {"type": "JOB_COMPLETED", "jobId": "j", "seq": seq, "data": body}


class Output(io.StringIO):
    """A StringIO that says when something was written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)


class FakeStream:
    """Yields the events; with ``pace``, each after the watcher wrote (or 0.5 s passed)."""

    def __init__(
        self,
        events: list[dict[str, Any]],
        on_state: Callable[[str], None] | None,
        pace: threading.Event | None,
    ) -> None:
        self.events = events
        self.on_state = on_state
        self.pace = pace
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.on_state is not None:
            self.on_state("live")
        for event in self.events:
            if self.pace is not None:
                self.pace.wait(0.5)
                self.pace.clear()
            yield event

    def close(self) -> None:
        self.closed = True


class FakeClient:
    def __init__(
        self,
        monitor: dict[str, Any],
        events: list[dict[str, Any]],
        pace: threading.Event | None = None,
    ) -> None:
        self.answer = monitor
        self.events = events
        self.pace = pace
        self.since: int | None = None
        self.view: dict[str, Any] = {}
        self.stream: FakeStream | None = None

    def monitor(self, job_id: str) -> dict[str, Any]:
        if job_id != self.answer["job"]["id"]:
            raise JobNotFound(f"no job with id {job_id!r}")
        return self.answer

    def subscribe(
        self,
        job_id: str,
        since: int | None = None,
        *,
        on_state: Callable[[str], None] | None,
        **view: Any,
    ) -> FakeStream:
        self.since = since
        self.view = view
        self.stream = FakeStream(self.events, on_state, self.pace)
        return self.stream


def watch(
    client: FakeClient, *, tty: bool, clock: Callable[[], float], out: Output | None = None
) -> tuple[MonitorState, str]:
    out = out or Output()
    state = Watcher(client, "j", out=out, tty=tty, clock=clock).run()  # type: ignore[arg-type]
    return state, out.getvalue()


def frozen() -> float:
    return 100.0


def test_piped_output_is_plain_throttled_and_in_order() -> None:
    events = [
        progress(8, 40, "epoch 4/10"),
        log_event(9, ("info", "epoch 4 done"), ("warning", "lr dropped")),
        progress(10, 50, "epoch 5/10"),
        log_event(11, ("error", "nan loss")),
        completed(12, result={"acc": 0.9}),
    ]
    client = FakeClient(monitor_answer("j"), events)
    state, text = watch(client, tty=False, clock=frozen)
    assert client.since == 7
    assert client.stream is not None and client.stream.closed
    job = state.job
    assert (job["status"], job["progress"], state.elapsed, job["result"]) == (
        "completed",
        100,
        40,
        {"acc": 0.9},
    )
    assert "\x1b" not in text
    lines = text.splitlines()
    # the newest 20 of the monitor's 30 lines, then the new lines as they came
    assert next(line for line in lines if "old " in line).endswith("old 10")
    assert sum("old " in line for line in lines) == 20
    order = [
        next(i for i, x in enumerate(lines) if m in x)
        for m in ("old 29", "epoch 4 done", "lr dropped", "nan loss")
    ]
    assert order == sorted(order)
    # time stands still: the first status and the final one, nothing in between
    statuses = [line for line in lines if line.startswith("j  ")]
    assert len(statuses) == 2
    assert "warming up" in statuses[0] and "10.0%" in statuses[0]
    assert "100.0%  epoch 5/10" in statuses[1] and "ended" in statuses[1]
    assert lines[-2:] == ["job j completed after 40s, cost 1.50 QUBIC", 'result: {"acc": 0.9}']


def test_piped_status_line_printed_when_due_and_only_if_changed() -> None:
    ticks = iter(range(0, 10_000, 10))  # every draw is due
    events = [
        progress(8, 40, "epoch 4/10"),
        progress(9, 40, "epoch 4/10"),  # changes nothing that is shown
        progress(10, 50, "epoch 5/10"),
        completed(11),
    ]
    out = Output()
    client = FakeClient(monitor_answer("j"), events, pace=out.written)
    _, text = watch(client, tty=False, clock=lambda: next(ticks), out=out)
    statuses = [line for line in text.splitlines() if line.startswith("j  ")]
    shown = [line.split(" | ")[1].split("]")[1].strip() for line in statuses]
    # the state going live may or may not get a line of its own
    assert list(dict.fromkeys(shown)) == [
        "10.0%  warming up",
        "40.0%  epoch 4/10",
        "50.0%  epoch 5/10",
        "100.0%  epoch 5/10",
    ]
    assert shown.count("40.0%  epoch 4/10") == 1


def test_terminal_output_redraws_in_place_with_colours() -> None:
    ticks = iter(range(0, 10_000, 10))
    events = [log_event(8, ("warning", "hot")), progress(9, 60, "epoch 6/10"), completed(10)]
    _, text = watch(FakeClient(monitor_answer("j"), events), tty=True, clock=lambda: next(ticks))
    assert "\x1b[1A\x1b[2K" * 4 in text  # the 4-line block erased before a redraw
    assert "\x1b[33mwarning" in text
    assert "epoch 6/10" in text


def test_a_finished_job_is_shown_without_subscribing() -> None:
    answer = monitor_answer("j", "failed", error="CUDA out of memory", completedAt=stamp(30))
    client = FakeClient(answer, [])
    state, text = watch(client, tty=False, clock=frozen)
    assert client.stream is None
    assert state.job["status"] == "failed"
    assert text.endswith("job j failed after 30s, cost 0.100 QUBIC\nerror: CUDA out of memory\n")


def test_unknown_job_raises_before_any_output() -> None:
    out = io.StringIO()
    client = FakeClient(monitor_answer("other"), [])
    with pytest.raises(JobNotFound):
        Watcher(client, "j", out=out, tty=False).run()  # type: ignore[arg-type]
    assert out.getvalue() == ""


# -- the command, against a real server ---------------------------------------------


# `served` (jobwatch serve in a child process) and its `client`: tests/conftest.py


class Watch:
    """``python -m jobwatch watch`` in a subprocess, its output read by threads."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobwatch", "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **INTERRUPTIBLE,  # test_ctrl_c_exits_130, also when pytest runs as a background job
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            assert self.proc.poll() is None or text in self.out, self.report()
            assert time.monotonic() < deadline, f"no {text!r} in time\n{self.report()}"
            time.sleep(0.05)

    def finish(self, timeout: float = 30.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"watch did not end in {timeout} s\n{self.report()}") from None
        for reader in self._readers:
            reader.join(10)
        return code

    def report(self) -> str:
        return f"stdout:\n{self.out}\nstderr:\n{''.join(self.stderr)}"


@pytest.fixture
def job_id(served_client: Client) -> str:
    job_id = f"watch-{uuid.uuid4().hex[:10]}"
    served_client.create_job(job_id=job_id, worker_id="w1", price_per_hour=36.0)
    return job_id


@pytest.mark.slow
def test_watch_until_completed(served: ServerProcess, served_client: Client, job_id: str) -> None:
    served_client.report_progress(
        job_id, "w1", 10, "loading data", logs=[{"level": "info", "message": "before watch"}]
    )
    watcher = Watch(job_id, "--url", served.url)
    try:
        watcher.wait_for("loading data")
        assert "before watch" in watcher.out
        metrics = {"gpuUtilization": 87, "gpuMemoryUsed": 18000, "gpuMemoryTotal": 24000}
        served_client.report_progress(
            job_id,
            "w1",
            45.5,
            "Training epoch 5/10",
            metrics,
            logs=[{"level": "info", "message": "epoch 4 done"}],
        )
        watcher.wait_for("45.5%")
        served_client.report_progress(
            job_id,
            "w1",
            80,
            "Training epoch 8/10",
            logs=[
                {"level": "warning", "message": "lr dropped"},
                {"level": "error", "message": "one bad batch"},
            ],
        )
        served_client.complete_job(job_id, "w1", result={"accuracy": 0.93})
        code = watcher.finish()
    finally:
        watcher.proc.kill()
    out = watcher.out
    assert code == 0, watcher.report()
    assert "\x1b" not in out
    assert "Training epoch 5/10" in out
    assert "17.6/23.4 GiB" in out
    messages = ["before watch", "epoch 4 done", "lr dropped", "one bad batch"]
    positions = [out.index(m) for m in messages]
    assert positions == sorted(positions)
    assert sum(out.count(m) for m in messages) == len(messages)  # nothing twice
    assert re.search(r"cost \d[\d.,]* QUBIC \(est\. total \d[\d.,]* QUBIC\)", out), out
    assert re.search(rf"job {job_id} completed after \S+, cost \d[\d.,]* QUBIC\n", out), out
    assert out.rstrip().endswith('result: {"accuracy": 0.93}')


@pytest.mark.slow
def test_watch_a_failing_job_exits_4(
    served: ServerProcess, served_client: Client, job_id: str
) -> None:
    served_client.report_progress(job_id, "w1", 30, "epoch 3/10")
    watcher = Watch(job_id, "--url", served.url)
    try:
        watcher.wait_for("epoch 3/10")
        served_client.complete_job(job_id, "w1", "failed", error="CUDA out of memory")
        code = watcher.finish()
    finally:
        watcher.proc.kill()
    assert code == 4, watcher.report()
    assert "error: CUDA out of memory" in watcher.out
    assert f"job {job_id} failed" in watcher.out


@pytest.mark.slow
def test_ctrl_c_exits_130(served: ServerProcess, job_id: str) -> None:
    watcher = Watch(job_id, "--url", served.url)
    try:
        watcher.wait_for(job_id)
        watcher.wait_for("live", timeout=10)
        watcher.proc.send_signal(signal.SIGINT)
        code = watcher.finish(timeout=15)
    finally:
        watcher.proc.kill()
    assert code == 130, watcher.report()
    assert "Traceback" not in "".join(watcher.stderr)


@pytest.mark.slow
def test_unknown_job_exits_1(served: ServerProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobwatch", "watch", "no-such-job", "--url", served.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "no job with id 'no-such-job'" in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_unreachable_server_exits_3() -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "jobwatch", "watch", "job-1", "--url", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "cannot reach the server" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_demo_trains_and_finishes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobwatch", "demo", "--epochs", "5", "--pace", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Epoch 5/5" in done.stdout
    assert "completed" in done.stdout
    result = json.loads(done.stdout.split("result: ", 1)[1].splitlines()[0])
    assert result["testAccuracy"] > 0.85 and result["epochs"] == 5


def test_demo_refuses_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobwatch", "demo", "--pace", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "seconds must be a number from 0 to 60" in done.stderr


# -- one rank's or node's log lines (--rank, --node) ------------------------------------------


def test_the_status_says_whose_lines_are_shown() -> None:
    from jobwatch.view.log_filter import LogFilter

    state = job_state("ddp", status="running", connection="live")
    first = render_status(state, log_filter=LogFilter(rank=3, node="gpu-1")).splitlines()[0]
    assert first.endswith("log lines of rank 3 on node gpu-1")
    assert "log lines" not in render_status(state, log_filter=LogFilter())


def test_piped_output_shows_only_the_lines_of_the_rank_asked_for() -> None:
    from jobwatch.view.log_filter import LogFilter

    ranked = log_event(9, ("info", "from rank 0"), ("info", "from rank 1"))
    for line, rank in zip(ranked["data"]["logs"], (0, 1), strict=True):
        line |= {"rank": rank, "node": f"n{rank}"}
    client = FakeClient(monitor_answer("j"), [ranked, completed(10)])
    out = Output()
    Watcher(client, "j", out=out, tty=False, clock=frozen, log_filter=LogFilter(rank=1)).run()  # type: ignore[arg-type]
    text = out.getvalue()
    assert client.view == {
        "log_rank": 1,
        "log_node": None,
        "progress": "all",
    }  # asked of the server
    assert "from rank 1" in text
    assert "from rank 0" not in text and "old 0" not in text  # the snapshot's lines have no rank


def ranked_job(client: Client, lines_per_rank: int = 150) -> None:
    client.create_job(job_id="ddp")
    for rank in (0, 1):
        logs = [{"level": "info", "message": f"r{rank} line {i}"} for i in range(lines_per_rank)]
        client.report_progress(
            "ddp", f"n{rank}/{rank}", 50, rank=rank, world_size=2, node=f"n{rank}", logs=logs
        )


def test_watch_rank_shows_that_ranks_newest_lines_beyond_the_snapshot(
    server: Any, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobwatch.cli.commands import main

    ranked_job(client)  # rank 1's lines come first: /monitor's last 100 are all rank 0's
    client.complete_job("ddp", "n0/0")
    assert main(["watch", "ddp", "--url", server.url, "--rank", "1"]) == 0
    out = capsys.readouterr().out
    shown = re.findall(r"r(\d) line (\d+)", out)
    assert shown == [("1", str(i)) for i in range(130, 150)]  # the default tail of 20
    assert "log lines of rank 1" in out
    assert main(["watch", "ddp", "--url", server.url, "--node", "n0", "--rank", "0"]) == 0
    assert re.findall(r"r(\d) line", capsys.readouterr().out) == ["0"] * 20


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--rank", "-1"], "argument --rank: a rank is a whole number from 0 to 65535"),
        (["--rank", "one"], "argument --rank: a rank is a whole number"),
        (["--node", ""], "argument --node: a node is the name of a machine"),
    ],
)
def test_watch_refuses_a_bad_rank_or_node(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobwatch.cli.commands import main

    with pytest.raises(SystemExit) as exc:
        main(["watch", "ddp", *args])
    assert exc.value.code == 2
    assert said in capsys.readouterr().err


def test_watch_says_when_a_rank_or_node_can_show_nothing(
    server: Any, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobwatch.cli.commands import main

    ranked_job(client, 1)
    assert main(["watch", "ddp", "--url", server.url, "--rank", "2"]) == 2
    err = capsys.readouterr().err
    assert err == "jobwatch watch: job 'ddp' has 2 ranks (0 to 1): there is no rank 2\n"
    client.create_job(job_id="one")
    client.report_progress("one", "w", 10)
    assert main(["watch", "one", "--url", server.url, "--node", "n1"]) == 2
    assert "job 'one' is not a distributed job" in capsys.readouterr().err
    assert main(["watch", "nope", "--url", server.url, "--rank", "0"]) == 1  # as without
