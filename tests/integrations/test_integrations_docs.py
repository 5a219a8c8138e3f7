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


def snippets() -> list[str]:
    section = DOC.read_text().split("\n## Frameworks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("index", "job_id", "names"),
    [
        (0, "keras-run-1", {"loss", "accuracy", "val_loss", "val_accuracy"}),
        (1, "sgd-digits", {"loss", "val/accuracy"}),
    ],
)
def test_snippet_runs_and_reports(
    server: EmbeddedServer,
    monkeypatch: pytest.MonkeyPatch,
    index: int,
    job_id: str,
    names: set[str],
) -> None:
    assert len(snippets()) == 2
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    exec(compile(snippets()[index], f"{DOC}:snippet {index}", "exec"), {})
    client = Client(server.url)
    assert client.get_job(job_id)["status"] == "completed"
    assert names <= set(client.scalars(job_id))
