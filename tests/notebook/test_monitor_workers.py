"""JobMonitor of a distributed job, without a kernel or a browser: the workers panel
(every node's GPUs, the ranks table) and the charts of many GPUs."""

from __future__ import annotations

from typing import Any

from jobwatch import Client
from jobwatch.notebook.charts.gpu import MAX_GPU_LINES
from jobwatch.notebook.monitor import JobMonitor
from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock, wait_for


def node_gpus(node: str, count: int, base: float = 30.0) -> dict[str, Any]:
    return {
        "gpus": [
            {"index": i, "uuid": f"GPU-{node}-{i}", "name": "H100", "gpuUtilization": base + i}
            for i in range(count)
        ]
    }


def report(
    client: Client, rank: int, progress: float, *, world: int = 4, per_node: int = 2, **extra: Any
) -> None:
    node = f"node-{rank // per_node}"
    client.report_progress(
        "ddp",
        f"{node}/{rank}",
        progress,
        f"rank {rank} step",
        rank=rank,
        world_size=world,
        node=node,
        local_rank=rank % per_node,
        **extra,
    )


def test_the_monitor_shows_every_rank_and_every_nodes_gpus(
    server: EmbeddedServer, client: Client, clock: FakeClock
) -> None:
    client.create_job(job_id="ddp")
    for rank in range(4):
        metrics = node_gpus(f"node-{rank // 2}", 2) if rank % 2 == 0 else None
        report(client, rank, 10.0 + rank, metrics=metrics)
    with JobMonitor("ddp", server.url, widgets=True) as monitor:
        view = monitor.view
        wait_for(lambda: view.workers is not None and len(view.workers.rows) == 4)
        assert view.workers in view.widget.children
        assert view.workers.world_size == 4
        assert [row[:3] + row[4:5] for row in view.workers.rows] == [
            ["node-0", "0", "running", "10.0%"],
            ["node-0", "1", "running", "11.0%"],
            ["node-1", "2", "running", "12.0%"],
            ["node-1", "3", "running", "13.0%"],
        ]
        assert view.workers.rows[3][7] == "rank 3 step"  # the row's tooltip
        wait_for(lambda: len(view.workers.heat) == 2)
        labels = ["GPU 0 (H100)", "GPU 1 (H100)"]
        assert view.workers.heat == [
            ["node-0", labels, [30.0, 31.0]],
            ["node-1", labels, [30.0, 31.0]],
        ]
        # 4 GPUs: a line each in the charts, under the limit
        wait_for(lambda: view.charts is not None and len(view.charts.utilization.labels) == 4)
        assert "(2 GPUs of node node-1)" in view.gpu.value  # the newest sample is one node's


def test_a_silent_rank_shows_at_once_without_waiting_for_the_next_read(
    server: EmbeddedServer, client: Client, clock: FakeClock
) -> None:
    client.create_job(job_id="ddp")
    for rank in range(4):
        report(client, rank, 10.0)
    with JobMonitor("ddp", server.url, widgets=True) as monitor:
        view = monitor.view
        wait_for(lambda: view.workers is not None and len(view.workers.rows) == 4)
        monitor._follower.workers_interval = 3600.0  # only the alert may bring the change
        clock.advance(200)
        for rank in (0, 1, 2):
            report(client, rank, 20.0)
        server.services.watchdog.check()  # rank 3: no update for 200 s while others report
        wait_for(lambda: view.workers.rows[3][2] == "silent", what="rank 3 shown silent")
        assert [row[2] for row in view.workers.rows[:3]] == ["running"] * 3


def test_a_job_of_one_worker_keeps_the_monitor_as_it_was(
    server: EmbeddedServer, client: Client
) -> None:
    client.create_job(job_id="one")
    client.report_progress(
        "one", "w", 10, metrics=node_gpus("w", 2), logs=[{"level": "info", "message": "a"}]
    )
    with JobMonitor("one", server.url, widgets=True) as monitor:
        wait_for(lambda: monitor.view.charts_shown)
        assert monitor.view.workers is None
        assert not monitor._follower._distributed.is_set()  # /workers is never read


def test_a_job_that_turns_out_distributed_gets_its_panel(
    server: EmbeddedServer, client: Client
) -> None:
    client.create_job(job_id="ddp")  # made without a world size: the ranks bring it
    with JobMonitor("ddp", server.url, widgets=True) as monitor:
        assert monitor.view.workers is None
        report(client, 1, 5.0, logs=[{"level": "info", "message": "rank 1 is up"}])
        wait_for(lambda: monitor.view.workers is not None and monitor.view.workers.rows)
        assert monitor.view.workers.world_size == 4
        assert [row[1] for row in monitor.view.workers.rows] == ["1"]


def test_more_gpus_than_lines_chart_as_one_line(server: EmbeddedServer, client: Client) -> None:
    client.create_job(job_id="ddp")
    nodes = MAX_GPU_LINES // 8 + 1  # 8 GPUs a node: more GPUs than lines
    for node in range(nodes):
        report(
            client,
            node * 8,
            10.0,
            world=nodes * 8,
            per_node=8,
            metrics=node_gpus(f"node-{node}", 8),
        )
    with JobMonitor("ddp", server.url, widgets=True) as monitor:
        view = monitor.view
        wait_for(lambda: view.charts is not None and len(view.charts.utilization.x) == nodes)
        assert list(view.charts.utilization.labels) == ["all GPUs"]
        wait_for(lambda: view.workers is not None and len(view.workers.heat) == nodes)
        assert sum(len(labels) for _node, labels, _values in view.workers.heat) == nodes * 8


def test_the_log_view_shows_one_ranks_or_one_nodes_lines(
    server: EmbeddedServer, client: Client
) -> None:
    client.create_job(job_id="ddp")
    for rank in range(4):  # 240 lines: /monitor brings only the last 100
        logs = [{"level": "info", "message": f"r{rank} line {i}"} for i in range(60)]
        report(client, rank, 10.0, logs=logs)
    with JobMonitor("ddp", server.url, widgets=True) as monitor:
        logs_view = monitor.view.logs
        wait_for(lambda: logs_view.nodes == ["node-0", "node-1"])
        assert logs_view.world_size == 4
        assert logs_view.rank_filter == 0  # a distributed job's view starts on rank 0
        wait_for(lambda: logs_view.lines and logs_view.lines[0]["rank"] == 0)
        # the server sends only those lines, and no progress that repeats rank 0's
        subscription = monitor._follower.subscription
        assert subscription is not None
        assert subscription._request()["logs"] == {"rank": 0}
        assert subscription._request()["progress"] == "changes"
        assert [line["message"] for line in logs_view.lines] == [f"r0 line {i}" for i in range(60)]
        assert logs_view.total == 60 and not logs_view.has_older
        report(client, 0, 20.0, logs=[{"level": "info", "message": "r0 live"}])
        report(client, 1, 20.0, logs=[{"level": "info", "message": "r1 live"}])
        wait_for(lambda: logs_view.lines[-1]["message"] == "r0 live")
        assert logs_view.total == 61
        assert {line["rank"] for line in logs_view.lines} == {0}

        logs_view.rank_filter = None
        logs_view.node_filter = "node-1"  # ranks 2 and 3
        wait_for(lambda: len(logs_view.lines) == 120)
        assert {(line["rank"], line["node"]) for line in logs_view.lines} == {
            (2, "node-1"),
            (3, "node-1"),
        }
        assert logs_view.total == 120

        logs_view.node_filter = None  # all again: every line, counted by the server
        wait_for(lambda: len(logs_view.lines) == 242)
        assert logs_view.total == 242
        assert "logs" not in subscription._request()
        report(client, 3, 30.0, logs=[{"level": "info", "message": "r3 live"}])
        wait_for(lambda: logs_view.lines[-1]["message"] == "r3 live")
        assert logs_view.total == 243


def test_older_lines_of_a_rank_page_back_through_that_ranks_history(
    server: EmbeddedServer, client: Client
) -> None:
    from jobwatch.notebook.monitor import NEWEST, _lines_before
    from jobwatch.view.log_filter import LogFilter

    client.create_job(job_id="ddp")
    for rank in range(2):
        logs = [{"level": "info", "message": f"r{rank} line {i}"} for i in range(30)]
        report(client, rank, 10.0, world=2, logs=logs)
    lines, older = _lines_before(client, "ddp", NEWEST, 10, LogFilter(rank=1))
    assert [line["message"] for line in lines] == [f"r1 line {i}" for i in range(20, 30)]
    assert older
    lines, older = _lines_before(client, "ddp", lines[0]["id"], 100, LogFilter(rank=1))
    assert len(lines) == 20 and not older
