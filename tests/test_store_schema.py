"""The store below the API: refused values never become a 500, and databases
made by an earlier version gain the columns added since."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobwatch.errors import ValidationError
from jobwatch.protocol import JobSpec, ProgressUpdate, parse_body
from jobwatch.server.store import Store
from tests.services import fresh_schema, scale_urls


def test_a_value_postgresql_cannot_store_is_a_400_and_writes_nothing() -> None:
    """NUL passes no validator today; were one to slip through, the driver's
    DataError must answer 400, not 500, and leave the job as it was."""
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        store = Store(url)
        try:
            store.create_job(JobSpec(id="j"), None, upsert=False)
            bad = JobSpec.model_construct(name="a\x00b")
            with pytest.raises(ValidationError, match="database refused a value"):
                store.create_job(bad, "j", upsert=True)
            with store.read() as conn:
                from jobwatch.server import queries

                job = queries.get_job(conn, "j")
            assert job is not None and job["name"] is None
        finally:
            store.close()


def test_an_older_sqlite_database_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store(str(path)).close()
    with sqlite3.connect(path) as conn:  # as the release before pause_streak made it
        conn.execute("ALTER TABLE jobs DROP COLUMN pause_streak")
        conn.execute("DROP TABLE applied_updates")
    store = Store(str(path))
    try:
        store.create_job(JobSpec(id="j"), None, upsert=False)
        body = b'{"workerId": "w", "progress": 5, "updateId": "u1"}'
        reply = store.apply_progress("j", parse_body(ProgressUpdate, body))
        assert reply.body["progress"] == 5
    finally:
        store.close()
