"""The typed job row (jobwatch/server/core/job_row.py) is the ``jobs`` table's row."""

from __future__ import annotations

from jobwatch.contract.requests import JobSpec
from jobwatch.server.core import rules
from jobwatch.server.core.job_row import JobRow, ListedJob, log_counts, with_changes
from jobwatch.server.storage import queries
from jobwatch.server.storage.schema import jobs
from jobwatch.server.storage.store import Store


def test_the_typed_row_has_exactly_the_tables_columns() -> None:
    assert set(JobRow.__annotations__) == {c.name for c in jobs.columns}
    assert set(ListedJob.__annotations__) == {c.name for c in jobs.columns} - {"progress_event"}


def test_a_new_job_is_a_whole_row_and_reads_back_the_same() -> None:
    spec = JobSpec.model_validate({"name": "n", "workerId": "w", "pricePerHour": 2.0})
    row = rules.new_job("j", spec, 100.0)
    assert set(row) == set(JobRow.__annotations__)
    store = Store(":memory:")
    try:
        created, _ = store.create_job(spec, "j", upsert=False)
        with store.read() as conn:
            stored = queries.get_job(conn, "j")
            listed, total = queries.list_jobs(conn, None, 10, 0)
    finally:
        store.close()
    assert stored is not None and set(stored) == set(JobRow.__annotations__)
    assert {k: v for k, v in stored.items() if not k.endswith("_at")} == {
        k: v for k, v in created.items() if not k.endswith("_at")
    }
    assert total == 1 and set(listed[0]) == set(ListedJob.__annotations__)


def test_changes_make_a_new_row_and_counts_read_by_level() -> None:
    spec = JobSpec.model_validate({})
    job = rules.new_job("j", spec, 0.0)
    changed = with_changes(job, {"n_warning": 3, "status": "running"})
    assert (job["status"], changed["status"]) == ("pending", "running")
    assert log_counts(changed) == {"info": 0, "warning": 3, "error": 0}
