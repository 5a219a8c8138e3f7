"""Long windows read from the roll-ups written at ingest: the answers keep what
the contract says (at most ``maxPoints``, oldest first, real sample times and
steps in the window, every minimum and maximum), including where the window
starts or ends inside a roll-up interval; on every backend."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock
from tests.contract.helpers import METRIC_FIELDS, SYSTEM_FIELDS, check_answer, iso, js

N_SAMPLES = 720
"""Two hours at one sample every 10 s."""


def _session() -> requests.Session:
    session = requests.Session()
    session.hooks["response"].append(check_answer)
    return session


def _util(i: int) -> float:
    return {350: 99.0, 5: 98.0, 715: 100.0}.get(i, 40.0 + i % 5)


@pytest.fixture(scope="module")
def long_job(server: EmbeddedServer, clock: FakeClock) -> tuple[str, list[tuple[float, dict]]]:
    """A finished job of :data:`N_SAMPLES` samples 10 s apart, starting off the
    roll-up grid (so windows begin inside an interval): utilization 40-44 with
    spikes at samples 5, 350 and 715, a temperature dip at 3, power unknown; and
    system metrics: CPU with a spike at 200, the process's memory growing,
    network unknown.
    Returns the id and ``(ts, sample)`` of every sample."""
    session = _session()
    job_id = f"long-{uuid.uuid4().hex[:8]}"
    assert session.post(f"{server.url}/api/jobs", json={"id": job_id}).status_code == 201
    clock.advance(7.25 + (-clock()) % 3600)  # 7.25 s past a whole hour
    stored = []
    for i in range(N_SAMPLES):
        if i:
            clock.advance(10)
        sample = {
            "gpuUtilization": _util(i),
            "gpuMemoryUsed": 1000.0 + (i * 37) % 500,
            "gpuMemoryTotal": 8000.0,
            "gpuTemperature": -10.0 if i == 3 else 60.0 + i % 7,
            "powerUsage": None,
            "cpuUtilization": 100.0 if i == 200 else 10.0 + i % 3,
            "memoryUsed": 4000.0,
            "memoryTotal": 16000.0,
            "processMemory": 500.0 + i,
            "networkIn": None,
        }
        body = {"workerId": "w", "progress": i / 10, "metrics": sample}
        r = session.post(f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=10)
        assert r.status_code == 200, r.text
        stored.append((clock(), sample))
    r = session.post(f"{server.url}/api/jobs/{job_id}/complete", json={"workerId": "w"})
    assert r.status_code == 200, r.text
    session.close()
    return job_id, stored


def _metrics(api: Any, job_id: str, query: str) -> dict[str, Any]:
    r = api.get(f"/api/jobs/{job_id}/metrics{query}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = js(r)
    return body


@pytest.mark.parametrize(
    ("time_range", "max_points"),
    [(7200, 2), (7200, 8), (7200, 50), (7200, 200), (3000, 20), (1234, 30), (86400, 500)],
)
def test_a_long_window_keeps_every_extreme_of_exactly_its_samples(
    api: Any, long_job: tuple[str, list[tuple[float, dict]]], time_range: int, max_points: int
) -> None:
    job_id, stored = long_job
    end = stored[-1][0]
    inside = [(ts, s) for ts, s in stored if end - time_range <= ts <= end]
    body = _metrics(api, job_id, f"?timeRange={time_range}&maxPoints={max_points}")
    metrics = body["metrics"]
    assert body["downsampled"] is True
    assert 2 <= len(metrics) <= max_points
    stamps = [m["timestamp"] for m in metrics]
    assert stamps == sorted(stamps)
    assert set(stamps) <= {iso(ts) for ts, _ in inside}  # real sample times in the window
    assert stamps[0] == iso(inside[0][0]) and stamps[-1] == iso(inside[-1][0])
    for field in (*METRIC_FIELDS, *SYSTEM_FIELDS):
        want = [s[field] for _, s in inside if s.get(field) is not None]
        got = [m[field] for m in metrics if m[field] is not None]
        assert (min(got), max(got)) == (min(want), max(want)) if want else got == []
    assert "gpus" not in metrics[0]


def test_a_long_window_holding_at_most_max_points_gives_the_raw_samples(
    api: Any, long_job: tuple[str, list[tuple[float, dict]]]
) -> None:
    job_id, stored = long_job
    body = _metrics(api, job_id, "?timeRange=5000&maxPoints=1000")
    assert body["downsampled"] is False
    end = stored[-1][0]
    inside = [(ts, s) for ts, s in stored if end - 5000 <= ts <= end]
    assert [(m["timestamp"], m["gpuUtilization"]) for m in body["metrics"]] == [
        (iso(ts), s["gpuUtilization"]) for ts, s in inside
    ]
    exact = _metrics(api, job_id, f"?timeRange=7200&maxPoints={N_SAMPLES}")
    assert exact["downsampled"] is False and len(exact["metrics"]) == N_SAMPLES


def test_a_job_shorter_than_the_window_gets_its_points_over_its_own_span(
    api: Any, long_job: tuple[str, list[tuple[float, dict]]]
) -> None:
    """A 2 h job seen over the last 24 h: the spans cut its 2 h, not the 24 h
    (which would leave it a twelfth of maxPoints)."""
    job_id, stored = long_job
    body = _metrics(api, job_id, "?timeRange=86400&maxPoints=100")
    assert body["downsampled"] is True
    assert 50 <= len(body["metrics"]) <= 100
    assert body["metrics"][0]["timestamp"] == iso(stored[0][0])
    assert body["metrics"][-1]["timestamp"] == iso(stored[-1][0])


# -- training metrics ---------------------------------------------------------------

STEPS_PER_POST = 450  # not a multiple of the roll-up widths: intervals straddle posts
POSTS = 7


@pytest.fixture(scope="module")
def long_series(server: EmbeddedServer, clock: FakeClock) -> tuple[str, list[tuple[float, int]]]:
    """A finished job whose ``loss`` holds 3,150 steps posted 450 at a time, 100 s
    apart: 1.0 except a dip to -3 at step 420 (first post), a spike to 50 at
    460 (second post, same 100-step interval) and 70 at 3100. Returns the id
    and each post's (time, first step)."""
    session = _session()
    job_id = f"series-{uuid.uuid4().hex[:8]}"
    assert session.post(f"{server.url}/api/jobs", json={"id": job_id}).status_code == 201
    special = {420: -3.0, 460: 50.0, 3100: 70.0}
    posts = []
    for k in range(POSTS):
        if k:
            clock.advance(100)
        steps = range(k * STEPS_PER_POST, (k + 1) * STEPS_PER_POST)
        points = [{"step": s, "values": {"loss": special.get(s, 1.0)}} for s in steps]
        body = {"workerId": "w", "progress": k, "scalars": points}
        r = session.post(f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=10)
        assert r.status_code == 200, r.text
        posts.append((clock(), steps[0]))
    assert session.post(f"{server.url}/api/jobs/{job_id}/complete", json={"workerId": "w"}).ok
    session.close()
    return job_id, posts


def _loss(api: Any, job_id: str, query: str) -> tuple[list[dict[str, Any]], bool]:
    r = api.get(f"/api/jobs/{job_id}/scalars{query}")
    assert r.status_code == 200, r.text
    body = js(r)
    return body["scalars"]["loss"], body["downsampled"]


@pytest.mark.parametrize("max_points", [2, 20, 100, 600])
def test_a_long_series_keeps_its_extremes(
    api: Any, long_series: tuple[str, list[tuple[float, int]]], max_points: int
) -> None:
    job_id, _ = long_series
    loss, downsampled = _loss(api, job_id, f"?names=loss&maxPoints={max_points}")
    assert downsampled is True and 2 <= len(loss) <= max_points
    steps = [p["step"] for p in loss]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] < POSTS * STEPS_PER_POST
    values = [p["value"] for p in loss]
    assert (min(values), max(values)) == (-3.0, 70.0)


def test_a_window_starting_inside_an_interval_leaves_out_the_values_before_it(
    api: Any, long_series: tuple[str, list[tuple[float, int]]]
) -> None:
    job_id, posts = long_series
    time_range = posts[-1][0] - posts[0][0] - 50  # every post but the first
    loss, downsampled = _loss(api, job_id, f"?names=loss&timeRange={time_range}&maxPoints=20")
    assert downsampled is True and 2 <= len(loss) <= 20
    steps = [p["step"] for p in loss]
    assert steps[0] == STEPS_PER_POST and steps[-1] == POSTS * STEPS_PER_POST - 1
    assert {p["timestamp"] for p in loss} <= {iso(ts) for ts, _ in posts[1:]}
    values = [p["value"] for p in loss]
    assert (min(values), max(values)) == (1.0, 70.0)  # the dip at step 420 is outside


def test_a_long_series_within_max_points_gives_every_value(
    api: Any, long_series: tuple[str, list[tuple[float, int]]]
) -> None:
    job_id, _ = long_series
    loss, downsampled = _loss(api, job_id, "?maxPoints=10000")
    assert downsampled is False
    assert [p["step"] for p in loss] == list(range(POSTS * STEPS_PER_POST))
    assert loss[460]["value"] == 50.0
