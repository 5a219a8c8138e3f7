"""Roll-ups written at ingest, batch by batch, equal those computed from the raw
rows at once (:func:`jobwatch.server.rollups.backfill`), whatever the batches."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, create_engine, delete, select

from jobwatch.server import rollups
from jobwatch.server.schema import metadata, samples, scalars

Row = dict[str, Any]

_value = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
_sample = st.fixed_dictionaries(
    {
        "job_id": st.sampled_from(["a", "b"]),
        "ts": st.floats(1.7e9, 1.7e9 + 7200, allow_nan=False),
        **{name: _value for name in rollups.METRIC_COLUMNS},
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


_ENGINES = [create_engine("sqlite://") for _ in range(2)]  # one connection each, kept
for _engine in _ENGINES:
    metadata.create_all(_engine)


def _table(conn: Connection, table: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in conn.execute(select(table)))


def _both_ways(raw_table: Any, rows: list[Row], cuts: list[int], table: Any) -> None:
    """Write ``rows`` in batches split at ``cuts`` through the ingest path in one
    database and at once through backfill in another; the roll-ups must match."""
    ingest, backfilled = _ENGINES
    for engine in _ENGINES:
        with engine.begin() as conn:
            conn.execute(delete(raw_table))
            conn.execute(delete(table))
    to_rows = rollups.sample_rows if table is rollups.sample_rollups else rollups.scalar_rows
    bounds = [0, *sorted(set(cuts)), len(rows)]
    with ingest.begin() as conn:
        for start, end in pairwise(bounds):
            rollups.upsert(conn, table, to_rows(rows[start:end]))
        written = _table(conn, table)
    with backfilled.begin() as conn:
        if rows:
            conn.execute(raw_table.insert(), rows)
        rollups.backfill(conn, [table.name])
        expected = _table(conn, table)
    assert written == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(_sample, max_size=40), st.lists(st.integers(0, 40), max_size=5))
def test_sample_rollups_written_in_batches_equal_the_backfill(
    rows: list[Row], cuts: list[int]
) -> None:
    _both_ways(samples, rows, [c for c in cuts if c <= len(rows)], rollups.sample_rollups)


@settings(max_examples=60, deadline=None)
@given(st.lists(_point, max_size=40), st.lists(st.integers(0, 40), max_size=5))
def test_scalar_rollups_written_in_batches_equal_the_backfill(
    rows: list[Row], cuts: list[int]
) -> None:
    _both_ways(scalars, rows, [c for c in cuts if c <= len(rows)], rollups.scalar_rollups)
