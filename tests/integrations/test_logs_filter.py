"""What a framework's logs dict becomes: its numbers under allowed names reach the
server, anything else is left out with one warning per name, every step alike."""

from __future__ import annotations

import logging

import pytest

from jobwatch.client.rest import Client
from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


def test_numbers_pass_and_the_rest_is_left_out_once_per_name(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    logs = {"loss": 0.5, "epoch": 2, "bad name": 1.0, "per_class": [0.1, 0.2], "flag": True}
    with (
        caplog.at_level(logging.WARNING, logger="jobwatch.integrations"),
        Reporter("filter", url=server.url, gpu=False, spool=False) as report,
    ):
        metrics = MetricsFilter(report)
        for step in range(3):  # names checked at the first step stay allowed or left out
            metrics.log({**logs, "loss": 0.5 - step / 10}, step)
        metrics.send(metrics.numbers({"loss": 0.1}, prefix="val/"), 3)
    warned = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warned) == 3 and all(
        any(n in w for w in warned) for n in ("bad name", "per_class", "flag")
    )
    with Client(server.url) as client:
        got = client.scalars("filter")
    assert sorted(got) == ["epoch", "loss", "val/loss"]
    assert [p["value"] for p in got["loss"]] == [0.5, 0.4, 0.3]
    assert [p["step"] for p in got["val/loss"]] == [3]
