"""Reporter.log_metrics and track(metrics=) against a real server, read back
with Client.scalars."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


def series(server: EmbeddedServer, job_id: str) -> dict[str, list[tuple[int, float]]]:
    got = Client(server.url).scalars(job_id)
    return {name: [(p["step"], p["value"]) for p in points] for name, points in got.items()}


def test_log_metrics_with_a_default_step_counter(server: EmbeddedServer) -> None:
    with Reporter("m1", url=server.url, gpu=False, interval=0.05) as report:
        report.log_metrics({"loss": 0.9})
        report.log_metrics({"loss": np.float32(0.5), "val/accuracy": 0.75})
        report.log_metrics({"loss": 0.25}, step=10)
        report.log_metrics({"loss": 0.125})
    assert series(server, "m1") == {
        "loss": [(0, 0.9), (1, 0.5), (10, 0.25), (11, 0.125)],
        "val/accuracy": [(1, 0.75)],
    }


def test_a_diverged_loss_is_left_out_with_one_warning(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, "jobwatch.report.reporter"),
        Reporter("m2", url=server.url, gpu=False, interval=0.05) as report,
    ):
        report.log_metrics({"loss": float("nan"), "acc": 0.5})
        report.log_metrics({"loss": float("inf")})
        report.log_metrics({"loss": 0.5})
    assert series(server, "m2") == {"acc": [(0, 0.5)], "loss": [(2, 0.5)]}
    assert sum("non-finite" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("values", "step", "message"),
    [
        ([("loss", 1.0)], None, "values must be a mapping"),
        ({"bad name": 1.0}, None, "not allowed"),
        ({7: 1.0}, None, "not allowed"),
        ({"loss": True}, None, "must be a number"),
        ({"loss": "0.5"}, None, "must be a number"),
        ({"loss": object()}, None, "must be a number"),
        ({"loss": 1.0}, -1, "step must be"),
        ({"loss": 1.0}, 1.5, "step must be"),
        ({"loss": 1.0}, True, "step must be"),
    ],
)
def test_bad_metrics_raise_at_once(
    server: EmbeddedServer, values: Any, step: Any, message: str
) -> None:
    report = Reporter("m3", url=server.url, gpu=False)
    with pytest.raises(ValueError, match=message):
        report.log_metrics(values, step=step)
    report.close()


def test_more_than_100_names_raise(server: EmbeddedServer) -> None:
    report = Reporter("m4", url=server.url, gpu=False)
    report.log_metrics({f"m{k}": 1.0 for k in range(100)})
    with pytest.raises(ValueError, match="at most 100 metric names"):
        report.log_metrics({"one_more": 1.0})
    report.close()


def test_track_logs_the_loop_bodys_metrics_after_each_item(server: EmbeddedServer) -> None:
    stats: dict[str, float] = {}
    with Reporter("m5", url=server.url, gpu=False, interval=0.05) as report:
        for epoch in report.track(range(3), metrics=stats):
            stats["loss"] = 1.0 / (epoch + 1)
    assert series(server, "m5") == {"loss": [(1, 1.0), (2, 0.5), (3, 1 / 3)]}
    with Reporter("m6", url=server.url, gpu=False, interval=0.05) as report:
        list(report.track(range(2), metrics=lambda: {"lr": 0.1}))
    assert series(server, "m6") == {"lr": [(1, 0.1), (2, 0.1)]}
    with pytest.raises(ValueError, match="metrics must be a mapping or a function"):
        Reporter("m7", url=server.url, gpu=False).track(range(2), metrics=3)  # type: ignore[arg-type]


def test_more_values_than_one_request_takes_arrive_in_order(server: EmbeddedServer) -> None:
    with Reporter("m8", url=server.url, gpu=False, interval=0.05) as report:
        for step in range(400):
            report.log_metrics({"a": step, "b": step, "c": step}, step=step)  # 1,200 values
    got = series(server, "m8")
    assert [s for s, _ in got["a"]] == list(range(400))


def test_alerts_from_training_code(server: EmbeddedServer) -> None:
    with Reporter("alerting", url=server.url, gpu=False, interval=0.05) as report:
        report.alert("loss is NaN", "at step 1200", level="error")
        report.alert("learning rate lowered")
    got = Client(server.url).alerts("alerting")["alerts"]
    assert [(a["title"], a["text"], a["level"], a["source"]) for a in got] == [
        ("loss is NaN", "at step 1200", "error", "worker"),
        ("learning rate lowered", None, "warning", "worker"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("",), "title must be"),
        ((None,), "title must be"),
        (("t", 3), "text must be"),
        (("t", None, "fatal"), "level must be"),
    ],
)
def test_bad_alerts_raise(server: EmbeddedServer, args: Any, message: str) -> None:
    report = Reporter("bad-alert", url=server.url, gpu=False)
    with pytest.raises(ValueError, match=message):
        report.alert(*args)
    report.close()
