"""The monitor shows the job's config as a folded table, escaped."""

from __future__ import annotations

from typing import Any

from jobwatch.client.rest import Client
from jobwatch.notebook.monitor import JobMonitor
from tests.conftest import wait_for


def test_the_config_shows_folded_with_its_keys(server: Any, client: Client) -> None:
    config = {"lr": 0.001, "model": {"name": "<b>mlp</b>", "layers": [64, 64]}}
    client.ensure_job("cfg", config=config)
    client.report_progress("cfg", "w", 5)
    with JobMonitor("cfg", server.url, widgets=True) as mon:
        view = mon.view
        wait_for(lambda: "config (3 keys)" in view.config.value)
        html = view.config.value
        assert "<details" in html and "<code>model.layers</code>" in html
        assert "&lt;b&gt;mlp&lt;/b&gt;" in html and "<b>mlp</b>" not in html
        assert html.index("lr") < html.index("model.layers") < html.index("model.name")


def test_no_config_shows_nothing(server: Any, client: Client) -> None:
    client.ensure_job("plain")
    client.report_progress("plain", "w", 5)
    with JobMonitor("plain", server.url, widgets=True) as mon:
        wait_for(lambda: mon.view.percent.value == "<b>5.0%</b>")
        assert mon.view.config.value == ""
