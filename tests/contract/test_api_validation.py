"""Bad input of every kind docs/api.md names, over HTTP on both backends: 400
(or 413) with the JSON path of each bad field, the error envelope, no 5xx, and
nothing changed by a refused request.

Every case of each table in tests/contract/validation_cases.py runs against the pure
validators in tests/contract/test_protocol_validation.py; here the first and the last
case of each table (``over_http``) go through the server, which must answer
exactly the pure validator's verdict (same code, message and details) and
store nothing. What only the server does (content types, body size, routes,
job ids, what is stored and streamed) is tested here in full.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import BaseModel

from jobwatch.contract.requests import (
    CompleteRequest,
    JobSpec,
    LogsQuery,
    MetricsQuery,
    ProgressUpdate,
    parse_body,
    parse_query,
)
from jobwatch.errors import ValidationError
from tests.contract.helpers import METRIC_FIELDS, error_of, fields, js, snapshot, strict_loads
from tests.contract.validation_cases import (
    BAD_LOG_LEVELS,
    BAD_LOGS_QUERIES,
    BAD_METRICS_QUERIES,
    BAD_PROGRESS_FIELDS,
    EVERY_FIELD_BAD,
    EVERY_FIELD_BAD_NAMES,
    GOOD_LOGS_QUERIES,
    GOOD_METRICS,
    GOOD_METRICS_QUERIES,
    GOOD_SYSTEM,
    INVALID_UTF8,
    LONE_SURROGATES,
    MALFORMED_JSON,
    METRIC_BOUNDS,
    NON_FINITE_BODIES,
    NON_FINITE_RESULTS,
    NOT_OBJECTS,
    NUL_IN_PROGRESS,
    NUL_JOB_FIELDS,
    OUT_OF_RANGE,
    PROGRESS_BOUNDS,
    bad_level_body,
    metrics_with,
    non_finite_body,
    over_http,
    progress_body,
    result_body,
)

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def running_job(api: Any, job_id: str) -> str:
    """A running job bound to ``w`` with one sample and one log line."""
    assert api.post("/api/jobs", json={"id": job_id, "pricePerHour": 2}).status_code == 201
    body = {
        "workerId": "w",
        "progress": 10,
        "currentOperation": "op",
        "metrics": GOOD_METRICS,
        "logLines": [{"level": "info", "message": "start"}],
    }
    r = api.post(f"/api/jobs/{job_id}/progress", json=body)
    assert r.status_code == 200, r.text
    return job_id


def post_raw(api: Any, job_id: str, raw: bytes, headers: dict[str, str] | None = None) -> Any:
    return api.post(f"/api/jobs/{job_id}/progress", data=raw, headers=headers or JSON)


def verdict(model: type[BaseModel], raw: bytes) -> dict[str, Any]:
    """The envelope of ``parse_body``'s refusal of ``raw``."""
    with pytest.raises(ValidationError) as caught:
        parse_body(model, raw)
    return caught.value.to_envelope()


def refused(
    api: Any,
    job_id: str,
    body: Any,
    status: int = 400,
    *,
    path: str = "progress",
    model: type[BaseModel] = ProgressUpdate,
) -> dict[str, Any]:
    """POST ``body`` (a dict, or raw bytes) to the job's ``path``; it must be refused,
    change nothing and, for a 400, be exactly ``parse_body``'s verdict on it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    before = snapshot(api, job_id)
    r = api.post(f"/api/jobs/{job_id}/{path}", data=raw, headers=JSON)
    error = error_of(r, status)
    assert snapshot(api, job_id) == before
    if status == 400:
        assert js(r) == verdict(model, raw)
    return error


def query_refused(api: Any, path: str, model: type[BaseModel], query: str) -> dict[str, Any]:
    """GET ``path?query``: 400 ``validation_error``, exactly ``parse_query``'s verdict."""
    r = api.get(f"{path}?{query}")
    error = error_of(r, 400, "validation_error")
    with pytest.raises(ValidationError) as caught:
        parse_query(model, dict(parse_qsl(query, keep_blank_values=True)))
    assert js(r) == caught.value.to_envelope()
    return error


# -- required fields and types -----------------------------------------------------


@pytest.mark.parametrize(("body", "field"), over_http(BAD_PROGRESS_FIELDS))
def test_bad_progress_field(api: Any, running_job: str, body: dict[str, Any], field: str) -> None:
    error = refused(api, running_job, body)
    assert error["code"] == "validation_error"
    assert fields(error) == [field]


@pytest.mark.parametrize("value", PROGRESS_BOUNDS)
def test_progress_bounds_are_inclusive(api: Any, running_job: str, value: float) -> None:
    r = api.post(f"/api/jobs/{running_job}/progress", json={"workerId": "w", "progress": value})
    assert r.status_code == 200, r.text
    assert js(r)["progress"] == value
    job_ = js(api.get(f"/api/jobs/{running_job}"))["job"]
    assert job_["progress"] == value
    assert job_["status"] == "running"  # 100 % is not completion


def test_every_bad_field_is_named(api: Any, running_job: str) -> None:
    error = refused(api, running_job, EVERY_FIELD_BAD)
    assert sorted(fields(error)) == sorted(EVERY_FIELD_BAD_NAMES)


# -- NaN and Infinity --------------------------------------------------------------


@pytest.mark.parametrize(("token", "where"), over_http(NON_FINITE_BODIES))
def test_non_finite_numbers_are_refused(api: Any, running_job: str, token: str, where: str) -> None:
    error = refused(api, running_job, non_finite_body(token, where))
    assert error["code"] in ("validation_error", "invalid_json")


# -- metrics -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), over_http(OUT_OF_RANGE))
def test_bad_metric_is_400_naming_it(api: Any, running_job: str, name: str, value: Any) -> None:
    error = refused(api, running_job, progress_body(metrics=metrics_with(name, value)))
    assert fields(error) == [f"metrics.{name}"]


def test_sentinel_in_every_field_names_every_field(api: Any, running_job: str) -> None:
    metrics = dict.fromkeys(METRIC_FIELDS, 4294967295)
    error = refused(api, running_job, progress_body(metrics=metrics))
    assert sorted(fields(error)) == sorted(f"metrics.{n}" for n in METRIC_FIELDS)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("cpuUtilization", 100.5, "less than or equal to 100"),
        ("memoryTotal", 0, "greater than 0"),
        ("processMemory", -1, "greater than or equal to 0"),
        ("networkIn", 18446744073709551615, "less than or equal to 1000000000000"),
        ("diskRead", "12", "valid number"),
    ],
)
def test_a_bad_system_metric_is_400_saying_what_is_wrong(
    api: Any, running_job: str, name: str, value: Any, words: str
) -> None:
    metrics = {**GOOD_SYSTEM, name: value}
    error = refused(api, running_job, progress_body(metrics=metrics))
    [detail] = error["details"]
    assert detail["field"] == f"metrics.{name}"
    assert words in detail["message"].lower(), detail


def test_system_memory_or_disk_used_over_total_is_400(api: Any, running_job: str) -> None:
    for used, total in (("memoryUsed", "memoryTotal"), ("diskUsed", "diskTotal")):
        metrics = {**GOOD_SYSTEM, used: GOOD_SYSTEM[total] + 1}
        error = refused(api, running_job, progress_body(metrics=metrics))
        assert fields(error) == [f"metrics.{used}"]
        assert f"must not exceed {total}" in error["details"][0]["message"]


def test_system_metrics_alone_are_stored_as_sent(api: Any, running_job: str) -> None:
    r = api.post(f"/api/jobs/{running_job}/progress", json=progress_body(metrics=GOOD_SYSTEM))
    assert r.status_code == 200, r.text
    latest = js(api.get(f"/api/jobs/{running_job}/monitor"))["metrics"]["latest"]
    assert {k: latest[k] for k in GOOD_SYSTEM} == GOOD_SYSTEM
    assert {k: latest[k] for k in METRIC_FIELDS} == dict.fromkeys(METRIC_FIELDS)
    assert "gpus" not in latest


def test_a_sample_without_system_metrics_has_no_system_fields(api: Any, running_job: str) -> None:
    """The seed's worker and older reporters get the answers they always had."""
    r = api.post(f"/api/jobs/{running_job}/progress", json=progress_body(metrics=GOOD_METRICS))
    assert r.status_code == 200, r.text
    latest = js(api.get(f"/api/jobs/{running_job}/monitor"))["metrics"]["latest"]
    assert set(latest) == {"timestamp", *METRIC_FIELDS}


def test_memory_used_over_total_is_400(api: Any, running_job: str) -> None:
    metrics = {**GOOD_METRICS, "gpuMemoryUsed": 24001, "gpuMemoryTotal": 24000}
    error = refused(api, running_job, progress_body(metrics=metrics))
    assert fields(error) == ["metrics.gpuMemoryUsed"]


@pytest.mark.parametrize(("name", "value"), METRIC_BOUNDS)
def test_metric_bounds_are_inclusive(api: Any, running_job: str, name: str, value: float) -> None:
    r = api.post(
        f"/api/jobs/{running_job}/progress",
        json=progress_body(metrics={**GOOD_METRICS, name: value}),
    )
    assert r.status_code == 200, r.text
    latest = js(api.get(f"/api/jobs/{running_job}/monitor"))["metrics"]["latest"]
    assert latest[name] == value


def test_memory_used_equal_to_total_is_accepted(api: Any, running_job: str) -> None:
    metrics = {**GOOD_METRICS, "gpuMemoryUsed": 24000}
    r = api.post(f"/api/jobs/{running_job}/progress", json=progress_body(metrics=metrics))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "metrics",
    [
        dict.fromkeys(METRIC_FIELDS),
        {
            "gpuUtilization": 55,
            "gpuMemoryUsed": None,
            "gpuMemoryTotal": None,
            "gpuTemperature": None,
            "powerUsage": None,
        },
        {"gpuUtilization": None, "gpuTemperature": 61},  # the other fields absent
        {},
    ],
    ids=["all-null", "only-util", "absent-fields", "empty"],
)
def test_null_metrics_stay_null(
    api: Any, running_job: str, ws_factory: Any, metrics: dict[str, Any]
) -> None:
    ws = ws_factory()
    assert ws.subscribe(running_job)["type"] == "subscribed"
    r = api.post(f"/api/jobs/{running_job}/progress", json=progress_body(metrics=metrics))
    assert r.status_code == 200, r.text
    expected = {name: metrics.get(name) for name in METRIC_FIELDS}

    latest = js(api.get(f"/api/jobs/{running_job}/monitor"))["metrics"]["latest"]
    assert {k: latest[k] for k in METRIC_FIELDS} == expected
    newest = js(api.get(f"/api/jobs/{running_job}/metrics"))["metrics"][-1]
    assert {k: newest[k] for k in METRIC_FIELDS} == expected
    ws.conn.settimeout(5)
    event = strict_loads(ws.conn.recv())
    assert event["type"] == "JOB_PROGRESS"
    assert {k: event["data"]["metrics"][k] for k in METRIC_FIELDS} == expected


# -- log lines ---------------------------------------------------------------------


@pytest.mark.parametrize("level", over_http(BAD_LOG_LEVELS))
def test_unknown_log_level_lists_the_allowed_ones(api: Any, running_job: str, level: Any) -> None:
    error = refused(api, running_job, bad_level_body(level))
    assert fields(error) == ["logLines[1].level"]
    if isinstance(level, str):
        text = error["details"][0]["message"]
        for allowed in ("info", "warning", "error"):
            assert allowed in text, text


def test_log_level_in_any_case_is_stored_lower_case(api: Any, running_job: str) -> None:
    lines = [
        {"level": "INFO", "message": "a"},
        {"level": "Warning", "message": "b"},
        {"level": "eRRoR", "message": "c"},
        {"level": "info", "message": "d"},
    ]
    assert (
        api.post(
            f"/api/jobs/{running_job}/progress", json=progress_body(logLines=lines)
        ).status_code
        == 200
    )
    logs = js(api.get(f"/api/jobs/{running_job}/logs"))["logs"][1:]
    assert [(x["level"], x["message"]) for x in logs] == [
        ("info", "a"),
        ("warning", "b"),
        ("error", "c"),
        ("info", "d"),
    ]
    warnings = js(api.get(f"/api/jobs/{running_job}/logs?level=warning"))
    assert [x["message"] for x in warnings["logs"]] == ["b"]


def test_1000_log_lines_accepted_1001_refused(api: Any, running_job: str) -> None:
    lines = [{"level": "info", "message": f"m{i}"} for i in range(1001)]
    error = refused(api, running_job, progress_body(logLines=lines))
    assert fields(error) == ["logLines"]

    r = api.post(f"/api/jobs/{running_job}/progress", json=progress_body(logLines=lines[:1000]))
    assert r.status_code == 200, r.text
    page = js(api.get(f"/api/jobs/{running_job}/logs?limit=1000&offset=1"))
    assert page["total"] == 1001  # plus the fixture's line
    assert [x["message"] for x in page["logs"]] == [f"m{i}" for i in range(1000)]


def _stored_messages(api: Any, running_job: str, n: int) -> list[str]:
    logs = js(api.get(f"/api/jobs/{running_job}/logs"))["logs"]
    return [x["message"] for x in logs[-n:]]


def _check_truncated(original: str, stored: str) -> None:
    raw = stored.encode("utf-8")
    assert len(raw) <= 16 * 1024
    kept = 0
    while kept < len(stored) and kept < len(original) and stored[kept] == original[kept]:
        kept += 1
    assert kept >= 8 * 1024 // 4, "most of the message must be kept"
    marker = stored[kept:]
    assert 0 < len(marker) <= 80, marker
    assert "trunc" in marker.lower(), marker
    cut_bytes = len(original.encode("utf-8")) - len(original[:kept].encode("utf-8"))
    cut_chars = len(original) - kept
    numbers = {int(n) for n in re.findall(r"\d+", marker)}
    assert cut_bytes in numbers or cut_chars in numbers, (marker, cut_bytes, cut_chars)


@pytest.mark.parametrize(
    "original",
    [
        "x" * (20 * 1024),
        "€" * 7000,  # 3 bytes each: 21,000 bytes
        "日本語のログ" * 1200 + "🚀" * 100,
        "a" + "🔥" * 5000,  # 4-byte characters at an odd offset
    ],
    ids=["ascii", "euro", "cjk-emoji", "emoji-odd"],
)
def test_long_message_is_truncated_to_16_kib(
    api: Any, running_job: str, ws_factory: Any, original: str
) -> None:
    assert len(original.encode("utf-8")) > 16 * 1024
    ws = ws_factory()
    assert ws.subscribe(running_job)["type"] == "subscribed"
    body = progress_body(logLines=[{"level": "error", "message": original}])
    assert api.post(f"/api/jobs/{running_job}/progress", json=body).status_code == 200
    (stored,) = _stored_messages(api, running_job, 1)
    _check_truncated(original, stored)
    ws.conn.settimeout(5)
    events = [strict_loads(ws.conn.recv()) for _ in range(2)]
    assert events[1]["type"] == "JOB_LOGS"
    assert events[1]["data"]["logs"][0]["message"] == stored


def test_message_of_exactly_16_kib_is_kept_whole(api: Any, running_job: str) -> None:
    original = "é" * (8 * 1024)  # 16,384 bytes
    body = progress_body(logLines=[{"level": "info", "message": original}])
    assert api.post(f"/api/jobs/{running_job}/progress", json=body).status_code == 200
    assert _stored_messages(api, running_job, 1) == [original]


TEXTS = [
    "emoji 🚀🔥✅ done",
    "中文日志：训练完成，准确率 98.5%",  # noqa: RUF001
    "日本語と한국어",
    "replacement \ufffd character \ufffd\ufffd",
    "family 👨\u200d👩\u200d👧 and flags 🇫🇷🇯🇵",
    "accents é ñ ü ß Ω",
    "math 𝔸𝔹ℂ and 😀 astral",  # noqa: RUF001
    "tab\tnewline\nline 2\r\nline 3",
    'quote " backslash \\ slash /',
    "nul-free control \u0001\u001f",
    "",
    " ",
]


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw-utf8"])
def test_any_text_round_trips_exactly(
    api: Any, running_job: str, ws_factory: Any, ascii_only: bool
) -> None:
    ws = ws_factory()
    assert ws.subscribe(running_job)["type"] == "subscribed"
    body = progress_body(
        currentOperation=TEXTS[4],
        logLines=[{"level": "info", "message": t} for t in TEXTS],
    )
    raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8")
    assert post_raw(api, running_job, raw).status_code == 200

    assert _stored_messages(api, running_job, len(TEXTS)) == TEXTS
    monitor = js(api.get(f"/api/jobs/{running_job}/monitor"))
    assert [x["message"] for x in monitor["logs"][-len(TEXTS) :]] == TEXTS
    assert monitor["job"]["currentOperation"] == TEXTS[4]

    ws.conn.settimeout(5)
    progress_event = strict_loads(ws.conn.recv())
    logs_event = strict_loads(ws.conn.recv())
    assert progress_event["data"]["currentOperation"] == TEXTS[4]
    assert [x["message"] for x in logs_event["data"]["logs"]] == TEXTS


# -- bodies that are not JSON objects ----------------------------------------------


@pytest.mark.parametrize("raw", over_http(MALFORMED_JSON))
def test_malformed_json_is_invalid_json(api: Any, running_job: str, raw: bytes) -> None:
    error = refused(api, running_job, raw)
    assert error["code"] == "invalid_json"


@pytest.mark.parametrize("raw", over_http(NOT_OBJECTS))
def test_json_that_is_not_an_object_is_400(api: Any, running_job: str, raw: bytes) -> None:
    refused(api, running_job, raw)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {"Content-Type": "application/xml"},
        {},
    ],
    ids=["text", "form", "multipart", "xml", "none"],
)
def test_wrong_content_type_is_415(api: Any, running_job: str, headers: dict[str, str]) -> None:
    before = snapshot(api, running_job)
    raw = json.dumps(progress_body()).encode()
    r = api.session.post(
        f"{api.base}/api/jobs/{running_job}/progress", data=raw, headers=headers, timeout=10
    )
    assert error_of(r, 415)["code"] == "unsupported_media_type"  # RFC 9110, section 15.5.16
    assert snapshot(api, running_job) == before


def test_form_post_is_415(api: Any, running_job: str) -> None:
    before = snapshot(api, running_job)
    r = api.post(f"/api/jobs/{running_job}/progress", data={"workerId": "w", "progress": "20"})
    error_of(r, 415, "unsupported_media_type")
    assert snapshot(api, running_job) == before


def test_json_with_a_charset_is_accepted(api: Any, running_job: str) -> None:
    raw = json.dumps(progress_body()).encode()
    r = post_raw(api, running_job, raw, {"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


def test_body_over_1_mib_is_413(api: Any, running_job: str) -> None:
    filler = "x" * 1100
    lines = [{"level": "info", "message": filler}] * 1000  # about 1.13 MB
    raw = json.dumps(progress_body(logLines=lines)).encode()
    assert len(raw) > 1024 * 1024
    error = refused(api, running_job, raw, status=413)
    assert error["code"] == "payload_too_large"


def test_body_just_under_1_mib_is_accepted(api: Any, running_job: str) -> None:
    lines = [{"level": "info", "message": "y" * 1000}] * 1000
    raw = json.dumps(progress_body(logLines=lines)).encode()
    raw = raw.replace(b"y" * 1000, b"y" * 990, 1000)
    assert 1000 * 1000 < len(raw) <= 1024 * 1024
    assert post_raw(api, running_job, raw).status_code == 200


@pytest.mark.parametrize(
    "raw", [raw for raw, _ in over_http(INVALID_UTF8)], ids=[i for _, i in over_http(INVALID_UTF8)]
)
def test_invalid_utf8_is_400(api: Any, running_job: str, raw: bytes) -> None:
    refused(api, running_job, raw)


@pytest.mark.parametrize("raw", over_http(LONE_SURROGATES))
def test_lone_surrogate_escape_is_400(api: Any, running_job: str, raw: bytes) -> None:
    refused(api, running_job, raw)


def test_escaped_surrogate_pair_is_a_valid_character(api: Any, running_job: str) -> None:
    raw = (
        rb'{"workerId": "w", "progress": 4,'
        rb' "logLines": [{"level": "info", "message": "\ud83d\ude80"}]}'
    )
    assert post_raw(api, running_job, raw).status_code == 200
    assert _stored_messages(api, running_job, 1) == ["🚀"]


# -- query parameters --------------------------------------------------------------


@pytest.mark.parametrize(("query", "param"), over_http(BAD_LOGS_QUERIES))
def test_bad_logs_query_is_400_naming_the_parameter(
    api: Any, running_job: str, query: str, param: str
) -> None:
    error = query_refused(api, f"/api/jobs/{running_job}/logs", LogsQuery, query)
    assert fields(error) == [param]


@pytest.mark.parametrize(("query", "param"), over_http(BAD_METRICS_QUERIES))
def test_bad_metrics_query_is_400_naming_the_parameter(
    api: Any, running_job: str, query: str, param: str
) -> None:
    error = query_refused(api, f"/api/jobs/{running_job}/metrics", MetricsQuery, query)
    assert fields(error) == [param]


def test_both_bad_metrics_parameters_are_named(api: Any, running_job: str) -> None:
    error = query_refused(
        api, f"/api/jobs/{running_job}/metrics", MetricsQuery, "timeRange=0&maxPoints=1"
    )
    assert sorted(fields(error)) == ["maxPoints", "timeRange"]


@pytest.mark.parametrize("query", GOOD_LOGS_QUERIES)
def test_good_logs_query(api: Any, running_job: str, query: str) -> None:
    assert api.get(f"/api/jobs/{running_job}/logs?{query}").status_code == 200


@pytest.mark.parametrize("query", GOOD_METRICS_QUERIES)
def test_good_metrics_query(api: Any, running_job: str, query: str) -> None:
    assert api.get(f"/api/jobs/{running_job}/metrics?{query}").status_code == 200


# -- routes and ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nope"),
        ("GET", "/nope"),
        ("GET", "/api/jobs/x/bogus"),
        ("POST", "/api/jobs/x/bogus"),
        ("GET", "/api"),
    ],
)
def test_unknown_route_is_404_in_the_envelope(api: Any, method: str, path: str) -> None:
    r = api.session.request(method, api.base + path, json={}, timeout=10)
    error_of(r, 404)


LONG_ID = "a" * 5000
ODD_IDS = [LONG_ID, "a" * 129, "a%2Fb", "a%2F..%2Fb", "%2E%2E", "a%20b", "%F0%9F%9A%80", "a%00b"]


@pytest.mark.parametrize("job_path", ODD_IDS, ids=lambda s: s[:12])
@pytest.mark.parametrize("suffix", ["", "/monitor", "/metrics", "/logs"])
def test_odd_job_ids_in_get_are_404(api: Any, job_path: str, suffix: str) -> None:
    error_of(api.get(f"/api/jobs/{job_path}{suffix}"), 404)


@pytest.mark.parametrize("job_path", ODD_IDS, ids=lambda s: s[:12])
@pytest.mark.parametrize("suffix", ["/progress", "/complete"])
def test_odd_job_ids_in_post_are_404(api: Any, job_path: str, suffix: str) -> None:
    r = api.post(f"/api/jobs/{job_path}{suffix}", json={"workerId": "w", "progress": 1})
    error_of(r, 404)


# -- finite numbers everywhere -----------------------------------------------------


def test_extreme_values_never_give_non_finite_numbers(api: Any, clock: Any, job_id: str) -> None:
    """Tiny progress and huge prices push the estimates toward overflow: every answer
    (checked by the strict hook) and every event must still be finite JSON."""
    assert api.post("/api/jobs", json={"id": job_id, "pricePerHour": 1e9}).status_code == 201
    for value in (0, 5e-324, 1e-300, 2e-300):
        r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": value})
        assert r.status_code == 200, r.text
        clock.advance(30 * 24 * 3600)
        body = js(api.get(f"/api/jobs/{job_id}/monitor"))
        for key in ("timeRemaining", "costSoFar", "estimatedTotalCost"):
            assert body[key] is None or (math.isfinite(body[key]) and body[key] >= 0)
    js(api.get(f"/api/jobs/{job_id}/metrics?timeRange=2592000"))
    js(api.get(f"/api/jobs/{job_id}/logs"))


@pytest.mark.parametrize("raw_result", over_http(NON_FINITE_RESULTS))
def test_non_finite_numbers_in_a_complete_result_are_refused(
    api: Any, running_job: str, raw_result: str
) -> None:
    """docs/api.md: input containing NaN/Infinity is rejected with 400 (the
    ``result`` of a completion is input too)."""
    refused(api, running_job, result_body(raw_result), path="complete", model=CompleteRequest)


# -- NUL characters (PostgreSQL text cannot hold them; no backend takes them) ----------


@pytest.mark.parametrize(("body", "field"), over_http(NUL_IN_PROGRESS))
def test_nul_in_progress_text_is_refused(
    api: Any, running_job: str, body: dict[str, Any], field: str
) -> None:
    error = refused(api, running_job, body)
    assert fields(error) == [field]
    assert "NUL" in error["details"][0]["message"]


@pytest.mark.parametrize("field", over_http(NUL_JOB_FIELDS))
def test_nul_in_job_text_is_refused(api: Any, running_job: str, field: str) -> None:
    before = snapshot(api, running_job)
    raw = json.dumps({field: "x\u0000y"}).encode()
    r = api.put(f"/api/jobs/{running_job}", data=raw, headers=JSON)
    error = error_of(r, 400, "validation_error")
    assert fields(error) == [field]
    assert snapshot(api, running_job) == before
    assert js(r) == verdict(JobSpec, raw)


def test_nul_in_a_completion_error_is_refused(api: Any, running_job: str) -> None:
    body = {"workerId": "w", "status": "failed", "error": "boom\u0000"}
    error = refused(api, running_job, body, path="complete", model=CompleteRequest)
    assert error["code"] == "validation_error"
    assert fields(error) == ["error"]


def test_nul_inside_a_json_result_is_kept(api: Any, running_job: str) -> None:
    """``result`` is stored as JSON text, where NUL is the escape ``\\u0000``."""
    body = {"workerId": "w", "status": "completed", "result": {"note": "a\u0000b"}}
    assert api.post(f"/api/jobs/{running_job}/complete", json=body).status_code == 200
    assert js(api.get(f"/api/jobs/{running_job}"))["job"]["result"] == {"note": "a\u0000b"}


# -- union-typed fields (scalars: one object or a list) ----------------------------


@pytest.mark.parametrize(
    ("scalars", "field"),
    [
        ({"step": -1, "values": {"m1": 1}}, "scalars.step"),
        ([{"step": 1, "values": {"m1": 1}}, {"step": 2, "values": {}}], "scalars[1].values"),
        (7, "scalars"),
    ],
)
def test_a_bad_scalars_field_is_named_once_by_its_json_path(
    api: Any, running_job: str, scalars: Any, field: str
) -> None:
    error = refused(api, running_job, progress_body(scalars=scalars))
    assert error["message"] == "1 invalid field in request body"
    assert fields(error) == [field]
