"""The monitor's static snapshot: HTML and text from a state, no kernel, no browser."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from jobwatch.notebook.charts.sparkline import MAX_POINTS, sparkline
from jobwatch.notebook.snapshot import snapshot_bundle, snapshot_html, snapshot_text
from jobwatch.view.state import MonitorState

NOW = 1_800_000_100.0
EVIL = '<script>alert("x")</script>&'


def state_of(**job: Any) -> MonitorState:
    state = MonitorState(clock=lambda: NOW)
    base = {
        "id": "run-7",
        "name": "resnet",
        "status": "completed",
        "progress": 100.0,
        "currentOperation": "epoch 10/10",
        "startedAt": "2027-01-15T08:00:00.000Z",
        "completedAt": "2027-01-15T08:01:40.000Z",
        "result": {"accuracy": 0.93},
    }
    base.update(job)
    state.load_snapshot(
        {
            "job": base,
            "metrics": {
                "latest": None,
                "history": [
                    {
                        "timestamp": f"2027-01-15T08:00:{second:02d}.000Z",
                        "gpuUtilization": 50.0 + second,
                        "gpuMemoryUsed": 1000.0,
                        "gpuMemoryTotal": 8000.0,
                    }
                    for second in range(10)
                ],
            },
            "logs": [
                {"id": i, "level": "info", "timestamp": "2027-01-15T08:01:00.000Z",
                 "message": f"step {i}"}
                for i in range(1, 16)
            ],
            "timeRemaining": 0.0,
            "costSoFar": 0.25,
            "estimatedTotalCost": 0.25,
            "currency": "QUBIC",
            "seq": 9,
        }
    )  # fmt: skip
    state.merge_scalars(
        {"loss": [{"step": s, "timestamp": "2027-01-15T08:00:00.000Z", "value": 1 / s}
                  for s in range(1, 6)]}
    )  # fmt: skip
    return state


def test_a_finished_job_shows_its_figures_end_charts_and_last_lines() -> None:
    html = snapshot_html(state_of(), "ended", marker="jobwatch-snapshot-abc", now=NOW)
    assert 'class="jobwatch-snapshot jobwatch-snapshot-abc"' in html
    for expected in ("resnet", "run-7", ">completed<", "100.0%", "epoch 10/10", "1m 40s",
                     "0.250 QUBIC", "✔ <b>completed</b>", "accuracy", "not live (the job ended)",
                     "last 10 of 15 log lines"):  # fmt: skip
        assert expected in html, expected
    assert "step 15" in html and "step 6" in html and "step 5" not in html
    assert html.count("<svg") == 3  # GPU utilisation, memory and the loss
    assert "<script" not in html and "on" + "load" not in html


def test_the_text_says_the_same_without_markup() -> None:
    text = snapshot_text(state_of(), "ended", now=NOW)
    first = text.splitlines()[0]
    assert first.startswith("resnet (run-7) · completed · 100.0% · snapshot ")
    assert "cost 0.250 QUBIC" in text and "✔ completed" in text
    assert text.splitlines()[-1].endswith("step 15")
    assert "<" not in text


def test_every_job_string_is_text() -> None:
    state = state_of(
        name=EVIL, currentOperation=EVIL, status="failed", error=EVIL, result=None, id="x"
    )
    state.add_logs([{"id": 99, "level": "error", "timestamp": None, "message": EVIL}])
    html = snapshot_html(state, "live", now=NOW)
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 4  # name, operation, error, log line


def test_a_bad_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="marker"):
        snapshot_html(state_of(), "live", marker='x" onclick="y')


def test_the_bundle_holds_html_and_text() -> None:
    bundle = snapshot_bundle(state_of(), "closed", marker="m", now=NOW)
    assert set(bundle) == {"text/html", "text/plain"}
    assert (
        "not live (closed)" in bundle["text/html"] and "not live (closed)" in bundle["text/plain"]
    )


def test_a_running_job_without_samples_or_lines() -> None:
    state = state_of(status="running", progress=40.0, completedAt=None, result=None)
    state.samples.clear()
    state.logs.clear()
    state.scalars.clear()
    html = snapshot_html(state, "live", now=NOW)
    assert "no GPU metrics reported" in html and "no log lines" in html
    assert "<svg" not in html and "✔" not in html


def test_the_system_metrics_of_a_job_without_a_gpu_are_drawn_and_written() -> None:
    state = state_of()
    state.replace_samples(
        [
            {
                "timestamp": f"2027-01-15T08:00:{second:02d}.000Z",
                "cpuUtilization": 20.0 + second,
                "memoryUsed": 4096.0,
                "memoryTotal": 8192.0,
                "processMemory": 512.0,
                "networkIn": 2048.0 * second,
            }
            for second in range(5)
        ]
    )
    html = snapshot_html(state, "ended", now=NOW)
    assert "no GPU metrics reported" in html
    assert "CPU 24%  mem 4.0/8.0 GiB  process 0.50 GiB  disk -  read - write -" in html
    for label, latest in (("CPU", "24%"), ("memory", "4.0 GiB"), ("net in", "8.0 KiB/s")):
        assert re.search(f">{label}</span><svg.*?<b>{re.escape(latest)}</b>", html), label
    assert html.count("<svg") == 4 + 1  # CPU, memory, process, net in; the loss
    text = snapshot_text(state, "ended", now=NOW)
    assert "CPU 24%  mem 4.0/8.0 GiB  process 0.50 GiB" in text


def points(svg: str) -> list[list[tuple[float, float]]]:
    return [
        [tuple(map(float, pair.split(","))) for pair in line.split()]  # type: ignore[misc]
        for line in re.findall(r'points="([^"]*)"', svg)
    ]


def test_a_sparkline_breaks_at_gaps_and_keeps_the_newest_points() -> None:
    svg = str(sparkline([1.0, 2.0, None, 3.0, math.nan, 4.0, 5.0], label="a <b>"))
    lines = points(svg)
    assert [len(line) for line in lines] == [2, 2, 2]  # the lone 3.0 is a short tick
    assert 'aria-label="a &lt;b&gt;"' in svg
    ys = [y for line in lines for _, y in line]
    assert max(ys) <= 28 and min(ys) >= 0
    long = points(str(sparkline([float(i) for i in range(500)], label="x")))
    assert len(long[0]) == MAX_POINTS


def test_a_flat_or_empty_sparkline() -> None:
    flat = points(str(sparkline([3.0, 3.0, 3.0], label="flat")))
    assert {y for _, y in flat[0]} == {14.0}
    assert points(str(sparkline([], label="none"))) == []
    assert points(str(sparkline([None, None], label="none"))) == []


def distributed_state(nodes: int, per_node: int) -> MonitorState:
    state = state_of(worldSize=nodes * per_node, status="running", completedAt=None)
    for node in range(nodes):
        name = EVIL if node == 1 else f"n{node}"
        gpus = [
            {"index": g, "uuid": f"GPU-{node}-{g}", "name": "H100", "node": name,
             "gpuUtilization": float(g * 50) if g < 2 else None}
            for g in range(per_node)
        ]  # fmt: skip
        state._add_sample({"timestamp": f"2027-01-15T08:00:20.{node:03d}Z", "gpus": gpus})
    state.set_workers(
        {
            "jobId": "run-7",
            "worldSize": nodes * per_node,
            "workers": [
                {"rank": r, "node": EVIL if r // per_node == 1 else f"n{r // per_node}",
                 "status": "silent" if r == 3 else "running", "straggler": r == 2}
                for r in range(nodes * per_node)
            ],
        }
    )  # fmt: skip
    return state


def test_a_distributed_job_shows_its_workers_and_every_nodes_gpus() -> None:
    state = distributed_state(2, 3)
    html = snapshot_html(state, "live", now=NOW)
    assert "6 of 6 ranks on 2 nodes · 1 silent · 1 straggler" in html
    assert "silent: rank 3 on &lt;script&gt;" in html and "straggling: rank 2 on n0" in html
    rects = re.findall(r'<rect x="(\d+)" y="(\d+)" width="9" height="9" fill="([^"]+)">', html)
    assert len(rects) == 6
    assert [fill for _x, _y, fill in rects[:3]] == ["#e5e7eb", "#7db494", "none"]
    assert "<title>n0 GPU 1 (H100): 50 %</title>" in html
    assert "<script>" not in html
    text = snapshot_text(state, "live", now=NOW)
    assert "workers: 6 of 6 ranks on 2 nodes · 1 silent · 1 straggler (silent: rank 3" in text


def test_64_nodes_of_8_gpus_fit_a_small_snapshot() -> None:
    html = snapshot_html(distributed_state(64, 8), "live", now=NOW)
    assert len(re.findall(r"<rect ", html)) == 512
    svg = re.search(r'<svg class="jobwatch-snapshot-heat"[^>]*width="(\d+)" height="(\d+)"', html)
    assert svg is not None and int(svg.group(1)) <= 900 and int(svg.group(2)) <= 120
    assert len(html.encode()) < 80_000


def test_the_budget_shows_with_the_figure_that_is_over_in_its_colour() -> None:
    state = state_of(budget=0.2, status="running", completedAt=None)
    html = snapshot_html(state, "live", now=NOW)
    assert 'cost <b style="color:#b91c1c">0.250 QUBIC</b>' in html  # spent past 0.20
    assert 'data-over="spent"' in html and "budget 0.200 QUBIC: over budget" in html
    text = snapshot_text(state, "live", now=NOW)
    assert "of est. 0.250 QUBIC · budget 0.200 QUBIC: over budget" in text
    assert "budget" not in snapshot_text(state_of(), "ended", now=NOW)
