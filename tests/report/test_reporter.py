"""Reporter against a real server in this process: coalescing, order, retries, shutdown."""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.report import gpu
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import free_port, wait_for
from tests.fake_nvml import GIB, FakeGpu, FakeNvml
from tests.report.conftest import all_logs, log_messages

# -- a real server whose requests a test can count (and answer 429 to) ---------------


class Recorder:
    """WSGI middleware on the real app: records each request; can answer 429 first."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self.calls: list[tuple[float, str, str, int]] = []
        self.rate_limit: list[float] = []  # Retry-After values for the next /progress calls
        self._inner = server.app.wsgi_app
        server.app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if self.rate_limit and path.endswith("/progress"):
            retry_after = self.rate_limit.pop(0)
            self.calls.append((time.monotonic(), method, path, 429))
            body = {"error": {"code": "rate_limited", "message": "slow down", "details": []}}
            headers = [("Content-Type", "application/json"), ("Retry-After", str(retry_after))]
            start_response("429 Too Many Requests", headers)
            return [json.dumps(body).encode()]

        def record(status: str, headers: Any, *exc: Any) -> Any:
            self.calls.append((time.monotonic(), method, path, int(status.split(maxsplit=1)[0])))
            return start_response(status, headers, *exc)

        return self._inner(environ, record)

    def count(self, job_id: str, what: str = "progress") -> int:
        """Requests answered for this job: ``progress``, ``complete`` or ``PUT``."""
        if what == "PUT":
            return sum(1 for _, m, p, _ in self.calls if m == "PUT" and p == f"/api/jobs/{job_id}")
        return sum(1 for _, _, p, _ in self.calls if p == f"/api/jobs/{job_id}/{what}")


@pytest.fixture(scope="module")
def recorder(module_server: EmbeddedServer) -> Recorder:
    return Recorder(module_server)


# -- arguments are checked at once ----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": 0},
        {"interval": -1},
        {"interval": math.nan},
        {"max_log_lines": 0},
        {"gpu": "yes"},
        {"price_per_hour": -1},
        {"worker_id": ""},
        {"currency": ""},
        {"timeout": 0},
        {"url": "ftp://example"},
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Reporter("job-1", **{"url": "http://127.0.0.1:9", **kwargs})


def test_bad_job_id_raises_value_error() -> None:
    with pytest.raises(ValueError, match="job_id"):
        Reporter("bad id/with slash", url="http://127.0.0.1:9")


@pytest.mark.parametrize("progress", [-0.1, 100.5, math.nan, math.inf, "50", None])
def test_bad_progress_raises_value_error(make_reporter: Any, job_id: str, progress: Any) -> None:
    reporter = make_reporter(job_id)
    with pytest.raises(ValueError, match="0 to 100"):
        reporter.update(progress)


def test_bad_operation_level_and_total_raise_value_error(make_reporter: Any, job_id: str) -> None:
    reporter = make_reporter(job_id)
    with pytest.raises(ValueError, match="operation"):
        reporter.update(5, operation=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="info, warning, error"):
        reporter.log("x", level="debug")
    with pytest.raises(ValueError, match="total"):
        reporter.track([1], total=-1)
    with pytest.raises(ValueError, match="JSON"):
        reporter.complete(result={"x": math.nan})
    with pytest.raises(ValueError, match="64 bits"):
        reporter.complete(result=[2**70])
    with pytest.raises(ValueError, match="JSON"):
        reporter.complete(result=object())
    with pytest.raises(ValueError, match="timeout"):
        reporter.flush(timeout=-1)


# -- the hot path -----------------------------------------------------------------------


def test_hot_loop_is_fast_and_coalesced(
    make_reporter: Any, job_id: str, client: Client, recorder: Recorder
) -> None:
    reporter = make_reporter(job_id, interval=0.2)
    start = time.perf_counter()
    for i in range(100_000):
        reporter.update(i / 1000, "epoch 1/1")
    elapsed = time.perf_counter() - start  # its cost is measured in benchmarks/, not here
    assert reporter.flush(timeout=10)
    job = client.get_job(job_id)
    assert job["progress"] == pytest.approx(99.999)
    assert job["currentOperation"] == "epoch 1/1"
    # at most one request per interval, plus the first one and the flush's
    assert recorder.count(job_id) <= elapsed / 0.2 + 3
    assert recorder.count(job_id, "PUT") == 1


def test_a_line_or_alert_while_idle_goes_out_without_waiting_for_the_interval(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    # An hour between requests: only the wake-up of a queued line can deliver these.
    reporter = make_reporter(job_id, interval=3600)
    reporter.update(10)
    assert reporter.flush(timeout=10)
    reporter.log("first line")
    wait_for(lambda: log_messages(client, job_id) == ["first line"], 30)
    reporter.alert("GPU hot", "91 °C")
    wait_for(lambda: client.get_job(job_id).get("alerts") == 1, 30)
    reporter.log("second line")
    wait_for(lambda: log_messages(client, job_id) == ["first line", "second line"], 30)


def test_an_idle_reporter_does_not_spin_and_still_sends_the_next_update(
    make_reporter: Any, job_id: str, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past its drain time with nothing recorded and no metrics sample to send
    # (system=False; also a forked child's reporter, a rank other than a node's
    # first), the thread used to loop without waiting (tens of thousands of
    # steps a second, half a core) until the next record.
    from jobwatch.report import sender

    steps = [0]
    step = sender.Sender._step

    def counted(self: sender.Sender) -> float | None:
        steps[0] += 1
        return step(self)

    monkeypatch.setattr(sender.Sender, "_step", counted)
    reporter = make_reporter(job_id, interval=0.05, system=False)  # no sample to send
    reporter.log_metrics({"loss": 0.5}, step=1)
    reporter.update(10)
    assert reporter.flush(timeout=10)
    before = steps[0]
    time.sleep(1.0)  # 20 intervals with nothing to send
    assert steps[0] - before < 100, steps[0] - before
    reporter.update(20)  # wakes no one: the thread's next look finds it
    wait_for(lambda: client.get_job(job_id)["progress"] == 20, 10)


def test_lines_logged_back_to_back_share_requests(
    make_reporter: Any, job_id: str, client: Client, recorder: Recorder
) -> None:
    reporter = make_reporter(job_id, interval=3600)
    reporter.update(10)
    assert reporter.flush(timeout=10)
    sent = recorder.count(job_id)
    for i in range(500):
        reporter.log(f"line {i}")
    wait_for(lambda: len(all_logs(client, job_id)) == 500, 30)
    # one request for the first line, then the rest coalesced behind the minimum gap
    assert recorder.count(job_id) - sent < 50, recorder.count(job_id) - sent
    assert log_messages(client, job_id) == [f"line {i}" for i in range(500)]


def test_gpu_samples_keep_flowing_between_progress_updates(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    calls = []

    def metrics() -> dict[str, float]:
        calls.append(1)
        return {"gpuUtilization": float(len(calls) % 100)}

    reporter = make_reporter(job_id, gpu=metrics, interval=0.05)
    reporter.update(10, "epoch 1/10")
    assert reporter.flush(timeout=10)
    wait_for(lambda: len(client.metrics(job_id, time_range=3600)) >= 5, 10)
    assert client.get_job(job_id)["progress"] == 10


def test_nothing_new_sends_nothing(make_reporter: Any, job_id: str, recorder: Recorder) -> None:
    reporter = make_reporter(job_id, system=False)  # samples would be news every interval
    reporter.update(10)
    assert reporter.flush(timeout=10)
    sent = recorder.count(job_id)
    time.sleep(0.5)  # ten intervals
    assert recorder.count(job_id) == sent == 1


def test_progress_and_metrics_reach_the_server(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    metrics = {"gpuUtilization": 87.0, "gpuMemoryUsed": 1000.0, "gpuMemoryTotal": 8000.0}
    reporter = make_reporter(job_id, gpu=lambda: metrics, name="resnet", price_per_hour=2.5)
    reporter.update(40, "epoch 4/10")
    assert reporter.flush(timeout=10)
    job = client.get_job(job_id)
    assert (job["progress"], job["currentOperation"], job["status"]) == (
        40,
        "epoch 4/10",
        "running",
    )
    assert (job["name"], job["pricePerHour"], job["workerId"]) == (
        "resnet",
        2.5,
        socket.gethostname(),
    )
    latest = client.monitor(job_id)["metrics"]["latest"]
    assert latest["gpuUtilization"] == 87.0


def test_gpu_auto_sends_nvml_samples(
    make_reporter: Any, job_id: str, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = FakeGpu("GPU-aaaaaaaa-1111-2222-3333-444444444444", utilization=64, memory_used=GIB)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([card]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu.reset()
    try:
        reporter = make_reporter(job_id, gpu="auto")
        reporter.update(1)
        assert reporter.flush(timeout=10)
        reporter.close(timeout=5)
    finally:
        gpu.reset()
    latest = client.monitor(job_id)["metrics"]["latest"]
    assert (latest["gpuUtilization"], latest["gpuMemoryUsed"]) == (64, 1024)


def test_gpu_and_system_false_send_no_metrics(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    reporter = make_reporter(job_id, gpu=False, system=False)
    reporter.update(1)
    assert reporter.flush(timeout=10)
    assert client.monitor(job_id)["metrics"]["latest"] is None


def test_rejected_metrics_are_dropped_with_one_warning(
    make_reporter: Any, job_id: str, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make_reporter(job_id, gpu=lambda: {"gpuUtilization": 150.0})
    own_logger = logging.getLogger("jobwatch.report.reporter")
    handler = reporter.logging_handler()
    own_logger.addHandler(handler)  # the reporter's own warnings must not feed back
    try:
        reporter.log("kept")
        reporter.update(5)
        assert reporter.flush(timeout=10)
    finally:
        own_logger.removeHandler(handler)
    assert log_messages(client, job_id) == ["kept"]
    warnings = [r for r in caplog.records if r.name == "jobwatch.report.reporter"]
    assert len(warnings) == 1
    assert "metrics" in warnings[0].getMessage()


# -- log lines ------------------------------------------------------------------------


def test_logs_arrive_in_order_in_batches_of_1000(
    make_reporter: Any, job_id: str, client: Client, recorder: Recorder
) -> None:
    reporter = make_reporter(job_id, interval=60)  # only the flush and the backlog send
    for i in range(2500):
        reporter.log(f"line {i}", level=("info", "warning", "error")[i % 3])
    assert reporter.flush(timeout=10)
    logs = all_logs(client, job_id)
    assert [line["message"] for line in logs] == [f"line {i}" for i in range(2500)]
    assert [line["level"] for line in logs[:3]] == ["info", "warning", "error"]
    assert recorder.count(job_id) == 3


def test_large_lines_are_split_under_the_body_limit(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    reporter = make_reporter(job_id)
    big = ["\u00e9" * 8000 + f" {i}" for i in range(150)]  # 16 kB each, 7 MB as JSON
    for message in big:
        reporter.log(message)
    reporter.log("\ud800 lone surrogate")
    reporter.update(1, "operation \udc80")
    assert reporter.flush(timeout=20)
    messages = log_messages(client, job_id)
    assert messages[:150] == big
    assert messages[150] == "? lone surrogate"
    assert client.get_job(job_id)["currentOperation"] == "operation ?"


def test_track_yields_everything_and_reaches_100(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    reporter = make_reporter(job_id)
    assert list(reporter.track(range(10), description="epoch")) == list(range(10))
    assert reporter.flush(timeout=10)
    job = client.get_job(job_id)
    assert (job["progress"], job["currentOperation"]) == (100, "epoch 10/10")


def test_track_without_length_counts_only(make_reporter: Any, job_id: str, client: Client) -> None:
    reporter = make_reporter(job_id)
    items = (x for x in "abc")
    assert list(reporter.track(items)) == ["a", "b", "c"]
    assert reporter.flush(timeout=10)
    job = client.get_job(job_id)
    assert (job["progress"], job["currentOperation"]) == (0, "3/?")


def test_track_with_total(make_reporter: Any, job_id: str, client: Client) -> None:
    reporter = make_reporter(job_id)
    seen = []
    for item in reporter.track(iter(range(8)), total=16, description="batch"):
        seen.append(item)
    assert seen == list(range(8))
    assert reporter.flush(timeout=10)
    job = client.get_job(job_id)
    assert (job["progress"], job["currentOperation"]) == (50, "batch 8/16")


def test_logging_handler_maps_levels(make_reporter: Any, job_id: str, client: Client) -> None:
    reporter = make_reporter(job_id)
    logger = logging.getLogger(f"test.{job_id}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = reporter.logging_handler()
    logger.addHandler(handler)
    try:
        logger.debug("d")
        logger.info("i %d", 1)
        logger.warning("w")
        logger.error("e")
        logger.critical("c")
        try:
            raise KeyError("boom")
        except KeyError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert reporter.flush(timeout=10)
    logs = all_logs(client, job_id)
    assert [(line["level"], line["message"]) for line in logs[:5]] == [
        ("info", "d"),
        ("info", "i 1"),
        ("warning", "w"),
        ("error", "e"),
        ("error", "c"),
    ]
    assert logs[5]["level"] == "error"
    assert logs[5]["message"].startswith("failed\nTraceback")
    assert "KeyError: 'boom'" in logs[5]["message"]


# -- finishing --------------------------------------------------------------------------


def test_context_manager_completes(make_reporter: Any, job_id: str, client: Client) -> None:
    with make_reporter(job_id) as reporter:
        reporter.update(30)
        reporter.log("working")
    job = client.get_job(job_id)
    assert (job["status"], job["progress"]) == ("completed", 100)
    assert log_messages(client, job_id) == ["working"]


def test_context_manager_fails_with_the_exception_and_reraises(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    with pytest.raises(ZeroDivisionError), make_reporter(job_id) as reporter:
        reporter.update(30)
        1 / 0  # noqa: B018
    job = client.get_job(job_id)
    assert (job["status"], job["progress"]) == ("failed", 30)
    assert job["error"] == "ZeroDivisionError: division by zero"
    (line,) = all_logs(client, job_id)
    assert line["level"] == "error"
    assert line["message"].startswith("Traceback")


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (0, "completed", None),
        (None, "completed", None),
        (3, "failed", "exit status 3"),
        ("no data", "failed", "no data"),
    ],
)
def test_sys_exit_in_the_context_manager_ends_the_job_by_its_status(
    make_reporter: Any,
    job_id: str,
    client: Client,
    code: int | str | None,
    status: str,
    error: str | None,
) -> None:
    """``sys.exit(0)`` (or ``sys.exit()``) is a success, as for the shell; any other
    status fails the job with it (before: every ``SystemExit`` failed the job as
    ``"SystemExit: 0"``)."""
    with pytest.raises(SystemExit), make_reporter(job_id) as reporter:
        reporter.update(30)
        sys.exit(code)
    job = client.get_job(job_id)
    assert (job["status"], job["error"]) == (status, error)


def test_complete_with_result_then_calls_are_ignored(
    make_reporter: Any, job_id: str, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make_reporter(job_id)
    reporter.update(90)
    assert reporter.complete({"accuracy": 0.93}) is True
    job = client.get_job(job_id)
    assert (job["status"], job["result"]) == ("completed", {"accuracy": 0.93})
    reporter.update(200)  # ignored, never raises
    reporter.log("late")
    assert reporter.complete() is False
    assert reporter.close() is False
    warnings = [r for r in caplog.records if r.name == "jobwatch.report.reporter"]
    assert len(warnings) == 1
    assert "closed" in warnings[0].getMessage()


def test_fail_with_a_message(make_reporter: Any, job_id: str, client: Client) -> None:
    reporter = make_reporter(job_id)
    assert reporter.fail("out of memory") is True
    job = client.get_job(job_id)
    assert (job["status"], job["error"]) == ("failed", "out of memory")


# -- refusals: no retry storms ----------------------------------------------------------


def test_worker_mismatch_stops_without_retrying(
    make_reporter: Any,
    job_id: str,
    client: Client,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.ensure_job(job_id, worker_id="someone-else")
    reporter = make_reporter(job_id, worker_id="me")
    reporter.update(10)
    assert reporter.flush(timeout=5) is False
    time.sleep(0.3)
    assert recorder.count(job_id, "PUT") == 2  # the test's and the reporter's one try
    assert recorder.count(job_id) == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "jobwatch.report.reporter"]
    assert len(messages) == 1
    assert "worker_mismatch" in messages[0]
    assert client.get_job(job_id)["progress"] == 0


def test_rate_limited_waits_retry_after(
    make_reporter: Any, job_id: str, client: Client, recorder: Recorder
) -> None:
    reporter = make_reporter(job_id)
    recorder.rate_limit = [0.5]
    reporter.update(20)
    reporter.log("after 429")
    assert reporter.flush(timeout=10)
    progress_calls = [
        (t, status) for t, _, p, status in recorder.calls if job_id in p and "progress" in p
    ]
    assert [status for _, status in progress_calls] == [429, 200]
    assert progress_calls[1][0] - progress_calls[0][0] >= 0.45
    assert log_messages(client, job_id) == ["after 429"]


# -- the server goes away -----------------------------------------------------------------


def test_unreachable_server_never_raises_and_close_is_bounded() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    reporter = Reporter("job-offline", url=url, gpu=False, interval=0.01)
    for i in range(1000):
        reporter.update(i / 10)
        reporter.log(f"line {i}")
    assert reporter.flush(timeout=0.2) is False
    start = time.monotonic()
    assert reporter.close(timeout=1.0) is False
    assert time.monotonic() - start < 1.5
    wait_for(
        lambda: "jobwatch-reporter-job-offline" not in {t.name for t in threading.enumerate()}, 2
    )


def test_full_buffer_drops_oldest_and_says_how_many() -> None:
    port = free_port()
    reporter = Reporter(
        "job-buffer", url=f"http://127.0.0.1:{port}", gpu=False, interval=0.05, max_log_lines=10
    )
    for i in range(50):
        reporter.log(f"line {i}")
    time.sleep(0.2)  # a few failed tries
    with EmbeddedServer(port=port) as srv:
        assert reporter.close(timeout=10) is True
        messages = log_messages(Client(srv.url), "job-buffer")
    assert "40 log lines / 0 metric points dropped" in messages[0]
    assert messages[1:] == [f"line {i}" for i in range(40, 50)]


@pytest.mark.slow
def test_server_restart_loses_nothing(tmp_path: Any) -> None:
    config = {"DATABASE": str(tmp_path / "db.sqlite")}
    srv = EmbeddedServer(config=config)
    port = srv.port
    reporter = Reporter("job-restart", url=srv.url, gpu=False, interval=0.05)
    worst = 0.0
    n = 300
    try:
        for i in range(n):
            if i == 100:
                srv.stop()
            if i == 200:
                srv = EmbeddedServer(port=port, config=config)
            start = time.perf_counter()
            reporter.update(100 * (i + 1) / n, f"step {i + 1}/{n}")
            reporter.log(f"line {i}")
            worst = max(worst, time.perf_counter() - start)
            time.sleep(0.01)
        assert reporter.complete({"steps": n}, timeout=30) is True
        assert worst < 1.0  # never waited on the network (HTTP timeout: seconds)
        client = Client(srv.url)
        job = client.get_job("job-restart")
        assert (job["status"], job["progress"], job["result"]) == ("completed", 100, {"steps": n})
        assert job["currentOperation"] == f"step {n}/{n}"
        assert log_messages(client, "job-restart") == [f"line {i}" for i in range(n)]
    finally:
        reporter.close(timeout=1)
        srv.stop()


def test_restart_with_empty_database_recreates_the_job() -> None:
    srv = EmbeddedServer()
    port = srv.port
    reporter = Reporter("job-memory", url=srv.url, gpu=False, interval=0.05, name="kept name")
    try:
        reporter.update(10)
        assert reporter.flush(timeout=10)
        srv.stop()
        srv = EmbeddedServer(port=port)  # ":memory:": the job is gone
        reporter.update(60, "after restart")
        reporter.log("still here")
        assert reporter.flush(timeout=15)
        client = Client(srv.url)
        job = client.get_job("job-memory")
        assert (job["progress"], job["name"]) == (60, "kept name")
        assert log_messages(client, "job-memory") == ["still here"]
    finally:
        reporter.close(timeout=1)
        srv.stop()


def test_close_is_bounded_while_a_request_hangs() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        reporter = Reporter("job-hang", url=url, gpu=False, timeout=1.0)
        reporter.update(50)
        time.sleep(0.1)  # the ensure request is in flight
        start = time.monotonic()
        reporter.close(timeout=0.3)
        assert time.monotonic() - start < 0.8
        name = "jobwatch-reporter-job-hang"
        wait_for(lambda: name not in {t.name for t in threading.enumerate()}, 3)


# -- interpreter exit -----------------------------------------------------------------------


def _run_child(code: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - start


@pytest.mark.slow
def test_pending_state_is_delivered_at_exit(module_server: EmbeddedServer, job_id: str) -> None:
    done, _ = _run_child(
        f"""
        from jobwatch.report.reporter import Reporter
        r = Reporter({job_id!r}, url={module_server.url!r}, gpu=False, interval=600)
        r.update(10)
        assert r.flush(10)
        r.update(42, "halfway")
        r.log("bye")
        """
    )
    assert done.returncode == 0, done.stderr
    client = Client(module_server.url)
    job = client.get_job(job_id)
    assert (job["progress"], job["currentOperation"], job["status"]) == (42, "halfway", "running")
    assert log_messages(client, job_id) == ["bye"]


@pytest.mark.slow
def test_exit_does_not_hang_when_the_server_is_down() -> None:
    done, elapsed = _run_child(
        f"""
        from jobwatch.report.reporter import Reporter
        r = Reporter("job-exit", url="http://127.0.0.1:{free_port()}", gpu=False)
        r.update(10)
        r.log("lost")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "unreachable at exit" in done.stderr
    assert "1 log lines" in done.stderr
    assert elapsed < 15  # one try, bounded by 5 s; the rest is interpreter start-up


def test_nul_characters_become_replacement_characters(
    make_reporter: Any, job_id: str, client: Client
) -> None:
    """The server refuses NUL (PostgreSQL cannot store it); one stray byte in a
    log line must not cost the lines around it."""
    reporter = make_reporter(job_id)
    reporter.log("before")
    reporter.log("bad \x00 byte")
    reporter.update(10, "step\x00 1")
    reporter.log("after")
    assert reporter.flush(timeout=10)
    messages = [line["message"] for line in client.logs(job_id)["logs"]]
    assert messages == ["before", "bad \ufffd byte", "after"]
    assert client.get_job(job_id)["currentOperation"] == "step\ufffd 1"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda r: r.log_metrics({"a": 1.0}, step=2**63),
            "step must be an integer from 0 to 2**62",
        ),
        (lambda r: r.log_metrics({"b": 10**400}), "too large for a float"),
    ],
)
def test_values_the_server_would_refuse_are_refused_at_the_call(
    make_reporter: Any, job_id: str, client: Client, call: Any, message: str
) -> None:
    """A step past 2**62 passed the Reporter and the server refused the whole
    request, the valid log line beside it too; 10**400 raised OverflowError."""
    reporter = make_reporter(job_id)
    reporter.log("valid line before")
    with pytest.raises(ValueError, match=re.escape(message)):
        call(reporter)
    reporter.complete()
    assert log_messages(client, job_id) == ["valid line before"]


@pytest.mark.parametrize("url", [5, b"http://127.0.0.1:1"])
def test_a_url_that_is_not_text_is_a_value_error(url: Any) -> None:
    with pytest.raises(ValueError, match="url must be a string"):
        Reporter("job-x", url=url, gpu=False)
