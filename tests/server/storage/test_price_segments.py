"""A job's price segments are stored: a restarted server goes on from what the job
cost at its earlier prices, on SQLite and on PostgreSQL, and pruning a job drops
its segments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select

from jobwatch.server import EmbeddedServer
from jobwatch.server.storage.schema import price_segments
from tests.conftest import FakeClock
from tests.services import fresh_schema, scale_urls


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield str(tmp_path / "jobs.db")
        return
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        yield url


def serve(db: str, clock: FakeClock) -> EmbeddedServer:
    return EmbeddedServer(config={"DATABASE": db, "CLOCK": clock, "STALL_CHECK_INTERVAL": 0})


def stored_segments(db: str) -> list[tuple[float, float, float]]:
    url = db if "://" in db else f"sqlite:///{db}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            query = select(
                price_segments.c.start_at, price_segments.c.end_at, price_segments.c.price_per_hour
            ).order_by(price_segments.c.start_at)
            return [tuple(row) for row in conn.execute(query)]
    finally:
        engine.dispose()


def count_segments(db: str) -> int:
    url = db if "://" in db else f"sqlite:///{db}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(price_segments)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_restarted_server_keeps_what_earlier_prices_cost(kind: str, tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock()
    with database(kind, tmp_path) as db:
        server = serve(db, clock)
        base = f"{server.url}/api/jobs/spot"
        requests.put(base, json={"pricePerHour": 10.0, "workerId": "w"}, timeout=5)
        requests.post(f"{base}/progress", json={"workerId": "w", "progress": 1}, timeout=5)
        clock.advance(3600)
        requests.put(base, json={"pricePerHour": 2.0, "workerId": "w"}, timeout=5)
        clock.advance(1800)
        before = requests.get(f"{base}/monitor", timeout=5).json()["costSoFar"]
        server.stop()
        assert before == pytest.approx(11.0)
        assert stored_segments(db) == [(start, start + 3600, 10.0)]

        server = serve(db, clock)
        try:
            base = f"{server.url}/api/jobs/spot"
            assert requests.get(f"{base}/monitor", timeout=5).json()["costSoFar"] == before
            requests.put(base, json={"pricePerHour": 8.0, "workerId": "w"}, timeout=5)
            clock.advance(900)
            reply = requests.post(
                f"{base}/progress", json={"workerId": "w", "progress": 2}, timeout=5
            ).json()
            assert reply["costSoFar"] == pytest.approx(11.0 + 2.0)
            requests.post(f"{base}/complete", json={"workerId": "w"}, timeout=5)
            clock.advance(10 * 86400)
            assert server.services.store.prune(86400)["jobs"] == 1
        finally:
            server.stop()
        assert count_segments(db) == 0
