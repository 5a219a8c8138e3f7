"""One real jobwatch server (in this process) for each module of framework tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobwatch.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()
