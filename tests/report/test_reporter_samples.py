"""A bad value from user code costs that value, not the run.

Out-of-range GPU values are sent as null the way ``jobwatch.report.gpu.sample()``
cleans them; a sample that cannot be cleaned, or one the server still refuses,
is dropped alone and sampling goes on. Text with NUL or lone surrogates never
costs the log lines or the completion around it.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import wait_for
from tests.report.conftest import log_messages

GOOD = {"gpuUtilization": 50.0, "gpuMemoryUsed": 1000.0, "gpuMemoryTotal": 8000.0}


class RefuseMetricsOnce:
    """WSGI middleware: answers the first progress request that carries metrics with
    the 400 the server gives for bad metrics, and lets everything else through."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.armed = False
        self.refused = 0
        self._inner = server.app.wsgi_app
        server.app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.armed and environ["PATH_INFO"].endswith("/progress"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            if json.loads(raw).get("metrics") is not None:
                self.armed = False
                self.refused += 1
                detail = {"field": "metrics.gpuUtilization", "message": "bad"}
                error = {"code": "validation_error", "message": "bad", "details": [detail]}
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [json.dumps({"error": error}).encode()]
            environ["wsgi.input"] = io.BytesIO(raw)
        return self._inner(environ, start_response)


@pytest.fixture(scope="module")
def refuser(module_server: EmbeddedServer) -> RefuseMetricsOnce:
    return RefuseMetricsOnce(module_server)


def samples_from(*samples: Any) -> Callable[[], Any]:
    """A ``gpu=`` callable returning ``samples`` in turn, then GOOD with a rising counter."""
    queue = list(samples)
    calls = [0]

    def sample() -> Any:
        calls[0] += 1
        if queue:
            item = queue.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item
        return {**GOOD, "gpuTemperature": float(calls[0] % 100)}

    return sample


def wait_for_good_samples(client: Client, job_id: str, count: int) -> list[dict[str, Any]]:
    def good() -> list[dict[str, Any]]:
        return [
            s
            for s in client.metrics(job_id, time_range=3600)
            if s["gpuTemperature"] is not None and s["gpuUtilization"] == 50.0
        ]

    wait_for(lambda: len(good()) >= count, 10, f"{count} good samples")
    return client.metrics(job_id, time_range=3600)


@pytest.mark.parametrize(
    ("bad", "kept"),
    [
        ({"gpuUtilization": 50.0, "gpuMemoryTotal": 0}, {"gpuUtilization": 50.0}),
        (
            {"gpuUtilization": 50.0, "gpuMemoryUsed": 9000.0, "gpuMemoryTotal": 8000.0},
            {"gpuUtilization": 50.0, "gpuMemoryTotal": 8000.0},
        ),
        ({"gpuUtilization": math.nan, "powerUsage": 100.0}, {"powerUsage": 100.0}),
        ({"gpuUtilization": math.inf, "powerUsage": 100.0}, {"powerUsage": 100.0}),
        ({"gpuUtilization": "87", "powerUsage": 100.0}, {"powerUsage": 100.0}),
        ({"gpuUtilization": True, "powerUsage": 100.0}, {"powerUsage": 100.0}),
        ({"gpuTemperature": 4294967295, "powerUsage": 100.0}, {"powerUsage": 100.0}),
        ({"gpuMemoryUsed": 4294967295.0, "gpuMemoryTotal": 8000.0}, {"gpuMemoryTotal": 8000.0}),
        ({"powerUsage": -5.0, "gpuUtilization": 50.0}, {"gpuUtilization": 50.0}),
        ({"gpuUtilization": 150.0, "powerUsage": 100.0}, {"powerUsage": 100.0}),
        ({"gpuUtilization": 50.0, "note": math.nan}, {"gpuUtilization": 50.0}),
    ],
)
def test_an_out_of_range_value_is_sent_as_null_and_sampling_goes_on(
    make_reporter: Callable[..., Reporter],
    client: Client,
    bad: dict[str, Any],
    kept: dict[str, Any],
) -> None:
    reporter = make_reporter(gpu=samples_from(bad))
    reporter.update(1)
    assert reporter.flush(timeout=10)
    metrics = wait_for_good_samples(client, reporter.job_id, 3)
    first = metrics[0]
    fields = ("gpuUtilization", "gpuMemoryUsed", "gpuMemoryTotal", "gpuTemperature", "powerUsage")
    assert {f: first[f] for f in fields if first[f] is not None} == kept


@pytest.mark.parametrize(
    "bad",
    [
        RuntimeError("NVML hiccup"),
        "not a mapping",
        42,
        {"gpus": "not a list"},
        {"gpus": [{"gpuUtilization": math.nan}, "not a mapping"]},
    ],
)
def test_a_sample_that_cannot_be_cleaned_costs_that_sample_only(
    make_reporter: Callable[..., Reporter], client: Client, bad: Any
) -> None:
    reporter = make_reporter(gpu=samples_from(bad, bad))
    reporter.update(1)
    assert reporter.flush(timeout=10)
    wait_for_good_samples(client, reporter.job_id, 3)


def test_per_gpu_entries_are_cleaned_one_by_one(
    make_reporter: Callable[..., Reporter], client: Client
) -> None:
    gpus = [
        {"index": 0, "uuid": "GPU-a", "name": "A", "gpuUtilization": 40.0, "gpuMemoryTotal": 0},
        {"index": -1, "uuid": "GPU-b\x00", "name": "B", "gpuUtilization": math.nan},
        "not a mapping",
    ]
    reporter = make_reporter(gpu=samples_from({"gpus": gpus}))
    reporter.update(1)
    assert reporter.flush(timeout=10)
    metrics = wait_for_good_samples(client, reporter.job_id, 2)
    first = metrics[0]
    assert first["gpuUtilization"] == 40.0
    assert [
        (g["index"], g["uuid"], g["gpuUtilization"], g["gpuMemoryTotal"]) for g in first["gpus"]
    ] == [
        (0, "GPU-a", 40.0, None),
        (None, None, None, None),
    ]


def test_metrics_the_server_refuses_are_dropped_for_that_request_only(
    make_reporter: Callable[..., Reporter], client: Client, refuser: RefuseMetricsOnce
) -> None:
    reporter = make_reporter(gpu=samples_from())
    refuser.armed = True
    reporter.log("kept")
    reporter.update(5)
    assert reporter.flush(timeout=10)
    assert refuser.refused == 1
    assert log_messages(client, reporter.job_id) == ["kept"]
    assert client.get_job(reporter.job_id)["progress"] == 5
    wait_for_good_samples(client, reporter.job_id, 3)


def test_text_with_nul_or_lone_surrogates_never_costs_the_lines_around_it(
    make_reporter: Callable[..., Reporter], client: Client
) -> None:
    reporter = make_reporter()
    reporter.log("before")
    for _ in reporter.track(range(2), description="ep\x00och"):
        pass
    handler = reporter.logging_handler()
    record = logging.LogRecord("user", logging.INFO, __file__, 1, "rec\x00ord \udc80", None, None)
    handler.handle(record)
    reporter.log("after")
    assert reporter.fail(RuntimeError("bad \x00 byte \udc80"), timeout=10)
    job = client.get_job(reporter.job_id)
    assert job["status"] == "failed"
    assert job["error"] == "RuntimeError: bad \ufffd byte ?"
    assert job["currentOperation"] == "ep\ufffdoch 2/2"
    messages = log_messages(client, reporter.job_id)
    assert messages[:3] == ["before", "rec\ufffdord ?", "after"]
    assert messages[3].startswith("Traceback") or "RuntimeError: bad \ufffd byte ?" in messages[3]


@pytest.mark.parametrize("field", ["worker_id", "name", "currency"])
def test_nul_in_the_job_description_is_refused_at_once(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Reporter("job-nul", url="http://127.0.0.1:9", gpu=False, **{field: "a\x00b"})
