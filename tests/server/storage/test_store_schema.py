"""The store below the API: refused values never become a 500, and databases
made by an earlier version gain the columns added since."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select, text

from jobwatch.contract.requests import CompleteRequest, JobSpec, ProgressUpdate, parse_body
from jobwatch.errors import ValidationError
from jobwatch.server.storage import queries, rollups
from jobwatch.server.storage.store import Store
from tests.conftest import FakeClock
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
                from jobwatch.server.storage import queries

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


def _long_job(store: Store, clock: FakeClock) -> None:
    """One finished job: 400 samples 10 s apart and 2,000 values of ``loss``."""
    store.create_job(JobSpec(id="j"), None, upsert=False)
    for i in range(400):
        clock.advance(10)
        metrics = {"gpuUtilization": 99 if i == 123 else i % 50, "gpuTemperature": 60}
        points = [{"step": 5 * i + k, "values": {"loss": 1 / (5 * i + k + 1)}} for k in range(5)]
        body = {"workerId": "w", "progress": i / 4, "metrics": metrics, "scalars": points}
        store.apply_progress("j", parse_body(ProgressUpdate, orjson.dumps(body)))
    store.complete_job("j", CompleteRequest(workerId="w"))


def _long_reads(store: Store, end: float) -> tuple[object, ...]:
    with store.read() as conn:
        return (
            queries.sample_window(conn, "j", end - 4000, end, 20),
            queries.sample_window(conn, "j", end - 1234.5, end, 30),
            queries.scalar_window(conn, "j", None, None, end, 20),
            queries.scalar_window(conn, "j", ["loss"], end - 777, end, 40),
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_older_database_gets_roll_ups_from_its_raw_rows(backend: str, tmp_path: Path) -> None:
    """A job stored before the roll-up tables existed answers long windows as one
    stored after; pruning a job removes its roll-ups."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = str(tmp_path / "old.db")
        else:
            url = stack.enter_context(fresh_schema(scale_urls()[0]))
        clock = FakeClock()
        store = Store(url, clock=clock)
        _long_job(store, clock)
        end = clock()
        written = _long_reads(store, end)
        assert all(read[1] for read in written)  # each downsampled
        with store.engine.begin() as conn:  # as the release before roll-ups left it
            conn.execute(text("DROP TABLE sample_rollups"))
            conn.execute(text("DROP TABLE scalar_rollups"))
        store.close()
        store = Store(url, clock=clock)
        try:
            assert _long_reads(store, end) == written
            clock.advance(10)
            assert store.prune(0)["jobs"] == 1
            with store.read() as conn:
                for table in (rollups.sample_rollups, rollups.scalar_rollups):
                    count = select(func.count()).select_from(table)
                    assert conn.execute(count).scalar_one() == 0
        finally:
            store.close()
