"""The snippets of docs/python.md's "Frameworks" section run as written (the
server from ``$JOBWATCH_URL``) and report what the section says."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from tests.paths import REPO

os.environ["KERAS_BACKEND"] = (
    "jax"  # as tests/integrations/test_integrations_keras.py, whichever runs first
)

DOC = REPO / "docs" / "python.md"


def snippets() -> dict[str, str]:
    """``{heading: its first Python snippet}`` of each ``###`` part of the section."""
    section = DOC.read_text().split("\n## Frameworks\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for part in section.split("\n### ")[1:]:
        heading, _, body = part.partition("\n")
        code = re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)
        if code:
            found[heading] = code[0]
    return found


def run_snippet(heading: str) -> None:
    exec(compile(snippets()[heading], f"{DOC}: {heading}", "exec"), {})


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("heading", "job_id", "names"),
    [
        ("Keras 3: `JobwatchCallback`", "keras-run-1", {"loss", "accuracy", "val_loss", "val_accuracy"}),
        ("scikit-learn and other `partial_fit` loops: `track(metrics=...)`", "sgd-digits", {"loss", "val/accuracy"}),
    ],
)  # fmt: skip
def test_snippet_runs_and_reports(
    server: EmbeddedServer,
    monkeypatch: pytest.MonkeyPatch,
    heading: str,
    job_id: str,
    names: set[str],
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    run_snippet(heading)
    client = Client(server.url)
    assert client.get_job(job_id)["status"] == "completed"
    assert names <= set(client.scalars(job_id))


def test_the_environment_table_lists_every_variable() -> None:
    from jobwatch.integrations.environment import ENVIRONMENT

    section = DOC.read_text().split("\n### Configured from the environment\n", 1)[1]
    listed = re.findall(r"^\| `(JOBWATCH_\w+)` \|", section.split("\n### ", 1)[0], flags=re.M)
    assert listed == list(ENVIRONMENT)
