"""A distributed job's page in headless Chromium: the workers table and every node's GPUs.

64 nodes of 8 GPUs (512 ranks) report to one job through the real HTTP API;
each node's local rank 0 sends its node's GPUs. The page shows one row per
rank, one heat cell per GPU grouped by node, a silent rank once the watchdog
marks it, and each log line's node and rank. A picture of the page goes to
``docs/images/job-workers.png``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from jobwatch.server import EmbeddedServer
from tests.browser.pages import open_page
from tests.conftest import Api, FakeClock

pytestmark = pytest.mark.browser
__all__ = ["open_page"]  # the fixture, used by name

NODES, PER_NODE = 64, 8
WORLD = NODES * PER_NODE
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())  # near the browser's clock, so "last seen" reads sensibly


@pytest.fixture
def site(clock: FakeClock) -> Iterator[EmbeddedServer]:
    config = {"CLOCK": clock, "STALL_CHECK_INTERVAL": 0, "STALL_AFTER": 60}
    with EmbeddedServer(config=config) as server:
        yield server


def node_gpus(node: int) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "uuid": f"GPU-{node:02d}-{i}",
            "name": "H100",
            "gpuUtilization": (node * 7 + i * 13) % 101,
            "gpuMemoryUsed": 40_000,
            "gpuMemoryTotal": 81_559,
            "gpuTemperature": 60,
            "powerUsage": 500,
        }
        for i in range(PER_NODE)
    ]


def post_rank(api: Api, rank: int, progress: float, **extra: Any) -> None:
    node, local = divmod(rank, PER_NODE)
    body = {
        "workerId": f"node-{node:02d}/{rank}",
        "progress": progress,
        "currentOperation": f"rank {rank} step",
        "rank": rank,
        "worldSize": WORLD,
        "localRank": local,
        "node": f"node-{node:02d}",
        **extra,
    }
    answer = api.post("/api/jobs/big-ddp/progress", json=body)
    assert answer.status_code == 200, answer.text


def test_the_page_shows_512_ranks_and_64_nodes_of_gpus(
    site: EmbeddedServer, clock: FakeClock, open_page: Any
) -> None:
    api = Api(site.url)
    assert api.put("/api/jobs/big-ddp", json={"worldSize": WORLD, "name": "llm"}).status_code == 201
    for step in (10.0, 12.0):
        for rank in range(WORLD):
            node, local = divmod(rank, PER_NODE)
            extra: dict[str, Any] = {}
            if local == 0:
                extra["metrics"] = {"gpus": node_gpus(node)}
            if step == 10.0 and rank in (0, 9):
                extra["logLines"] = [{"level": "info", "message": f"hello from rank {rank}"}]
            slow = 0.5 if rank == 77 else 1.0
            post_rank(api, rank, step * slow if rank != 300 else 10.0, **extra)
        clock.advance(30)
    # everyone but rank 300 reports once more; rank 300 is then silent
    for rank in range(WORLD):
        if rank != 300:
            post_rank(api, rank, 14.0 if rank != 77 else 7.0)
    clock.advance(40)
    for rank in range(WORLD):
        if rank != 300:
            post_rank(api, rank, 16.0 if rank != 77 else 7.5)
    site.services.watchdog.check()

    recorded = open_page(f"{site.url}/jobs/big-ddp")
    page = recorded.page
    expect(page.locator(".jobwatch-worker")).to_have_count(WORLD, timeout=30_000)
    expect(page.locator(".jobwatch-heat-node")).to_have_count(NODES)
    expect(page.locator(".jobwatch-heat-cell")).to_have_count(NODES * PER_NODE)
    expect(page.locator(".jobwatch-workers-summary")).to_contain_text(
        f"{WORLD} of {WORLD} ranks on {NODES} nodes · 1 silent"
    )
    silent = page.locator('.jobwatch-worker[data-status="silent"]')
    expect(silent).to_have_count(1)
    expect(silent.locator("td").nth(1)).to_have_text("300")
    expect(page.locator('.jobwatch-worker[data-straggler="true"]')).to_have_count(1)
    first_cell = page.locator(".jobwatch-heat-cell").first
    assert first_cell.get_attribute("title") == "node-00 GPU 0 (H100): 0 %"
    where = page.locator(".jobwatch-log-line .jobwatch-log-where")
    expect(where).to_have_count(2)
    expect(where.first).to_have_text("node-00/0")
    expect(where.nth(1)).to_have_text("node-01/9")
    series = page.locator(".jobwatch-chart-utilization").get_attribute("data-series")
    assert series == "all GPUs util|all GPUs temp"  # 512 GPUs: one line, the strip shows each
    assert recorded.errors() == []
    IMAGES.mkdir(exist_ok=True)
    page.locator(".jobwatch-workers-details").evaluate("d => d.open = false")
    page.screenshot(path=str(IMAGES / "job-workers.png"), full_page=True)
