"""Every bad-input case of docs/api.md against the pure validators
(``parse_body``, ``parse_query``): the error's status and code, and the JSON
path of each bad field. tests/contract/test_api_validation.py sends the first
and last case of each table over HTTP on both backends and checks that the
server answers exactly these verdicts and stores nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pydantic
import pytest
from pydantic import BaseModel

from jobwatch.contract.requests import (
    MAX_RESULT_DEPTH,
    CompleteRequest,
    JobSpec,
    LogsQuery,
    MetricsQuery,
    ProgressUpdate,
    check_config,
    parse_body,
    parse_query,
)
from jobwatch.errors import ValidationError
from tests.contract.helpers import METRIC_FIELDS
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
    progress_body,
    result_body,
)


def refused(model: type[BaseModel], body: dict[str, Any] | bytes) -> ValidationError:
    """``parse_body``'s 400 for ``body`` (a dict is sent as JSON)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ValidationError) as caught:
        parse_body(model, raw)
    assert caught.value.status == 400
    return caught.value


def query_refused(model: type[BaseModel], query: str) -> ValidationError:
    """``parse_query``'s 400 for a query string, read as Flask reads it (blank values kept)."""
    with pytest.raises(ValidationError) as caught:
        parse_query(model, dict(parse_qsl(query, keep_blank_values=True)))
    assert caught.value.status == 400
    assert caught.value.code == "validation_error"
    return caught.value


def fields(error: ValidationError) -> list[str]:
    return [d["field"] for d in error.details]


# -- required fields and types -------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), BAD_PROGRESS_FIELDS)
def test_bad_progress_field(body: dict[str, Any], field: str) -> None:
    error = refused(ProgressUpdate, body)
    assert error.code == "validation_error"
    assert fields(error) == [field]


@pytest.mark.parametrize("value", PROGRESS_BOUNDS)
def test_progress_bounds_are_inclusive(value: float) -> None:
    update = parse_body(ProgressUpdate, json.dumps({"workerId": "w", "progress": value}).encode())
    assert update.progress == value


def test_every_bad_field_is_named() -> None:
    assert sorted(fields(refused(ProgressUpdate, EVERY_FIELD_BAD))) == sorted(EVERY_FIELD_BAD_NAMES)


# -- NaN and Infinity ----------------------------------------------------------------


@pytest.mark.parametrize(("token", "where"), NON_FINITE_BODIES)
def test_non_finite_numbers_are_refused(token: str, where: str) -> None:
    error = refused(ProgressUpdate, non_finite_body(token, where))
    assert error.code in ("validation_error", "invalid_json")


@pytest.mark.parametrize("raw_result", NON_FINITE_RESULTS)
def test_non_finite_numbers_in_a_complete_result_are_refused(raw_result: str) -> None:
    refused(CompleteRequest, result_body(raw_result))


# -- metrics -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_bad_metric_is_400_naming_it(name: str, value: Any) -> None:
    error = refused(ProgressUpdate, progress_body(metrics=metrics_with(name, value)))
    assert fields(error) == [f"metrics.{name}"]


def test_sentinel_in_every_field_names_every_field() -> None:
    metrics = dict.fromkeys(METRIC_FIELDS, 4294967295)
    error = refused(ProgressUpdate, progress_body(metrics=metrics))
    assert sorted(fields(error)) == sorted(f"metrics.{n}" for n in METRIC_FIELDS)


def test_memory_used_over_total_is_400() -> None:
    metrics = {**GOOD_METRICS, "gpuMemoryUsed": 24001, "gpuMemoryTotal": 24000}
    assert fields(refused(ProgressUpdate, progress_body(metrics=metrics))) == [
        "metrics.gpuMemoryUsed"
    ]


@pytest.mark.parametrize(("name", "value"), METRIC_BOUNDS)
def test_metric_bounds_are_inclusive(name: str, value: float) -> None:
    body = progress_body(metrics={**GOOD_METRICS, name: value})
    update = parse_body(ProgressUpdate, json.dumps(body).encode())
    assert update.metrics is not None
    assert update.metrics.flat()[name] == value


def test_memory_used_equal_to_total_is_accepted() -> None:
    body = progress_body(metrics={**GOOD_METRICS, "gpuMemoryUsed": 24000})
    parse_body(ProgressUpdate, json.dumps(body).encode())


# -- log lines -----------------------------------------------------------------------


@pytest.mark.parametrize("level", BAD_LOG_LEVELS)
def test_unknown_log_level_lists_the_allowed_ones(level: Any) -> None:
    error = refused(ProgressUpdate, bad_level_body(level))
    assert fields(error) == ["logLines[1].level"]
    if isinstance(level, str):
        text = error.details[0]["message"]
        for allowed in ("info", "warning", "error"):
            assert allowed in text, text


def test_1001_log_lines_are_refused() -> None:
    lines = [{"level": "info", "message": f"m{i}"} for i in range(1001)]
    assert fields(refused(ProgressUpdate, progress_body(logLines=lines))) == ["logLines"]


# -- bodies that are not JSON objects ------------------------------------------------


@pytest.mark.parametrize("raw", MALFORMED_JSON)
def test_malformed_json_is_invalid_json(raw: bytes) -> None:
    assert refused(ProgressUpdate, raw).code == "invalid_json"


@pytest.mark.parametrize("raw", NOT_OBJECTS)
def test_json_that_is_not_an_object_is_400(raw: bytes) -> None:
    refused(ProgressUpdate, raw)


@pytest.mark.parametrize("raw", [raw for raw, _ in INVALID_UTF8], ids=[i for _, i in INVALID_UTF8])
def test_invalid_utf8_is_400(raw: bytes) -> None:
    refused(ProgressUpdate, raw)


@pytest.mark.parametrize("raw", LONE_SURROGATES)
def test_lone_surrogate_escape_is_400(raw: bytes) -> None:
    refused(ProgressUpdate, raw)


# -- query parameters ----------------------------------------------------------------


@pytest.mark.parametrize(("query", "param"), BAD_LOGS_QUERIES)
def test_bad_logs_query_is_400_naming_the_parameter(query: str, param: str) -> None:
    assert fields(query_refused(LogsQuery, query)) == [param]


@pytest.mark.parametrize(("query", "param"), BAD_METRICS_QUERIES)
def test_bad_metrics_query_is_400_naming_the_parameter(query: str, param: str) -> None:
    assert fields(query_refused(MetricsQuery, query)) == [param]


def test_both_bad_metrics_parameters_are_named() -> None:
    error = query_refused(MetricsQuery, "timeRange=0&maxPoints=1")
    assert sorted(fields(error)) == ["maxPoints", "timeRange"]


@pytest.mark.parametrize("query", GOOD_LOGS_QUERIES)
def test_good_logs_query(query: str) -> None:
    parse_query(LogsQuery, dict(parse_qsl(query, keep_blank_values=True)))


@pytest.mark.parametrize("query", GOOD_METRICS_QUERIES)
def test_good_metrics_query(query: str) -> None:
    parse_query(MetricsQuery, dict(parse_qsl(query, keep_blank_values=True)))


# -- NUL characters (PostgreSQL text cannot hold them; no backend takes them) ----------


@pytest.mark.parametrize(("body", "field"), NUL_IN_PROGRESS)
def test_nul_in_progress_text_is_refused(body: dict[str, Any], field: str) -> None:
    error = refused(ProgressUpdate, body)
    assert fields(error) == [field]
    assert "NUL" in error.details[0]["message"]


@pytest.mark.parametrize("field", NUL_JOB_FIELDS)
def test_nul_in_job_text_is_refused(field: str) -> None:
    error = refused(JobSpec, {field: "x\u0000y"})
    assert error.code == "validation_error"
    assert fields(error) == [field]


def test_nul_in_a_completion_error_is_refused() -> None:
    error = refused(CompleteRequest, {"workerId": "w", "status": "failed", "error": "boom\u0000"})
    assert error.code == "validation_error"
    assert fields(error) == ["error"]


# -- nesting of config and result (the Reporter checks with the same functions) ------


def _nested(levels: int, leaf: Any) -> Any:
    value: Any = [] if leaf is None else [leaf]
    for _ in range(levels - 1):
        value = {"x": value}
    return value


@pytest.mark.parametrize("leaf", [None, 0, "s", True])
def test_64_levels_of_nesting_pass_and_65_do_not(leaf: Any) -> None:
    check_config({"c": _nested(63, leaf)})
    with pytest.raises(ValueError, match="64 levels"):
        check_config({"c": _nested(64, leaf)})
    CompleteRequest.model_validate({"workerId": "w", "result": _nested(64, leaf)})
    with pytest.raises(pydantic.ValidationError, match="64 levels"):
        CompleteRequest.model_validate({"workerId": "w", "result": _nested(65, leaf)})
    assert MAX_RESULT_DEPTH == 64


def test_the_reporter_refuses_the_config_the_server_refuses() -> None:
    from jobwatch.report.reporter import _checked_config

    assert _checked_config({"c": _nested(63, 1)}, "config") == {"c": _nested(63, 1)}
    with pytest.raises(ValueError, match="64 levels"):
        _checked_config({"c": _nested(64, None)}, "config")
