"""The framework snippets of docs/python.md's "Frameworks" section run as written,
configured from ``JOBWATCH_*`` variables alone, and report what the section says."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from tests.integrations.test_integrations_docs import run_snippet, snippets

pytestmark = pytest.mark.frameworks

CASES = {
    "Hugging Face transformers: `JobwatchCallback`": {"loss", "learning_rate"},
    "Lightning: `JobwatchCallback` and `JobwatchLogger`": {"loss"},
    "Accelerate: `JobwatchTracker`": {"loss"},
    "XGBoost: `JobwatchCallback`": {"validation_0/logloss"},
    "LightGBM: `jobwatch_callback()`": {"valid_0/binary_logloss"},
}


def test_every_framework_has_a_snippet() -> None:
    assert set(CASES) <= set(snippets())


@pytest.mark.parametrize("heading", list(CASES))
def test_snippet_runs_and_reports(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, heading: str
) -> None:
    job_id = f"docs-{list(CASES).index(heading)}"
    monkeypatch.chdir(tmp_path)  # what the frameworks write (checkpoints, logs) goes here
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.setenv("JOBWATCH_JOB", job_id)
    monkeypatch.setenv("JOBWATCH_PRICE_PER_HOUR", "2.5")
    run_snippet(heading)
    client = Client(server.url)
    job = client.get_job(job_id)
    assert (job["status"], job["progress"], job["pricePerHour"]) == ("completed", 100, 2.5)
    assert CASES[heading] <= set(client.scalars(job_id))
