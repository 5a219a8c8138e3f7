"""Roll-ups written at ingest, batch by batch, equal their definition computed
from the raw rows, and equal what :func:`jobwatch.server.storage.rollups.backfill`
computes from the raw rows at once, whatever the batches, on SQLite and on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, select

from jobwatch.server.storage import batch, rollups
from jobwatch.server.storage.schema import samples, scalars
from tests.services import schema_engine

Row = dict[str, Any]

_value = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
_sample = st.fixed_dictionaries(
    {
        "job_id": st.sampled_from(["a", "b"]),
        "ts": st.floats(1.7e9, 1.7e9 + 7200, allow_nan=False),
        **{name: _value for name in rollups.METRIC_COLUMNS},
        "gpus": st.none(),
    }
)
_point = st.fixed_dictionaries(
    {
        "job_id": st.sampled_from(["a", "b"]),
        "name": st.sampled_from(["loss", "acc"]),
        "step": st.integers(0, 30_000),
        "ts": st.floats(1.7e9, 1.7e9 + 7200, allow_nan=False),
        "value": st.floats(-1e6, 1e6, allow_nan=False),
    }
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with schema_engine(request.param) as engine:
        yield engine


def _table(conn: Connection, table: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in conn.execute(select(table)))


def _low(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _high(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _sample_definition(rows: list[Row]) -> list[tuple[Any, ...]]:
    """Per job, width and interval ``int(ts / width) * width``: count, first and
    last time, each metric's minimum and maximum (NULLs ignored)."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        for width in rollups.SAMPLE_WIDTHS:
            key = (row["job_id"], width, int(row["ts"] / width) * width)
            groups.setdefault(key, []).append(row)
    return sorted(
        (
            *key,
            len(members),
            min(m["ts"] for m in members),
            max(m["ts"] for m in members),
            *[_low([m[c] for m in members]) for c in rollups.METRIC_COLUMNS],
            *[_high([m[c] for m in members]) for c in rollups.METRIC_COLUMNS],
        )
        for key, members in groups.items()
    )


def _scalar_definition(points: list[Row]) -> list[tuple[Any, ...]]:
    """Per job, name, width and interval ``step // width * width``: count, lowest
    and highest step, first and last time, lowest and highest value."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for p in points:
        for width in rollups.SCALAR_WIDTHS:
            key = (p["job_id"], p["name"], width, p["step"] // width * width)
            groups.setdefault(key, []).append(p)
    return sorted(
        (
            *key,
            len(members),
            *[f([m[c] for m in members]) for c in ("step", "ts") for f in (min, max)],
            min(m["value"] for m in members),
            max(m["value"] for m in members),
        )
        for key, members in groups.items()
    )


def _write_samples(conn: Connection, rows: list[Row]) -> None:
    for row in rows:
        batch.insert_sample(conn, dict(row))


def _write_scalars(conn: Connection, rows: list[Row]) -> None:
    batch.insert_scalars(conn, [dict(row) for row in rows])


def _three_ways(
    engine: Engine,
    raw_table: Any,
    table: Any,
    rows: list[Row],
    cuts: list[int],
    write: Callable[[Connection, list[Row]], None],
    definition: Callable[[list[Row]], list[tuple[Any, ...]]],
) -> None:
    """Write ``rows`` through the ingest path in batches split at ``cuts`` (the
    first chunk outside a batch, as a write outside the group commit does); the
    roll-ups must equal the definition, and the backfill's from the raw rows."""
    with engine.begin() as conn:
        conn.execute(delete(raw_table))
        conn.execute(delete(table))
        bounds = [0, *sorted(set(cuts)), len(rows)]
        for i, (start, end) in enumerate(pairwise(bounds)):
            if i == 0:
                write(conn, rows[start:end])
                continue
            batch.begin(conn, [])
            write(conn, rows[start:end])
            batch.finish(conn)
        written = _table(conn, table)
        conn.execute(delete(table))
        rollups.backfill(conn, [table.name])
        backfilled = _table(conn, table)
    expected = definition(rows)
    assert written == expected
    assert backfilled == written


_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(rows=st.lists(_sample, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=5))
def test_sample_rollups_written_in_batches_equal_the_definition_and_the_backfill(
    engine: Engine, rows: list[Row], cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c <= len(rows)]
    _three_ways(
        engine, samples, rollups.sample_rollups, rows, cuts, _write_samples, _sample_definition
    )


@_SETTINGS
@given(rows=st.lists(_point, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=5))
def test_scalar_rollups_written_in_batches_equal_the_definition_and_the_backfill(
    engine: Engine, rows: list[Row], cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c <= len(rows)]
    _three_ways(
        engine, scalars, rollups.scalar_rollups, rows, cuts, _write_scalars, _scalar_definition
    )
