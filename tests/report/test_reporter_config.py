"""The Reporter's config: set with ``Reporter(config=)``, changed by ``update_config``,
PUT by the sender thread and waited for by ``flush``; bad ones refused at the call."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


def reporter(server: EmbeddedServer, **options: Any) -> Reporter:
    return Reporter(
        f"cfg-{uuid.uuid4().hex[:8]}",
        url=server.url,
        gpu=False,
        interval=0.05,
        spool=False,
        **options,
    )


def stored(server: EmbeddedServer, job_id: str) -> Any:
    with Client(server.url) as client:
        return client.get_job(job_id)["config"]


def test_the_config_given_is_the_jobs(server: EmbeddedServer) -> None:
    config = {"lr": 3e-4, "layers": [64, 64], "model": {"name": "mlp"}}
    with reporter(server, config=config) as report:
        assert report.flush(10)
        assert stored(server, report.job_id) == config
        assert report.config == config


def test_update_config_merges_and_flush_waits_for_it(server: EmbeddedServer) -> None:
    with reporter(server, config={"lr": 1, "epochs": 3}) as report:
        report.update(10)
        assert report.flush(10)
        report.update_config({"lr": 2, "seed": 7})
        assert report.flush(10)  # nothing else recorded: the config alone is waited for
        assert stored(server, report.job_id) == {"lr": 2, "epochs": 3, "seed": 7}
        report.update_config({"only": True}, replace=True)
        assert report.flush(10)
        assert stored(server, report.job_id) == {"only": True}


def test_a_reporter_without_config_leaves_the_jobs_alone(server: EmbeddedServer) -> None:
    with reporter(server, config={"a": 1}) as first:
        assert first.flush(10)
        job_id = first.job_id
        first.close()
    again = Reporter(job_id, url=server.url, gpu=False, interval=0.05, spool=False)
    again.update(50)
    assert again.flush(10)
    again.close()
    assert stored(server, job_id) == {"a": 1}


@pytest.mark.parametrize(
    "bad",
    [
        [("a", 1)],
        {"x": math.nan},
        {"x": object()},
        {"x": 2**70},
        {"big": "x" * (64 * 1024)},
        {1: "a", "1": "b"},  # JSON would make both "1" and keep one
        {"outer": {("a", 1): 2}},
    ],
)
def test_bad_configs_raise_at_the_call_and_change_nothing(server: EmbeddedServer, bad: Any) -> None:
    with pytest.raises(ValueError, match="config"):
        reporter(server, config=bad)
    with reporter(server, config={"kept": 1}) as report:
        with pytest.raises(ValueError, match="config"):
            report.update_config(bad)
        assert report.config == {"kept": 1}
        assert report.flush(10)
        assert stored(server, report.job_id) == {"kept": 1}


def test_only_rank_0_sets_a_distributed_jobs_config(server: EmbeddedServer) -> None:
    job_id = f"cfg-{uuid.uuid4().hex[:8]}"
    ranks = [
        Reporter(
            job_id,
            url=server.url,
            gpu=False,
            interval=0.05,
            spool=False,
            rank=rank,
            world_size=2,
            local_rank=rank,
            config={"rank": rank},
        )
        for rank in (1, 0)
    ]
    for report in ranks:
        report.update(5)
        assert report.flush(10)
    ranks[0].update_config({"rank": 1, "late": True})
    assert ranks[0].flush(10)
    assert stored(server, job_id) == {"rank": 0}
    for report in ranks:
        report.close()
