"""Bad and good input of every kind docs/api.md names, as tables shared by two
test modules: tests/contract/test_protocol_validation.py runs every case against
``parse_body`` and ``parse_query`` (pure, milliseconds), and
tests/contract/test_api_validation.py sends the first and last case of each
table over HTTP (:func:`over_http`) on both backends, where it checks that the
answer is exactly ``parse_body``'s verdict and that nothing stored changed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from tests.contract.helpers import METRIC_FIELDS, SYSTEM_FIELDS

T = TypeVar("T")

GOOD_METRICS = {
    "gpuUtilization": 87,
    "gpuMemoryUsed": 18000,
    "gpuMemoryTotal": 24000,
    "gpuTemperature": 72,
    "powerUsage": 350,
}


def over_http(cases: list[T]) -> list[T]:
    """The cases of a table that also go over HTTP: its first and its last."""
    return cases[:1] + cases[-1:] if len(cases) > 1 else list(cases)


def progress_body(**fields: Any) -> dict[str, Any]:
    """A good progress update from worker ``w`` at 20 %, with ``fields`` added."""
    return {"workerId": "w", "progress": 20, **fields}


def metrics_with(name: str, value: Any) -> dict[str, Any]:
    """:data:`GOOD_METRICS` with ``name`` set to ``value``; for a memory field the
    other memory field is left out, so only ``name`` can be wrong."""
    metrics = {**GOOD_METRICS, name: value}
    if name in {"gpuMemoryUsed", "gpuMemoryTotal"}:
        metrics.pop("gpuMemoryTotal" if name == "gpuMemoryUsed" else "gpuMemoryUsed")
    return metrics


GOOD_SYSTEM = {
    "cpuUtilization": 45.5,
    "memoryUsed": 12000,
    "memoryTotal": 32000,
    "processMemory": 2300,
    "diskUsed": 120000,
    "diskTotal": 500000,
    "diskRead": 1048576,
    "diskWrite": 0,
    "networkIn": 2048,
    "networkOut": 512,
}
"""A worker machine's system metrics, every field valid (MB and bytes per second)."""


# -- progress bodies -----------------------------------------------------------------

BAD_PROGRESS_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"workerId": "w", "progress": "45"}, "progress"),
    ({"workerId": "w", "progress": True}, "progress"),
    ({"workerId": "w", "progress": False}, "progress"),
    ({"workerId": "w", "progress": None}, "progress"),
    ({"workerId": "w", "progress": [45]}, "progress"),
    ({"workerId": "w", "progress": -1}, "progress"),
    ({"workerId": "w", "progress": -0.001}, "progress"),
    ({"workerId": "w", "progress": 100.5}, "progress"),
    ({"workerId": "w", "progress": 1e308}, "progress"),
    ({"workerId": "w"}, "progress"),
    ({"progress": 45}, "workerId"),
    ({"workerId": None, "progress": 45}, "workerId"),
    ({"workerId": 7, "progress": 45}, "workerId"),
    ({"workerId": "w", "progress": 45, "currentOperation": 5}, "currentOperation"),
    ({"workerId": "w", "progress": 45, "metrics": "hot"}, "metrics"),
    ({"workerId": "w", "progress": 45, "metrics": [1]}, "metrics"),
    ({"workerId": "w", "progress": 45, "logLines": "oops"}, "logLines"),
    ({"workerId": "w", "progress": 45, "logLines": [{"level": "info"}]}, "logLines[0].message"),
    (
        {"workerId": "w", "progress": 45, "logLines": [{"level": "info", "message": 3}]},
        "logLines[0].message",
    ),
    ({"workerId": "w", "progress": 45, "logLines": [{"message": "m"}]}, "logLines[0].level"),
    ({"workerId": "w", "progress": 45, "timestamp": "yesterday"}, "timestamp"),
    ({"workerId": "w", "progress": 45, "resumedFrom": -1}, "resumedFrom"),
    ({"workerId": "w", "progress": 45, "resumedFrom": "40"}, "resumedFrom"),
    ({"workerId": "w", "progress": 45, "resumedFrom": True}, "resumedFrom"),
    ({"workerId": "w", "progress": 45, "resumedFrom": 100.5}, "resumedFrom"),
]
"""(body, the one field named in the error)."""

PROGRESS_BOUNDS: list[float] = [0, 0.0, 100, 100.0, 45, 45.5, 1e-9]
"""Accepted progress values (both ends inclusive)."""

EVERY_FIELD_BAD = {
    "workerId": "w",
    "progress": 101,
    "metrics": {**GOOD_METRICS, "gpuUtilization": 150, "powerUsage": -3},
    "logLines": [
        {"level": "info", "message": "ok"},
        {"level": "debug", "message": "bad"},
    ],
}
EVERY_FIELD_BAD_NAMES = [
    "progress",
    "metrics.gpuUtilization",
    "metrics.powerUsage",
    "logLines[1].level",
]

NON_FINITE_TOKENS = ["NaN", "Infinity", "-Infinity", "nan", "inf", "1e999", "-1e999"]


def non_finite_body(token: str, where: str) -> bytes:
    """A raw progress body with ``token`` as the progress (``where="progress"``)
    or as a metric (``where="metric"``)."""
    if where == "progress":
        raw = '{"workerId": "w", "progress": ' + token + "}"
    else:
        raw = '{"workerId": "w", "progress": 20, "metrics": {"gpuUtilization": ' + token + "}}"
    return raw.encode()


NON_FINITE_BODIES: list[tuple[str, str]] = [
    (token, where) for where in ("progress", "metric") for token in NON_FINITE_TOKENS
]
"""(token, where) for :func:`non_finite_body`."""

# -- metrics -------------------------------------------------------------------------

OUT_OF_RANGE: list[tuple[str, Any]] = [
    ("gpuUtilization", -1),
    ("gpuUtilization", 100.01),
    ("gpuMemoryUsed", -1),
    ("gpuMemoryTotal", -1),
    ("gpuMemoryTotal", 0),
    ("gpuTemperature", -41),
    ("gpuTemperature", 151),
    ("powerUsage", -1),
    ("powerUsage", 5000.5),
    *[(name, 4294967295) for name in METRIC_FIELDS],  # NVML's unsigned "not available"
    *[(name, 18446744073709551615) for name in METRIC_FIELDS],
    *[(name, "87") for name in METRIC_FIELDS],
    *[(name, True) for name in METRIC_FIELDS],
    ("cpuUtilization", -0.1),
    ("cpuUtilization", 100.5),
    ("memoryUsed", -1),
    ("memoryTotal", 0),
    ("memoryTotal", 1e9 + 1),
    ("processMemory", -1),
    ("diskUsed", -1),
    ("diskTotal", 0),
    ("diskTotal", 1e12 + 1),
    ("diskRead", -1),
    ("diskWrite", 1e12 + 1),
    ("networkIn", -1),
    *[(name, 18446744073709551615) for name in SYSTEM_FIELDS],  # an unsigned sentinel, in bytes
    *[(name, "87") for name in SYSTEM_FIELDS],
    *[(name, True) for name in SYSTEM_FIELDS],
]
"""(metric, a value it must refuse): the error names ``metrics.<metric>``."""

METRIC_BOUNDS: list[tuple[str, float]] = [
    ("gpuUtilization", 0),
    ("gpuUtilization", 100),
    ("gpuMemoryUsed", 0),
    ("gpuTemperature", -40),
    ("gpuTemperature", -1),
    ("gpuTemperature", 150),
    ("powerUsage", 0),
    ("powerUsage", 5000),
    ("powerUsage", 0.5),
    ("cpuUtilization", 0),
    ("cpuUtilization", 100),
    ("memoryTotal", 1e9),
    ("processMemory", 0),
    ("diskTotal", 1e12),
    ("networkOut", 1e12),
]
"""(metric, an accepted value at or near its bounds)."""

# -- log lines -----------------------------------------------------------------------

BAD_LOG_LEVELS: list[Any] = ["debug", "trace", "warn", "fatal", "", "INFO ", None, 1]


def bad_level_body(level: Any) -> dict[str, Any]:
    """A progress body whose second log line has ``level``."""
    return progress_body(
        logLines=[{"level": "info", "message": "a"}, {"level": level, "message": "b"}]
    )


# -- bodies that are not JSON objects ------------------------------------------------

MALFORMED_JSON: list[bytes] = [
    b'{"workerId": "w", "progress": 4',
    b'{"workerId": "w", "progress": 4,}',
    b"{'workerId': 'w', 'progress': 4}",
    b"",
    b"   ",
    b"workerId=w&progress=4",
    b'{"workerId": "w", "progress": 4}}',
    b'{"workerId": "w", "progress": 04}',
]
"""Bodies that are not JSON: ``invalid_json``."""

NOT_OBJECTS: list[bytes] = [
    b"[]",
    b'[{"workerId": "w", "progress": 4}]',
    b'"w"',
    b"42",
    b"null",
    b"true",
]
"""JSON that is not an object."""

INVALID_UTF8: list[tuple[bytes, str]] = [
    (b'{"workerId": "w", "progress": 4, "currentOperation": "\xff\xfe"}', "ff-fe"),
    (b'{"workerId": "w", "progress": 4, "currentOperation": "\xc3"}', "truncated-2-byte"),
    (b'{"workerId": "w", "progress": 4, "currentOperation": "\xed\xa0\x80"}', "encoded-surrogate"),
    (b'{"workerId": "w\x80", "progress": 4}', "in-worker-id"),
    (
        b'{"workerId": "w", "progress": 4, "logLines": [{"level": "info", "message": "\xe2\x82"}]}',
        "in-log",
    ),
]
"""(raw body, id)."""

LONE_SURROGATES: list[bytes] = [
    rb'{"workerId": "w", "progress": 4, "currentOperation": "\ud800"}',
    rb'{"workerId": "w", "progress": 4, "currentOperation": "a\udfffb"}',
    rb'{"workerId": "\ud83d", "progress": 4}',
    rb'{"workerId": "w", "progress": 4, "logLines": [{"level": "info", "message": "\ud800"}]}',
    rb'{"workerId": "w", "progress": 4, "logLines": [{"level": "info", "message": "x\udc00"}]}',
]

# -- query parameters ----------------------------------------------------------------

BAD_LOGS_QUERIES: list[tuple[str, str]] = [
    ("limit=0", "limit"),
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=1001", "limit"),
    ("limit=", "limit"),
    ("limit=1.5", "limit"),
    ("offset=-1", "offset"),
    ("offset=abc", "offset"),
    ("level=debug", "level"),
    ("level=info&limit=0", "limit"),
]
"""(query string of ``GET /logs``, the one parameter named in the error)."""

BAD_METRICS_QUERIES: list[tuple[str, str]] = [
    ("timeRange=-5", "timeRange"),
    ("timeRange=0", "timeRange"),
    ("timeRange=abc", "timeRange"),
    ("timeRange=1e12", "timeRange"),
    ("timeRange=2592001", "timeRange"),
    ("timeRange=nan", "timeRange"),
    ("timeRange=NaN", "timeRange"),
    ("timeRange=inf", "timeRange"),
    ("timeRange=-inf", "timeRange"),
    ("timeRange=", "timeRange"),
    ("maxPoints=1", "maxPoints"),
    ("maxPoints=0", "maxPoints"),
    ("maxPoints=10001", "maxPoints"),
    ("maxPoints=abc", "maxPoints"),
    ("maxPoints=2.5", "maxPoints"),
]
"""(query string of ``GET /metrics``, the one parameter named in the error)."""

GOOD_LOGS_QUERIES = [
    "limit=1",
    "limit=1000",
    "offset=0",
    "offset=999999",
    "level=INFO",
    "level=error",
]
GOOD_METRICS_QUERIES = [
    "timeRange=0.5",
    "timeRange=2592000",
    "timeRange=60",
    "maxPoints=2",
    "maxPoints=10000",
    "",
]

# -- completions and job fields ------------------------------------------------------

NON_FINITE_RESULTS = ["NaN", "Infinity", "-Infinity", "1e309", '{"loss": NaN}', "[1, Infinity]"]


def result_body(raw_result: str) -> bytes:
    """A raw completion body whose ``result`` is ``raw_result``."""
    return ('{"workerId": "w", "result": ' + raw_result + "}").encode()


NUL_IN_PROGRESS: list[tuple[dict[str, Any], str]] = [
    ({"workerId": "w", "progress": 5, "currentOperation": "a\u0000b"}, "currentOperation"),
    ({"workerId": "w\u0000", "progress": 5}, "workerId"),
    (
        {"workerId": "w", "progress": 5, "logLines": [{"level": "info", "message": "a\u0000b"}]},
        "logLines[0].message",
    ),
]
"""(progress body with a NUL character, the field named in the error)."""

NUL_JOB_FIELDS = ["name", "currency", "providerId"]
"""Job fields whose text may not hold NUL."""
