"""Reading back: the /metrics window and its downsampling, /monitor's history and
logs, and /logs filtering and pages."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
import uuid
from typing import Any

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock
from tests.contract.helpers import METRIC_FIELDS, check_answer, error_of, fields, iso, js

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def post(api: Any, job_id: str, **body: Any) -> dict[str, Any]:
    body = {"workerId": "w", "progress": 1, **body}
    r = api.post(f"/api/jobs/{job_id}/progress", json=body)
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = js(r)
    return reply


def sample(util: float | None, temp: float | None = 60) -> dict[str, Any]:
    return {
        "gpuUtilization": util,
        "gpuMemoryUsed": 1000,
        "gpuMemoryTotal": 8000,
        "gpuTemperature": temp,
        "powerUsage": None,
    }


def get_metrics(api: Any, job_id: str, query: str = "") -> list[dict[str, Any]]:
    r = api.get(f"/api/jobs/{job_id}/metrics{query}")
    assert r.status_code == 200, r.text
    metrics: list[dict[str, Any]] = js(r)["metrics"]
    return metrics


def get_logs(api: Any, job_id: str, query: str = "") -> dict[str, Any]:
    r = api.get(f"/api/jobs/{job_id}/logs{query}")
    assert r.status_code == 200, r.text
    page: dict[str, Any] = js(r)
    return page


@pytest.fixture
def ten_second_samples(api: Any, clock: Any, job: str) -> float:
    """Samples at 0, 10, ..., 100 s (gpuUtilization = offset); ends with now = 105 s."""
    t0 = clock()
    for offset in range(0, 101, 10):
        if offset:
            clock.advance(10)
        post(api, job, progress=offset / 2, metrics=sample(offset))
    clock.advance(5)
    return float(t0)


# -- /metrics window ---------------------------------------------------------------


def test_metrics_window_excludes_older_samples(
    api: Any, clock: Any, job: str, ten_second_samples: float
) -> None:
    t0 = ten_second_samples

    def offsets(query: str) -> list[int]:
        metrics = get_metrics(api, job, query)
        assert [m["timestamp"] for m in metrics] == sorted(m["timestamp"] for m in metrics)
        result = [int(m["gpuUtilization"]) for m in metrics]
        assert [m["timestamp"] for m in metrics] == [iso(t0 + o) for o in result]
        return result

    assert offsets("?timeRange=55") == [50, 60, 70, 80, 90, 100]
    assert offsets("") == [50, 60, 70, 80, 90, 100]  # default 60 s: from 45 s
    assert offsets("?timeRange=100") == list(range(10, 101, 10))
    assert offsets("?timeRange=2592000") == list(range(0, 101, 10))
    assert offsets("?timeRange=4") == []
    r = js(api.get(f"/api/jobs/{job}/metrics?timeRange=55"))
    assert (r["jobId"], r["timeRange"]) == (job, 55)
    for m in r["metrics"]:
        assert set(m) >= {"timestamp", *METRIC_FIELDS}
        assert m["powerUsage"] is None  # missing stays null, never 0

    clock.advance(30)  # now 135 s: the window moves with the clock
    assert offsets("?timeRange=55") == [80, 90, 100]
    clock.advance(100)
    assert offsets("?timeRange=55") == []


def test_window_ends_at_completed_at_for_a_finished_job(
    api: Any, clock: Any, job: str, ten_second_samples: float
) -> None:
    r = api.post(f"/api/jobs/{job}/complete", json={"workerId": "w"})
    assert r.status_code == 200
    clock.advance(10_000)
    metrics = get_metrics(api, job, "?timeRange=55")
    assert [m["gpuUtilization"] for m in metrics] == [50, 60, 70, 80, 90, 100]
    history = js(api.get(f"/api/jobs/{job}/monitor"))["metrics"]["history"]
    assert [m["gpuUtilization"] for m in history] == [50, 60, 70, 80, 90, 100]


def test_monitor_history_is_the_last_60_seconds(
    api: Any, clock: Any, job: str, ten_second_samples: float
) -> None:
    t0 = ten_second_samples
    body = js(api.get(f"/api/jobs/{job}/monitor"))
    history = body["metrics"]["history"]
    assert [m["timestamp"] for m in history] == [iso(t0 + o) for o in range(50, 101, 10)]
    assert [m["gpuUtilization"] for m in history] == [50, 60, 70, 80, 90, 100]
    assert body["metrics"]["latest"] == history[-1]

    clock.advance(200)  # no new sample for a while: the history empties, latest stays
    body = js(api.get(f"/api/jobs/{job}/monitor"))
    assert body["metrics"]["history"] == []
    assert body["metrics"]["latest"]["gpuUtilization"] == 100


def test_metrics_of_a_job_without_samples(api: Any, job: str) -> None:
    assert get_metrics(api, job) == []
    post(api, job, metrics=None)
    assert get_metrics(api, job) == []


@pytest.mark.parametrize("path", ["metrics", "logs", "monitor"])
def test_reading_an_unknown_job_is_404(api: Any, path: str) -> None:
    error_of(api.get(f"/api/jobs/no-such-job/{path}"), 404, "job_not_found")


# -- downsampling ------------------------------------------------------------------


@pytest.fixture(scope="module")
def spiky(server: EmbeddedServer, clock: FakeClock) -> tuple[str, float]:
    """A finished job with 200 samples 1 s apart: utilization 40-42 with one spike
    to 99 at 137 s, temperature 60 with one dip to -10 at 61 s, power always
    unknown. Finished, so its windows end at its last sample whatever the clock."""
    session = requests.Session()
    session.hooks["response"].append(check_answer)
    job_id = f"spiky-{uuid.uuid4().hex[:8]}"
    assert session.post(f"{server.url}/api/jobs", json={"id": job_id}).status_code == 201
    t0 = clock()
    for i in range(200):
        if i:
            clock.advance(1)
        util = 99 if i == 137 else 40 + i % 3
        temp = -10 if i == 61 else 60
        body = {"workerId": "w", "progress": i / 2, "metrics": sample(util, temp)}
        r = session.post(f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=10)
        assert r.status_code == 200, r.text
    r = session.post(f"{server.url}/api/jobs/{job_id}/complete", json={"workerId": "w"})
    assert r.status_code == 200, r.text
    session.close()
    return job_id, float(t0)


@pytest.mark.parametrize("max_points", [2, 3, 7, 20, 64, 199])
def test_max_points_downsampling_keeps_the_shape(
    api: Any, spiky: tuple[str, float], max_points: int
) -> None:
    job, t0 = spiky
    sample_times = {iso(t0 + i) for i in range(200)}
    metrics = get_metrics(api, job, f"?timeRange=300&maxPoints={max_points}")
    assert 2 <= len(metrics) <= max_points
    stamps = [m["timestamp"] for m in metrics]
    assert stamps == sorted(stamps)
    assert set(stamps) <= sample_times  # real sample times, within the window
    utils = [m["gpuUtilization"] for m in metrics]
    temps = [m["gpuTemperature"] for m in metrics]
    assert max(utils) == 99  # the single spike survives
    assert min(temps) == -10  # and the single dip
    assert min(utils) == 40
    assert all(m["powerUsage"] is None for m in metrics)  # null stays null
    assert {m["gpuMemoryTotal"] for m in metrics} == {8000}


def test_max_points_above_the_sample_count_returns_every_sample(
    api: Any, spiky: tuple[str, float]
) -> None:
    job, t0 = spiky
    metrics = get_metrics(api, job, "?timeRange=300&maxPoints=200")
    assert [m["timestamp"] for m in metrics] == [iso(t0 + i) for i in range(200)]
    assert metrics[137]["gpuUtilization"] == 99
    assert get_metrics(api, job, "?timeRange=300") == metrics


def test_downsampling_only_the_window(api: Any, spiky: tuple[str, float]) -> None:
    job, t0 = spiky
    metrics = get_metrics(api, job, "?timeRange=50&maxPoints=10")  # 149..199 s
    assert 2 <= len(metrics) <= 10
    assert all(m["timestamp"] >= iso(t0 + 149) for m in metrics)
    assert max(m["gpuUtilization"] for m in metrics) == 42  # the spike is outside


def test_downsampling_keeps_a_spike_among_samples_of_one_instant(api: Any, job: str) -> None:
    """Samples that share a timestamp (a coarse clock, a burst) still keep their
    extremes when downsampled."""
    for i in range(30):
        post(api, job, metrics=sample(99 if i == 17 else 40, -10 if i == 5 else 60))
    metrics = get_metrics(api, job, "?maxPoints=4")
    assert 1 <= len(metrics) <= 4
    assert max(m["gpuUtilization"] for m in metrics) == 99
    assert min(m["gpuUtilization"] for m in metrics) == 40
    assert min(m["gpuTemperature"] for m in metrics) == -10


# -- per-GPU samples ---------------------------------------------------------------


def test_per_gpu_samples_fill_the_flat_fields(api: Any, job: str) -> None:
    gpus = [
        {
            "index": 0,
            "uuid": "GPU-0",
            "name": "H100",
            "gpuUtilization": 50,
            "gpuMemoryUsed": 1000,
            "gpuMemoryTotal": 80000,
            "gpuTemperature": 60,
            "powerUsage": 300,
        },
        {
            "index": 1,
            "uuid": "GPU-1",
            "name": "H100",
            "gpuUtilization": 100,
            "gpuMemoryUsed": 3000,
            "gpuMemoryTotal": 80000,
            "gpuTemperature": 71,
            "powerUsage": 500,
        },
        {"index": 2, "gpuUtilization": None, "gpuTemperature": None},  # a MIG slice
    ]
    post(api, job, metrics={"gpus": gpus})
    latest = js(api.get(f"/api/jobs/{job}/monitor"))["metrics"]["latest"]
    assert {k: latest[k] for k in METRIC_FIELDS} == {
        "gpuUtilization": 75,  # mean
        "gpuMemoryUsed": 4000,  # sum
        "gpuMemoryTotal": 160000,  # sum
        "gpuTemperature": 71,  # hottest
        "powerUsage": 800,  # sum
    }

    # flat fields given beside gpus win
    post(api, job, metrics={"gpus": gpus, "gpuUtilization": 10})
    latest = js(api.get(f"/api/jobs/{job}/monitor"))["metrics"]["latest"]
    assert latest["gpuUtilization"] == 10


def test_per_gpu_lists_beyond_the_byte_budget_are_left_out_oldest_first(
    api: Any, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobwatch.server.storage import queries

    gpus = [{"index": i, "name": "Ä" * 100, "gpuUtilization": 40 + i} for i in range(8)]
    post(api, job, metrics={"gpuUtilization": 5})  # an oldest sample without GPUs
    for _ in range(5):
        post(api, job, metrics={"gpus": gpus})
    stored = js(api.get(f"/api/jobs/{job}/monitor"))["metrics"]["latest"]["gpus"]
    one = len(json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode())
    monkeypatch.setattr(queries, "SAMPLE_GPU_BYTES", 3 * one + one // 2)  # bytes, not characters
    for path, key in ((f"/api/jobs/{job}/metrics", None), (f"/api/jobs/{job}/monitor", "metrics")):
        body = js(api.get(path))
        samples = body[key]["history"] if key else body["metrics"]
        assert body["gpusOmitted"] == 3
        assert ["gpus" in s for s in samples] == [False] * 3 + [True] * 3
        assert all(s["gpus"] == stored for s in samples[3:])
        assert [s["gpuUtilization"] for s in samples] == [5] + [43.5] * 5
    roomy = js(api.get(f"/api/jobs/{job}/metrics?maxPoints=4"))
    assert roomy["downsampled"] and roomy["gpusOmitted"] == 0


def test_bad_per_gpu_value_names_its_path(api: Any, job: str) -> None:
    gpus = [{"index": 0, "gpuUtilization": 50}, {"index": 1, "gpuUtilization": 4294967295}]
    r = api.post(
        f"/api/jobs/{job}/progress",
        json={"workerId": "w", "progress": 1, "metrics": {"gpus": gpus}},
    )
    assert fields(error_of(r, 400, "validation_error")) == ["metrics.gpus[1].gpuUtilization"]
    assert get_metrics(api, job) == []


# -- /monitor logs -----------------------------------------------------------------


def test_monitor_logs_are_the_last_100_in_order(api: Any, job: str) -> None:
    for batch in range(3):
        lines = [{"level": "info", "message": f"line {batch * 50 + i}"} for i in range(50)]
        post(api, job, logLines=lines)
    logs = js(api.get(f"/api/jobs/{job}/monitor"))["logs"]
    assert [x["message"] for x in logs] == [f"line {i}" for i in range(50, 150)]
    ids = [x["id"] for x in logs]
    assert ids == sorted(ids) and len(set(ids)) == 100
    assert logs == get_logs(api, job, "?offset=50&limit=100")["logs"]


# -- /logs -------------------------------------------------------------------------


@pytest.fixture
def mixed_logs(api: Any, clock: Any, job: str) -> list[tuple[str, str]]:
    """120 lines over 4 updates, levels info/warning/error in a fixed pattern."""
    pattern = ["info", "info", "warning", "info", "error", "info"]
    lines = [(pattern[i % len(pattern)], f"message {i}") for i in range(120)]
    for start in range(0, 120, 30):
        post(
            api,
            job,
            logLines=[{"level": lv, "message": m} for lv, m in lines[start : start + 30]],
        )
        clock.advance(1)
    return lines


@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_logs_level_filter_is_exact(
    api: Any, job: str, mixed_logs: list[tuple[str, str]], level: str
) -> None:
    expected = [m for lv, m in mixed_logs if lv == level]
    page = get_logs(api, job, f"?level={level}&limit=1000")
    assert [x["message"] for x in page["logs"]] == expected
    assert {x["level"] for x in page["logs"]} == {level}
    assert page["total"] == len(expected)


def test_logs_pagination(api: Any, job: str, mixed_logs: list[tuple[str, str]]) -> None:
    everything = get_logs(api, job, "?limit=1000")
    assert everything["total"] == 120
    assert [(x["level"], x["message"]) for x in everything["logs"]] == mixed_logs

    default = get_logs(api, job)
    assert (default["limit"], default["offset"], len(default["logs"])) == (100, 0, 100)
    assert default["jobId"] == job

    pages = []
    for offset in (0, 50, 100):
        page = get_logs(api, job, f"?limit=50&offset={offset}")
        assert (page["total"], page["limit"], page["offset"]) == (120, 50, offset)
        pages.extend(page["logs"])
    assert [len(get_logs(api, job, f"?limit=50&offset={o}")["logs"]) for o in (0, 50, 100)] == [
        50,
        50,
        20,
    ]
    assert pages == everything["logs"]

    for offset in (120, 121, 5000):
        page = get_logs(api, job, f"?limit=50&offset={offset}")
        assert (page["logs"], page["total"], page["offset"]) == ([], 120, offset)

    infos = [m for lv, m in mixed_logs if lv == "info"]
    page = get_logs(api, job, "?level=info&limit=10&offset=5")
    assert [x["message"] for x in page["logs"]] == infos[5:15]
    assert page["total"] == len(infos)
    page = get_logs(api, job, f"?level=error&offset={len(infos)}")
    assert (page["logs"], page["total"]) == ([], 20)


def test_log_ids_increase_and_are_unique(api: Any, job: str, mixed_logs: list[Any]) -> None:
    ids = [x["id"] for x in get_logs(api, job, "?limit=1000")["logs"]]
    assert all(isinstance(i, int) for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_log_timestamps_are_server_time(api: Any, clock: Any, job: str) -> None:
    t = clock()
    post(api, job, logLines=[{"level": "info", "message": "a"}])
    clock.advance(2.5)
    post(api, job, logLines=[{"level": "info", "message": "b"}])
    logs = get_logs(api, job)["logs"]
    assert [x["timestamp"] for x in logs] == [iso(t), iso(t + 2.5)]


def test_log_worker_timestamps_are_kept_or_capped_to_now(api: Any, clock: Any, job: str) -> None:
    t = clock()
    in_tokyo = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t - 7200 + 9 * 3600)) + "+09:00"
    lines = [
        {"level": "info", "message": "past", "timestamp": iso(t - 3600)},
        {"level": "info", "message": "future", "timestamp": iso(t + 3600)},
        {"level": "info", "message": "offset", "timestamp": in_tokyo},
    ]
    post(api, job, logLines=lines)
    logs = get_logs(api, job)["logs"]
    assert [x["timestamp"] for x in logs] == [
        iso(t - 3600),
        iso(t),  # never in the server's future
        iso(math.floor(t) - 7200),
    ]


@pytest.mark.parametrize(
    "stamp",
    [
        "0001-01-01T00:00:00Z",
        "0999-12-31T23:59:59Z",
        "1969-07-20T20:17:40Z",
        "2020-01-01T09:00:00+09:00",
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59.999-01:00",
    ],
)
def test_odd_log_timestamps_are_never_a_500_and_well_formed(
    api: Any, clock: Any, job: str, stamp: str
) -> None:
    """Every timestamp the server emits is ISO 8601 with a four-digit year and
    never after the server's clock, whatever the worker sent."""
    body = {
        "workerId": "w",
        "progress": 1,
        "logLines": [{"level": "info", "message": "odd", "timestamp": stamp}],
    }
    r = api.post(f"/api/jobs/{job}/progress", json=body)  # the hook fails on a 5xx
    assert r.status_code in (200, 400)
    for line in get_logs(api, job)["logs"]:
        assert ISO_RE.match(line["timestamp"]), line["timestamp"]
        assert line["timestamp"] <= iso(clock())


def test_naive_log_timestamps_do_not_depend_on_the_server_time_zone(
    api: Any, clock: Any, job: str
) -> None:
    """A timestamp without an offset means UTC (as the worker ``timestamp`` does),
    or is refused; it never takes the server machine's local time zone."""
    t = clock() - 60
    naive = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    try:
        body = {
            "workerId": "w",
            "progress": 1,
            "logLines": [{"level": "info", "message": "m", "timestamp": naive}],
        }
        r = api.post(f"/api/jobs/{job}/progress", json=body)
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
    if r.status_code == 400:
        return
    assert r.status_code == 200, r.text
    (line,) = get_logs(api, job)["logs"]
    assert line["timestamp"] == iso(math.floor(t))
