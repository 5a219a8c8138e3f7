"""Helpers shared by the contract test modules: strict JSON, the error envelope,
and readers of a job's state."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import requests

from tests.paths import REPO

ERROR_STATUSES = {400, 403, 404, 405, 409, 413, 415, 429}
METRIC_FIELDS = (
    "gpuUtilization",
    "gpuMemoryUsed",
    "gpuMemoryTotal",
    "gpuTemperature",
    "powerUsage",
)
SYSTEM_FIELDS = (
    "cpuUtilization",
    "memoryUsed",
    "memoryTotal",
    "processMemory",
    "diskUsed",
    "diskTotal",
    "diskRead",
    "diskWrite",
    "networkIn",
    "networkOut",
)


def _no_constants(token: str) -> Any:
    raise AssertionError(f"non-finite number {token!r} in JSON output")


def strict_loads(text: str | bytes) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def _strict_body(response: requests.Response) -> Any:
    """Never a 5xx, always strict JSON; an error has the envelope's keys."""
    assert response.status_code < 500, (
        f"{response.request.method} {response.url[:200]} -> {response.status_code}: "
        f"{response.text[:500]}"
    )
    assert response.headers.get("Content-Type", "").startswith("application/json")
    body = strict_loads(response.text)
    if response.status_code >= 400:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "details"}, body
    return body


def check_envelope(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: strict JSON, no 5xx, and an error is ``{"error": {code,
    message, details}}`` (only the keys are checked)."""
    _strict_body(response)


def check_answer(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: every answer is strict JSON; every error is the contract's
    envelope, with a documented status and typed fields, never a 5xx."""
    body = _strict_body(response)
    if response.status_code >= 400:
        assert response.status_code in ERROR_STATUSES
        error = body["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["details"], list)
        for detail in error["details"]:
            assert set(detail) == {"field", "message"}, detail
            assert isinstance(detail["field"], str) and detail["field"]
            assert isinstance(detail["message"], str) and detail["message"]


def js(response: requests.Response) -> Any:
    return strict_loads(response.text)


def error_of(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error object of an answer that must have ``status`` (and ``code``)."""
    assert response.status_code == status, response.text[:500]
    error: dict[str, Any] = js(response)["error"]
    if code is not None:
        assert error["code"] == code, error
    return error


def fields(error: dict[str, Any]) -> list[str]:
    return [d["field"] for d in error["details"]]


def iso(epoch_s: float) -> str:
    """ISO 8601 UTC with milliseconds and Z, computed independently of the server."""
    ms = math.floor(epoch_s * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def snapshot(api: Any, job_id: str) -> dict[str, Any]:
    """Everything readable about a job, to show that a refused request changed nothing."""
    return {
        "job": js(api.get(f"/api/jobs/{job_id}"))["job"],
        "logs": js(api.get(f"/api/jobs/{job_id}/logs?limit=1000")),
        "metrics": js(api.get(f"/api/jobs/{job_id}/metrics?timeRange=2592000")),
        "monitor": js(api.get(f"/api/jobs/{job_id}/monitor")),
    }


def run_with_table_entry(
    tmp_path: Path, table: str, end: str, entry: str, script: str
) -> dict[str, Any]:
    """Copy the package to ``tmp_path``, add ``entry`` to the table in ``table``
    (a path under ``jobwatch/``) just before ``end``, run ``script`` against that
    copy in a fresh interpreter and return the JSON of its last line."""
    package = tmp_path / "jobwatch"
    shutil.copytree(REPO / "jobwatch", package, ignore=shutil.ignore_patterns("__pycache__"))
    path = package / table
    source = path.read_text()
    assert source.count(end) == 1
    path.write_text(source.replace(end, textwrap.indent(entry, "    ").rstrip() + end))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return got
