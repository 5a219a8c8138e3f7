"""The real PostgreSQL and Redis of the scale-out tests (``../shared/TESTING.md``).

Their URLs come from ``JOBWATCH_TEST_POSTGRES_URL`` and
``JOBWATCH_TEST_REDIS_URL``; ``.ci/run`` sets both. Unset, the tests that need
them are skipped with the reason, except under ``CI=true``, where they fail.
Each server gets a schema of its own (``search_path``) and a Redis channel of
its own, so tests never see each other's rows or events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

POSTGRES_ENV = "JOBWATCH_TEST_POSTGRES_URL"
REDIS_ENV = "JOBWATCH_TEST_REDIS_URL"


def scale_urls() -> tuple[str, str]:
    """(PostgreSQL URL, Redis URL) from the environment, or skip / fail the test."""
    postgres, redis_url = os.environ.get(POSTGRES_ENV), os.environ.get(REDIS_ENV)
    if postgres and redis_url:
        return postgres, redis_url
    missing = " and ".join(
        n for n, v in ((POSTGRES_ENV, postgres), (REDIS_ENV, redis_url)) if not v
    )
    reason = f"{missing} not set: no PostgreSQL/Redis to test the scale-out tier against"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI must provide them)")
    pytest.skip(reason)


@contextmanager
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A new empty schema in ``postgres_url``'s database; yields a URL whose
    connections use it, and drops it afterwards."""
    schema = f"jw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{joiner}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def fresh_channel() -> str:
    """A Redis pub/sub channel no other test uses."""
    return f"jobwatch-test:{uuid.uuid4().hex[:12]}"
