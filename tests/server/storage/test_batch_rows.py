"""Job rows written by a batch: each changed row once, with its final values,
whatever columns each job changed (on SQLite only the changed ones are written)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from jobwatch.contract.requests import JobSpec
from jobwatch.server.core import rules
from jobwatch.server.storage import batch
from jobwatch.server.storage.schema import decode_row, jobs
from tests.services import schema_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with schema_engine(request.param) as engine:
        yield engine


def stored(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        return {row["id"]: decode_row(row) for row in conn.execute(select(jobs)).mappings()}


def test_rows_changed_in_different_columns_are_stored_with_their_final_values(
    engine: Engine,
) -> None:
    ids = ["a", "b", "c", "d"]
    with engine.begin() as conn:
        for job_id in ids:
            batch.insert_job(conn, rules.new_job(job_id, JobSpec(), 1.7e9))
    before = stored(engine)
    with engine.begin() as conn:
        batch.begin(conn, ids)
        batch.update_job(conn, "a", {"progress": 10.0, "current_operation": "epoch 1"})
        batch.update_job(conn, "a", {"progress": 20.0, "progress_event": {"seq": 2, "x": [1]}})
        batch.update_job(conn, "b", {"status": "running", "seq": 7})
        batch.update_job(conn, "c", {})  # nothing changed: nothing to write
        batch.update_job(conn, "d", {"progress": 5.0, "result": {"ok": True}})
        batch.finish(conn)
    after = stored(engine)
    expected = {job_id: dict(row) for job_id, row in before.items()}
    expected["a"].update(
        progress=20.0, current_operation="epoch 1", progress_event={"seq": 2, "x": [1]}
    )
    expected["b"].update(status="running", seq=7)
    expected["d"].update(progress=5.0, result={"ok": True})
    assert after == expected
