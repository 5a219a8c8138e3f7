"""JobsTable without a kernel or a browser: rows, sort, filter, totals, and only the
changed rows sent; its ES module's order and formats checked against Python's in Node."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import traitlets

from jobwatch import Client
from jobwatch.errors import ConnectionError
from jobwatch.notebook.fleet_table import FleetTableWidget
from jobwatch.notebook.jobs_table import JobsTable
from jobwatch.view.fleet import SORT_KEYS, matches, sort_rows
from jobwatch.view.formatting import format_cost, format_duration
from tests.conftest import wait_for
from tests.notebook.test_logview import node_or_skip
from tests.paths import REPO
from tests.view.test_fleet_state import summary

JS = REPO / "jobwatch" / "notebook" / "static" / "jobstable.js"


def shown_widget() -> tuple[FleetTableWidget, list[dict[str, Any]]]:
    widget = FleetTableWidget()
    sent: list[dict[str, Any]] = []
    widget.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    widget.shown()
    return widget, sent


# -- the table widget ------------------------------------------------------------------------


def test_before_it_is_shown_the_rows_are_synced_whole() -> None:
    widget = FleetTableWidget()
    changes: list[Any] = []
    widget.observe(changes.append, names="rows")
    widget.update({"a": summary("a"), "b": summary("b")})
    assert [row["id"] for row in widget.rows] == ["a", "b"] and len(changes) == 1
    assert widget.revision == 1


def test_once_shown_only_changed_rows_and_fields_travel() -> None:
    widget, sent = shown_widget()
    changes: list[Any] = []
    widget.observe(changes.append, names="rows")
    assert widget.update({"a": summary("a"), "b": summary("b")}) == 2
    assert widget.update({"a": summary("a"), "b": summary("b")}) == 0  # nothing new: no message
    assert widget.update({"a": summary("a", progress=55.0, costSoFar=1.5)}) == 1
    assert widget.update({"b": None, "gone": None}) == 1
    assert changes == []  # changed in place: ipywidgets never sends the whole list
    assert [m["revision"] for m in sent] == [1, 2, 3]
    assert [row["id"] for row in sent[0]["rows"]] == ["a", "b"] and sent[0]["rows"][0] == summary(
        "a"
    )
    assert sent[1]["rows"] == [{"id": "a", "progress": 55.0, "costSoFar": 1.5}]
    assert sent[2] == {"type": "rows", "revision": 3, "rows": [], "remove": ["b"]}
    assert [row["id"] for row in widget.rows] == ["a"]


def test_a_page_that_missed_a_revision_gets_everything_again() -> None:
    widget, sent = shown_widget()
    widget.update({"a": summary("a"), "b": summary("b")})
    widget._handle_custom_msg({"type": "sync"}, [])
    widget._handle_custom_msg({"type": "nonsense"}, [])
    assert len(sent) == 2 and sent[1]["reset"] is True
    assert [row["id"] for row in sent[1]["rows"]] == ["a", "b"]


def test_sort_and_filter_traits_refuse_unknown_values() -> None:
    widget = FleetTableWidget()
    with pytest.raises(traitlets.TraitError, match="unknown sort_by 'size'; allowed: status"):
        widget.sort_by = "size"
    with pytest.raises(traitlets.TraitError, match="unknown status_filter 'done'"):
        widget.status_filter = "done"
    widget.sort_by, widget.status_filter = "costSoFar", "failed"


# -- JobsTable on a real server ------------------------------------------------------------------


@pytest.fixture
def table_factory() -> Iterator[Callable[..., JobsTable]]:
    tables: list[JobsTable] = []

    def make(*args: Any, **kwargs: Any) -> JobsTable:
        table = JobsTable(*args, **kwargs, widgets=True)
        tables.append(table)
        return table

    yield make
    for table in tables:
        table.close()


def held(table: JobsTable) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in table.view.table.rows}


def test_a_table_follows_every_job_and_sends_only_the_changed_rows(
    server: Any, client: Client, table_factory: Callable[..., JobsTable]
) -> None:
    for i in range(20):
        client.create_job(job_id=f"job-{i:02d}", name=f"run {i}", price_per_hour=3.6)
        client.report_progress(f"job-{i:02d}", "w", i)
    table = table_factory(server.url, refresh=0.05)
    wait_for(lambda: len(held(table)) == 20 and table.view.table.connection == "live")
    widget = table.view.table
    sent: list[dict[str, Any]] = []
    widget.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    widget.shown()
    client.report_progress("job-07", "w", 77, "epoch 7", metrics={"gpuUtilization": 91})
    wait_for(lambda: held(table)["job-07"]["progress"] == 77)
    patched = {row["id"] for message in sent for row in message["rows"]}
    assert patched == {"job-07"}
    patch = next(row for message in sent for row in message["rows"])
    assert "name" not in patch and patch["gpuUtilization"] == 91  # only what changed
    assert widget.totals["counts"] == {"running": 20}
    assert widget.totals["running"]["QUBIC"] >= 0


def test_sort_and_filters_set_on_the_page_order_the_rows(
    server: Any, client: Client, table_factory: Callable[..., JobsTable]
) -> None:
    for job_id, progress in (("alpha", 30), ("beta", 90), ("gamma", 60)):
        client.create_job(job_id=job_id)
        client.report_progress(job_id, "w", progress)
    client.create_job(job_id="idle")
    table = table_factory(server.url)
    wait_for(lambda: len(table.rows()) == 4)
    widget = table.view.table
    widget.sort_by, widget.descending = "progress", True
    assert [row["id"] for row in table.rows()] == ["beta", "gamma", "alpha", "idle"]
    widget.status_filter = "pending"
    assert [row["id"] for row in table.rows()] == ["idle"]
    widget.status_filter, widget.name_filter = "all", "MM"
    assert [row["id"] for row in table.rows()] == ["gamma"]


def test_clicking_a_row_opens_its_monitor_below_the_table(
    server: Any, client: Client, table_factory: Callable[..., JobsTable]
) -> None:
    client.create_job(job_id="picked", name="picked run")
    client.report_progress("picked", "w", 40)
    table = table_factory(server.url)
    wait_for(lambda: "picked" in held(table))
    table.view.table.selected = "picked"  # what the page sets on a click
    assert table.monitor is not None and table.monitor.job_id == "picked"
    assert table.view.detail.children == (table.monitor.widget,)
    first = table.monitor
    table.view.table.selected = ""
    assert table.monitor is None and table.view.detail.children == ()
    assert not first.live


def test_a_status_table_drops_a_job_that_finishes(
    server: Any, client: Client, table_factory: Callable[..., JobsTable]
) -> None:
    client.create_job(job_id="runs")
    client.report_progress("runs", "w", 10)
    table = table_factory(server.url, "running")
    wait_for(lambda: "runs" in held(table))
    client.complete_job("runs", "w")
    wait_for(lambda: "runs" not in held(table))
    assert table.totals().counts == {}


def test_close_stops_the_threads_and_keeps_the_last_table(server: Any, client: Client) -> None:
    client.create_job(job_id="kept")
    table = JobsTable(server.url, widgets=True)
    wait_for(lambda: "kept" in held(table))
    table.close()
    table.close()
    names = {t.name for t in threading.enumerate()}
    assert "jobwatch-jobs-table-render" not in names and "jobwatch-fleet-read" not in names
    assert table.view.table.connection == "closed" and "kept" in held(table)


def test_bad_arguments_are_refused_before_anything_starts(server: Any) -> None:
    with pytest.raises(ValueError, match="status must be one of pending"):
        JobsTable(server.url, status="done")
    with pytest.raises(ValueError, match=r"refresh must be 0\.01-60 seconds"):
        JobsTable(server.url, refresh=0)
    with pytest.raises(ValueError, match="url must start with http"):
        JobsTable("ftp://x")
    with pytest.raises(ConnectionError):
        JobsTable("http://127.0.0.1:9")


def test_outside_a_kernel_it_says_so_and_shows_text(
    server: Any, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_job(job_id="texty", name="text run")
    with JobsTable(server.url) as table:
        assert "JobsTable needs a Jupyter kernel" in capsys.readouterr().out
        wait_for(lambda: "texty" in table.state.rows)
        text = table._repr_mimebundle_()["text/plain"]
    assert "text run (texty)" in text and text.splitlines()[0].startswith("1 jobs: 0 running")


# -- the ES module agrees with Python ------------------------------------------------------------


def random_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        maybe = lambda value: None if rng.random() < 0.2 else value  # noqa: E731
        rows.append(
            summary(
                f"job-{rng.randrange(1000):03d}-{i}",
                name=maybe(rng.choice(["ResNet", "bert", "Gpt", "vit", "resnet"])),
                status=rng.choice(["running", "pending", "completed", "failed", "cancelled"]),
                progress=maybe(rng.choice([0.0, 12.5, 50.0, 99.9])),
                timeRemaining=maybe(rng.uniform(0, 1e4)),
                costSoFar=maybe(rng.choice([0.1, 2.0, 2.0, 35.5])),
                gpuUtilization=maybe(float(rng.randrange(101))),
                gpuTemperature=maybe(float(rng.choice([40, 60, 60, 85]))),
                updatedAt=f"2026-11-29T10:{rng.randrange(60):02d}:00.000Z",
            )
        )
    return rows


def test_the_page_sorts_filters_and_formats_as_python_does(tmp_path: Path) -> None:
    node = node_or_skip()
    rows = random_rows(200, seed=7)
    costs = [0, 0.000694, 0.0100, 0.42, 1234.5, 1e-9, 99.95]
    durations = [None, 0, 0.001, 0.6, 45, 192, 3720, 183600]
    module = tmp_path / "jobstable.mjs"
    shutil.copy(JS, module)
    harness = tmp_path / "harness.mjs"
    harness.write_text(
        f"const m = await import({module.as_uri()!r});\n"
        f"const rows = {json.dumps(rows)};\n"
        f"const keys = {json.dumps(list(SORT_KEYS))};\n"
        "const out = {orders: {}, matches: [], costs: [], durations: []};\n"
        "for (const key of keys) for (const d of [false, true])\n"
        "  out.orders[`${key}:${d}`] = m.sortRows(rows, key, d).map((r) => r.id);\n"
        "out.matches = rows.filter((r) => m.matches(r, 'ResN')).map((r) => r.id);\n"
        f"out.costs = {json.dumps(costs)}.map((c) => m.formatCost(c, 'QUBIC'));\n"
        f"out.durations = {json.dumps(durations)}.map((d) => m.formatDuration(d));\n"
        "console.log(JSON.stringify(out));\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for key in SORT_KEYS:
        for descending in (False, True):
            python = [row["id"] for row in sort_rows(rows, key, descending)]
            assert out["orders"][f"{key}:{str(descending).lower()}"] == python, key
    assert out["matches"] == [row["id"] for row in rows if matches(row, "ResN")]
    assert out["costs"] == [format_cost(c, "QUBIC") for c in costs]
    assert out["durations"] == [format_duration(d) for d in durations]
    assert "innerHTML" not in JS.read_text(encoding="utf-8")


def test_a_monitor_that_cannot_start_leaves_the_table_going(
    server: Any, client: Client, table_factory: Callable[..., JobsTable], caplog: Any
) -> None:
    client.create_job(job_id="there")
    table = table_factory(server.url)
    wait_for(lambda: "there" in held(table))
    table.view.table.selected = "there"
    table.client.url = "http://127.0.0.1:9"  # the server is gone when the next row is picked
    table.view.table.selected = "elsewhere"
    assert table.monitor is None and table.view.detail.children == ()
    assert table.view.table.selected == ""
    assert "could not open job 'elsewhere'" in caplog.text
