"""jobwatch.track outside a kernel: the loop reports, the job ends as the loop did,
and a live text view of the job goes to standard error."""

from __future__ import annotations

import re
from typing import Any

import pytest

import jobwatch
from jobwatch import Client


@pytest.fixture
def client(server: Any) -> Any:
    with Client(server.url) as c:
        yield c


def test_a_loop_reports_each_item_and_completes(server, client, capsys) -> None:
    items = jobwatch.track(range(5), job="t1", name="digits", url=server.url, price_per_hour=2.5)
    assert len(items) == 5 and items.job_id == "t1" and items.monitor is None
    seen = [item for item in items]
    assert seen == list(range(5))
    job = client.get_job("t1")
    assert (job["status"], job["progress"], job["name"]) == ("completed", 100.0, "digits")
    assert job["pricePerHour"] == 2.5
    err = capsys.readouterr().err
    assert "job digits (t1) completed" in err  # the watcher's end, on stderr


def test_the_iterables_exception_fails_the_job(server, client) -> None:
    def broken():
        yield 1
        raise RuntimeError("loader died")

    with pytest.raises(RuntimeError):
        for _ in jobwatch.track(broken(), job="t2", url=server.url):
            pass
    job = client.get_job("t2")
    assert job["status"] == "failed" and "loader died" in job["error"]


def test_a_body_that_raises_inside_with_fails_the_job(server, client) -> None:
    with pytest.raises(ValueError), jobwatch.track(range(10), job="t3", url=server.url) as items:
        for i in items:
            if i == 3:
                raise ValueError("loss is nan")
    job = client.get_job("t3")
    assert job["status"] == "failed" and "loss is nan" in job["error"]


def test_break_completes_the_job(server, client) -> None:
    for i in jobwatch.track(range(10), job="t4", url=server.url, description="epoch"):
        if i == 4:
            break
    assert client.get_job("t4")["status"] == "completed"


def test_initial_starts_part_way(server, client) -> None:
    items = jobwatch.track(range(5), total=10, initial=5, job="t5", url=server.url)
    for _ in items:
        pass
    job = client.get_job("t5")
    assert job["status"] == "completed" and job["currentOperation"] == "10/10"


def test_the_url_comes_from_the_environment_else_an_embedded_server(server, monkeypatch) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    items = jobwatch.track([1, 2], name="resnet 50 / run")
    assert items.url == server.url
    assert re.fullmatch(r"resnet-50-run-[0-9a-f]{6}", items.job_id)
    list(items)
    monkeypatch.delenv("JOBWATCH_URL")
    embedded = jobwatch.track([1])
    try:
        assert embedded.url == jobwatch.serve().url
        list(embedded)
        assert Client(embedded.url).get_job(embedded.job_id)["status"] == "completed"
    finally:
        jobwatch.serve().stop()


def test_bad_arguments_raise_before_anything_starts(server) -> None:
    with pytest.raises(ValueError, match="total"):
        jobwatch.track(range(3), total=-1, url=server.url)
    with pytest.raises(ValueError, match="job_id"):
        jobwatch.track(range(3), job="bad id!", url=server.url)
    with pytest.raises(ValueError, match="iterable must be iterable, got int"):
        jobwatch.track(5, job="not-iterable", url=server.url)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"initial \(5\) must not exceed total \(2\)"):
        jobwatch.track(range(2), job="past-total", total=2, initial=5, url=server.url)
    ids = [job["id"] for job in Client(server.url).list_jobs()["jobs"]]
    assert "not-iterable" not in ids and "past-total" not in ids  # nothing started
    items = jobwatch.track(range(1), url=server.url)
    list(items)
    with pytest.raises(RuntimeError, match="once"):
        list(items)


def test_training_metrics_from_the_loop(server, client) -> None:
    stats: dict[str, float] = {}
    items = jobwatch.track(range(3), job="t-metrics", url=server.url, metrics=stats)
    for i in items:
        stats["loss"] = 1.0 / (i + 1)
        items.log_metrics({"lr": 0.1}, step=i + 1)
    got = client.scalars("t-metrics")
    assert [(p["step"], p["value"]) for p in got["loss"]] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert [p["step"] for p in got["lr"]] == [1, 2, 3]
