"""A job's ``config``: its hyperparameters, a JSON object of at most 64 KiB, set by
POST/PUT, changed by a later PUT, returned as stored; bad ones refused, nothing stored."""

from __future__ import annotations

import json
from typing import Any

from jobwatch.contract.basics import MAX_CONFIG_BYTES
from tests.contract.helpers import error_of, js

CONFIG = {
    "lr": 0.001,
    "batch_size": 64,
    "optimizer": {"name": "adamw", "betas": [0.9, 0.999]},
    "tags": ["sweep", "ünïcode"],
    "warmup": None,
    "fp16": True,
}


def put(api: Any, job_id: str, **body: Any) -> Any:
    return api.put(f"/api/jobs/{job_id}", json=body)


def test_a_job_has_no_config_until_one_is_sent(api: Any, job_id: str) -> None:
    r = put(api, job_id)
    assert r.status_code == 201, r.text
    assert js(r)["job"]["config"] is None


def test_config_is_stored_and_returned_as_sent(api: Any, job_id: str) -> None:
    r = put(api, job_id, config=CONFIG)
    assert r.status_code == 201, r.text
    assert js(r)["job"]["config"] == CONFIG
    got = js(api.get(f"/api/jobs/{job_id}"))["job"]["config"]
    assert got == CONFIG and list(got) == list(CONFIG)  # key order kept
    listed = js(api.get("/api/jobs", params={"limit": 1000}))["jobs"]
    assert next(j for j in listed if j["id"] == job_id)["config"] == CONFIG
    snapshot = js(api.get(f"/api/jobs/{job_id}/monitor"))
    assert snapshot["job"]["config"] == CONFIG


def test_a_later_put_replaces_the_config(api: Any, job_id: str) -> None:
    assert put(api, job_id, config={"lr": 1}).status_code == 201
    r = put(api, job_id, config={"lr": 2, "epochs": 3})
    assert r.status_code == 200, r.text
    assert js(r)["job"]["config"] == {"lr": 2, "epochs": 3}
    r = put(api, job_id, name="no config given")  # absent: left as it is
    assert js(r)["job"]["config"] == {"lr": 2, "epochs": 3}


def test_a_bound_job_takes_config_from_its_worker_only(api: Any, job_id: str) -> None:
    assert put(api, job_id, workerId="w1", config={"a": 1}).status_code == 201
    r = put(api, job_id, workerId="w2", config={"a": 2})
    assert r.status_code == 403
    r = put(api, job_id, config={"a": 2})
    assert r.status_code == 403
    assert js(api.get(f"/api/jobs/{job_id}"))["job"]["config"] == {"a": 1}


def test_config_at_the_size_limit_is_taken_one_byte_more_is_not(api: Any, job_id: str) -> None:
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")).encode())
    exact = {"k": "x" * (MAX_CONFIG_BYTES - overhead)}
    assert put(api, job_id, config=exact).status_code == 201
    over = {"k": "x" * (MAX_CONFIG_BYTES - overhead + 1)}
    r = put(api, job_id, config=over)
    assert "64 KiB" in json.dumps(error_of(r, 400, "validation_error"))
    assert js(api.get(f"/api/jobs/{job_id}"))["job"]["config"] == exact


def test_bad_configs_are_refused_and_nothing_is_stored(api: Any, job_id: str) -> None:
    assert put(api, job_id, config={"ok": 1}).status_code == 201
    bad: list[Any] = [
        [1, 2],
        "lr=0.1",
        7,
        {"big": 2**70},
        {"deep": json.loads("[" * 70 + "]" * 70)},
    ]
    for config in bad:
        error_of(put(api, job_id, config=config), 400, "validation_error")
    r = api.put(
        f"/api/jobs/{job_id}",
        data='{"config": {"x": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    error_of(r, 400, "invalid_json")
    assert js(api.get(f"/api/jobs/{job_id}"))["job"]["config"] == {"ok": 1}


def test_a_finished_jobs_config_is_settled(api: Any, job_id: str) -> None:
    assert put(api, job_id, workerId="w", config={"a": 1}).status_code == 201
    done = api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w"})
    assert done.status_code == 200, done.text
    assert put(api, job_id, workerId="w", config={"a": 1}).status_code == 200  # no change
    assert put(api, job_id, workerId="w", config={"a": 2}).status_code == 409


def nested(levels: int, leaf: Any, kind: str = "object") -> Any:
    """``levels`` objects (or arrays) one inside the other, the outermost counting
    as 1, with ``leaf`` in the innermost (a scalar or ``None`` for an empty one)."""
    value: Any = {} if leaf is None else {"x": leaf}
    if kind == "array":
        value = [] if leaf is None else [leaf]
    for _ in range(levels - 1):
        value = {"x": value} if kind == "object" else [value]
    return value


def test_nesting_is_at_most_64_levels_counting_the_outermost_and_not_scalars(
    api: Any, job_id: str
) -> None:
    """docs/api.md: the config object is level 1; a number, string, true, false
    or null inside adds no level; objects and arrays count alike."""
    for leaf in (None, 1, "s"):
        r = put(api, job_id, config=nested(64, leaf))
        assert r.status_code in (200, 201), (leaf, r.text)
        r = put(api, job_id, config=nested(65, leaf))
        assert "64 levels" in json.dumps(error_of(r, 400, "validation_error")), leaf
    config = {"a": nested(63, 1.5, "array")}
    assert put(api, job_id, config=config).status_code == 200
    error_of(put(api, job_id, config={"a": nested(64, 1.5, "array")}), 400, "validation_error")
    assert js(api.get(f"/api/jobs/{job_id}"))["job"]["config"] == config


def test_a_result_counts_its_levels_the_same_way(api: Any, job_id: str) -> None:
    assert put(api, job_id, workerId="w").status_code == 201
    too_deep = {"workerId": "w", "result": nested(65, None, "array")}
    r = api.post(f"/api/jobs/{job_id}/complete", json=too_deep)
    assert [d["field"] for d in error_of(r, 400, "validation_error")["details"]] == ["result"]
    deepest = nested(64, 7, "array")
    r = api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w", "result": deepest})
    assert r.status_code == 200, r.text
    assert js(r)["job"]["result"] == deepest
