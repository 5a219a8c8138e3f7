"""Fixtures of the web tests: ``setup``, a server with two tenants (see :mod:`tests.server.web.tenants`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FakeClock
from tests.server.web.tenants import Setup, tenancy_setup


@pytest.fixture
def setup(clock: FakeClock, tmp_path: Path) -> Iterator[Setup]:
    """Tenants acme and globex on a fresh server whose clock is ``clock``."""
    with tenancy_setup(clock, tmp_path) as s:
        yield s
