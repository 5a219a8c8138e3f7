"""JobMonitor of a distributed job, without a kernel or a browser: the workers panel
(every node's GPUs, the ranks table) and the charts of many GPUs."""

from __future__ import annotations

from typing import Any

from jobwatch import Client
from jobwatch.notebook.charts import MAX_GPU_LINES
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
        assert view.workers.heat == [
            ["node-0", [["GPU 0 (H100)", 30.0], ["GPU 1 (H100)", 31.0]]],
            ["node-1", [["GPU 0 (H100)", 30.0], ["GPU 1 (H100)", 31.0]]],
        ]
        # 4 GPUs: a line each in the charts, under the limit
        wait_for(lambda: view.charts is not None and len(view.charts.utilization.labels) == 4)


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
        assert sum(len(gpus) for _node, gpus in view.workers.heat) == nodes * 8
