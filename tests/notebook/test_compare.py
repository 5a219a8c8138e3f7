"""jobwatch.compare against a real server: one line per job."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import jobwatch
from jobwatch.client.rest import Client
from jobwatch.errors import JobNotFound


@pytest.fixture
def runs(server: Any, clock: Any) -> Client:
    client = Client(server.url)
    for job, scale in (("sweep-a", 1.0), ("sweep-b", 2.0)):
        client.create_job(job_id=job)
        for step in range(1, 6):
            client.report_progress(
                job,
                "w",
                step * 10,
                metrics={"gpuUtilization": 50 * scale, "gpuMemoryUsed": 2048 * scale},
                scalars=[{"step": step, "values": {"loss": scale / step}}],
            )
            clock.advance(10)
    return client


def test_a_training_metric_by_step(server: Any, runs: Client) -> None:
    figure = jobwatch.compare(["sweep-a", "sweep-b"], "loss", url=server.url)
    (lines,) = figure.marks
    assert list(lines.labels) == ["sweep-a", "sweep-b"]
    assert list(lines.x) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(lines.y[1], [2.0, 1.0, 2 / 3, 0.5, 0.4], rtol=1e-6)
    assert figure.axes[0].label == "step"


def test_a_gpu_metric_over_time_since_start(server: Any, runs: Client) -> None:
    figure = jobwatch.compare(["sweep-a", "sweep-b"], "gpuMemoryUsed", url=server.url)
    (lines,) = figure.marks
    assert lines.x[0] == 0.0 and figure.axes[0].label == "seconds since start"
    assert lines.y[1][0] == pytest.approx(4.0)  # 4096 MB in GiB
    assert "GiB" in figure.title


def test_jobs_without_the_metric_are_left_out(server: Any, runs: Client) -> None:
    figure = jobwatch.compare(["sweep-a"], "accuracy", url=server.url)
    assert list(figure.marks[0].labels) == []


def test_bad_arguments(server: Any, runs: Client) -> None:
    with pytest.raises(ValueError, match="1-50 job ids"):
        jobwatch.compare([], url=server.url)
    with pytest.raises(ValueError, match="non-empty name"):
        jobwatch.compare(["sweep-a"], "", url=server.url)
    with pytest.raises(JobNotFound):
        jobwatch.compare(["nope"], "gpuUtilization", url=server.url)


def test_by_config_keys_orders_and_labels_the_lines(server: Any, runs: Client) -> None:
    runs.ensure_job("sweep-a", worker_id="w", config={"lr": 0.1, "opt": {"name": "sgd"}})
    runs.ensure_job("sweep-b", worker_id="w", config={"lr": 0.01, "opt": {"name": "adam"}})
    figure = jobwatch.compare(["sweep-a", "sweep-b"], "loss", url=server.url, by="lr")
    (lines,) = figure.marks
    assert list(lines.labels) == ["sweep-b lr=0.01", "sweep-a lr=0.1"]
    np.testing.assert_allclose(lines.y[0], [2.0, 1.0, 2 / 3, 0.5, 0.4], rtol=1e-6)
    figure = jobwatch.compare(["sweep-b", "sweep-a"], "loss", url=server.url, by=["opt.name"])
    assert list(figure.marks[0].labels) == ["sweep-b opt.name=adam", "sweep-a opt.name=sgd"]
    assert "by opt.name" in figure.title


def test_a_job_without_the_key_goes_last(server: Any, runs: Client) -> None:
    runs.ensure_job("sweep-b", worker_id="w", config={"lr": 0.5})
    figure = jobwatch.compare(["sweep-a", "sweep-b"], "loss", url=server.url, by="lr")
    assert list(figure.marks[0].labels) == ["sweep-b lr=0.5", "sweep-a lr=-"]


def test_bad_by(server: Any, runs: Client) -> None:
    with pytest.raises(ValueError, match="config keys"):
        jobwatch.compare(["sweep-a"], "loss", url=server.url, by=[""])
    with pytest.raises(ValueError, match="config keys"):
        jobwatch.compare(["sweep-a"], "loss", url=server.url, by=3)  # type: ignore[arg-type]
