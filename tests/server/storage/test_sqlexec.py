"""The driver-level write path binds exactly what SQLAlchemy would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, create_engine, select

from jobwatch.server.storage import batch
from jobwatch.server.storage.schema import jobs, samples
from jobwatch.server.storage.sqlexec import Prepared


def _bound(statement: Prepared, conn: Any, params: dict[str, Any]) -> list[Any]:
    """What ``construct_params`` gives, in the driver's positional order."""
    compiled = statement.statement.compile(dialect=conn.dialect, column_keys=sorted(params))
    values = compiled.construct_params(params)
    return [values[name] for name in compiled.positiontup or ()]


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (
            batch._UPDATE_JOB,
            {"b_job_id": "j1", **{c.name: f"v-{c.name}" for c in jobs.columns if c.name != "id"}},
        ),
        (batch._UPDATE_JOB, {"b_job_id": "j1", "progress": 12.5, "status": "running"}),
        (
            batch._INSERT_SAMPLE,
            {c.name: i for i, c in enumerate(samples.columns) if c.name != "id"},
        ),
        (
            Prepared(select(jobs.c.name).where(jobs.c.id == bindparam("b_job_id"))),
            {"b_job_id": "x"},
        ),
    ],
)
def test_arguments_are_construct_params_in_bind_order(
    statement: Prepared, params: dict[str, Any]
) -> None:
    with create_engine("sqlite://").connect() as conn:
        assert statement._compile(conn, frozenset(params)).args(params) == _bound(
            statement, conn, params
        )


def test_a_bind_missing_from_the_parameters_still_takes_its_statement_value() -> None:
    """A bind whose value is in the statement (not the dict) is not read from
    the dict: SQLAlchemy's own binding fills it."""
    statement = Prepared(select(jobs.c.name).where(jobs.c.id == bindparam("b_job_id", "fixed")))
    with create_engine("sqlite://").connect() as conn:
        assert statement._compile(conn, frozenset()).args({}) == ["fixed"]
