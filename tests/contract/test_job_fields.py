"""The job is one table (jobwatch/contract/job_fields.py): the SQL schema, the typed
row, the wire, the OpenAPI answer model, the viewers' state and the job page's
model all agree with it, and a new field is one entry in it."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_type_hints

from sqlalchemy import BigInteger, Float, Integer, String, Text

from jobwatch.contract.job_fields import (
    JOB_FIELDS,
    LISTED_COLUMNS,
    VIEWED_FIELDS,
    WIRE_FIELDS,
    JobField,
    job_field,
)
from jobwatch.contract.requests import JobSpec
from jobwatch.server.core import rules
from jobwatch.server.core.job_row import JobRow, ListedJob
from jobwatch.server.core.serialize import job_to_wire
from jobwatch.server.storage import schema
from jobwatch.server.web import answers
from jobwatch.server.web.pages import job_fields_module, metrics_module
from jobwatch.view.state import MonitorState, job_model
from tests.contract.helpers import run_with_table_entry
from tests.notebook.test_logview import node_or_skip
from tests.paths import REPO

STATIC = REPO / "jobwatch" / "server" / "web" / "static"


def expected_hint(field: JobField) -> Any:
    return field.python | None if field.nullable and field.python is not Any else field.python


def test_the_schema_is_the_table() -> None:
    sql = {"text": Text, "float": Float, "integer": Integer, "bigint": BigInteger, "json": Text}
    assert [c.name for c in schema.jobs.columns] == [f.column for f in JOB_FIELDS]
    for field, column in zip(JOB_FIELDS, schema.jobs.columns, strict=True):
        kind = String if field.length else sql[field.sql]
        assert type(column.type) is kind, field.column
        assert getattr(column.type, "length", None) == field.length, field.column
        assert column.nullable == field.nullable, field.column
        assert column.primary_key == field.primary_key, field.column
        default = column.server_default
        assert (default.arg if default is not None else None) == field.server_default  # type: ignore[attr-defined]
    json_columns = {f.column for f in JOB_FIELDS if f.sql == "json"}
    assert json_columns == {"result", "latest_scalars", "alert_state", "progress_event", "config"}
    assert json_columns <= set(schema.JSON_COLUMNS)


def test_the_typed_row_is_the_table() -> None:
    """JobRow is spelled out for mypy; it must say what the table says, in its order."""
    assert get_type_hints(JobRow) == {f.column: expected_hint(f) for f in JOB_FIELDS}
    assert list(get_type_hints(JobRow)) == [
        *(c for c in LISTED_COLUMNS),
        *(f.column for f in JOB_FIELDS if not f.listed),
    ]
    assert list(get_type_hints(ListedJob)) == list(LISTED_COLUMNS)


def test_a_new_job_has_every_column_its_initial_value_or_the_specs() -> None:
    row = rules.new_job("j", JobSpec.model_validate({"name": "n", "workerId": "w"}), 5.0)
    assert list(row) == [f.column for f in JOB_FIELDS]
    set_by_rules = {"id", "name", "status", "progress", "worker_id", "currency"}
    set_by_rules |= {"created_at", "updated_at", "world_size", "n_workers", "n_nodes"}
    for field in JOB_FIELDS:
        if field.column not in set_by_rules:
            assert row[field.column] == field.initial, field.column  # type: ignore[literal-required]
        if not field.nullable:
            assert row[field.column] is not None, field.column  # type: ignore[literal-required]


def test_the_wire_is_the_table_in_order() -> None:
    row = dict(rules.new_job("j", JobSpec.model_validate({"pricePerHour": 2.5}), 1.8e9))
    row.update(started_at=1.8e9 + 1.5, stalled=1, n_alerts=3, result={"acc": 0.9})
    wire = job_to_wire(row)
    assert list(wire) == [f.wire for f in WIRE_FIELDS]
    assert wire["startedAt"] == "2027-01-15T08:00:01.500Z"
    assert wire["completedAt"] is None
    assert wire["stalled"] is True and wire["alerts"] == 3 and wire["pricePerHour"] == 2.5
    assert wire["result"] == {"acc": 0.9}
    assert job_to_wire.__module__ == "jobwatch.server.core.serialize"
    assert job_to_wire.__doc__


def test_the_answer_model_is_the_table() -> None:
    fields = answers.Job.model_fields
    assert [f.alias or name for name, f in fields.items()] == [f.wire for f in WIRE_FIELDS]
    assert list(fields) == [f.column for f in WIRE_FIELDS]
    hints = get_type_hints(answers.Job)
    assert hints["created_at"] == datetime and hints["completed_at"] == datetime | None
    assert hints["stalled"] is bool and hints["result"] is Any
    assert hints["status"] == Literal["pending", "running", "completed", "failed", "cancelled"]
    schema_ = answers.Job.model_json_schema(by_alias=True)["properties"]
    assert schema_["progress"]["minimum"] == 0 and schema_["progress"]["maximum"] == 100
    assert schema_["alerts"]["description"] == job_field("n_alerts").description


def test_the_viewers_hold_every_viewed_field() -> None:
    assert tuple(f.wire for f in WIRE_FIELDS) == VIEWED_FIELDS  # every wire field, today
    state = MonitorState()
    state.load_snapshot({"job": {"id": "j", "status": "running", "extra": 1}})
    assert list(state.job)[: len(VIEWED_FIELDS)] == list(VIEWED_FIELDS)
    assert state.job["id"] == "j" and state.job["name"] is None and state.job["extra"] == 1
    assert job_model({"alerts": 2})["alerts"] == 2


def page_model(tmp_path: Path, module: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The job page's model (job_state.js under node) of each job, with ``module``
    as the server's ``/assets/job_fields.js``."""
    node = node_or_skip()
    tmp_path.mkdir(exist_ok=True)
    for name in ("job_state.js", "format.js", "gpu_labels.js"):
        shutil.copy(STATIC / name, tmp_path / name)
    (tmp_path / "job_fields.js").write_text(module, encoding="utf-8")
    (tmp_path / "metrics.js").write_text(metrics_module(), encoding="utf-8")
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    harness = tmp_path / "harness.js"
    harness.write_text(
        "import { JobState } from './job_state.js';\n"
        f"const jobs = {json.dumps(jobs)};\n"
        "console.log(JSON.stringify(jobs.map((job) => {\n"
        "  const state = new JobState();\n"
        "  state.loadSnapshot({ job }, 0);\n"
        "  return state.job;\n"
        "})));\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    models: list[dict[str, Any]] = json.loads(done.stdout)
    return models


def test_the_page_model_holds_the_fields_the_server_lists(tmp_path: Path) -> None:
    jobs = [{"id": "j", "status": "running", "extra": 1}, {}]
    models = page_model(tmp_path, job_fields_module(), jobs)
    assert models == [job_model(job) for job in jobs]
    assert list(models[1]) == list(VIEWED_FIELDS)


NEW_FIELD = """
    JobField(
        "priority",
        int,
        "integer",
        "larger goes first",
        wire="priority",
        server_default="0",
        minimum=0,
        initial=0,
    ),
"""

WITH_NEW_FIELD = textwrap.dedent(
    """
    import json
    from sqlalchemy.schema import CreateTable
    from jobwatch.server.core.serialize import job_to_wire
    from jobwatch.server.storage.schema import jobs
    from jobwatch.server.web.app import create_app
    from jobwatch.server.web.openapi import openapi_document
    from jobwatch.view.state import MonitorState

    app = create_app({"DB": ":memory:"})
    client = app.test_client()
    created = client.put("/api/jobs/j", json={"name": "new field"}).get_json()["job"]
    listed = client.get("/api/jobs").get_json()["jobs"][0]
    snapshot = client.get("/api/jobs/j/monitor").get_json()
    state = MonitorState()
    state.load_snapshot(snapshot)
    row = {c.name: 0 for c in jobs.columns}
    job = openapi_document()["components"]["schemas"]["Job"]
    print(json.dumps({
        "ddl": str(CreateTable(jobs)),
        "wire": job_to_wire(row)["priority"],
        "created": created["priority"],
        "listed": listed["priority"],
        "openapi": [job["properties"]["priority"], "priority" in job["required"]],
        "state": state.job["priority"],
        "page": client.get("/assets/job_fields.js").get_data(as_text=True),
    }))
    """
)


def test_adding_a_job_field_is_one_entry_in_the_table(tmp_path: Path) -> None:
    got = run_with_table_entry(
        tmp_path,
        "contract/job_fields.py",
        '\n)\n"""Every column of ``jobs``',
        NEW_FIELD,
        WITH_NEW_FIELD,
    )
    assert "priority INTEGER DEFAULT '0' NOT NULL" in got["ddl"]
    assert got["wire"] == got["created"] == got["listed"] == got["state"] == 0
    prop, required = got["openapi"]
    assert prop["type"] == "integer" and prop["minimum"] == 0 and required
    assert prop["description"] == "larger goes first"
    assert '"priority"]' in got["page"]
    page = page_model(tmp_path / "page", got["page"], [{"id": "j"}, {"id": "j", "priority": 2}])
    assert [model["priority"] for model in page] == [None, 2]
