"""A distributed job's page in headless Chromium: the workers table and every node's GPUs.

64 nodes of 8 GPUs (512 ranks) report to one job through the real HTTP API;
each node's local rank 0 sends its node's GPUs. The page shows one row per
rank, one heat cell per GPU grouped by node, a silent rank once the watchdog
marks it, and each log line's node and rank. A picture of the page goes to
``artifacts/job-workers.png`` (docs/images/ holds a copy).
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
IMAGES = Path(__file__).resolve().parents[2] / "artifacts"  # docs/images/ copies from here


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
    # the log view starts on rank 0's lines; a rank typed, then a node picked, shows theirs
    where = page.locator(".jobwatch-log-line .jobwatch-log-where")
    expect(where).to_have_count(1)
    expect(where.first).to_have_text("node-00/0")
    rank = page.locator(".jobwatch-log-rank")
    expect(rank).to_have_value("0")
    rank.fill("9")
    rank.press("Enter")
    expect(where).to_have_text(["node-01/9"])
    expect(page.locator(".jobwatch-log-count")).to_have_text("showing 1 of 1 of rank 9")
    rank.fill("512")  # not a rank of this job: said, and nothing changes
    rank.press("Enter")
    expect(rank).to_have_attribute("aria-invalid", "true")
    expect(where).to_have_text(["node-01/9"])
    rank.fill("")
    rank.press("Enter")
    expect(where).to_have_text(["node-00/0", "node-01/9"])  # all ranks
    page.locator(".jobwatch-log-node").select_option("node-00")
    expect(where).to_have_text(["node-00/0"])
    expect(page.locator(".jobwatch-log-count")).to_have_text("showing 1 of 1 of node node-00")
    page.locator(".jobwatch-log-node").select_option("")
    rank.fill("0")
    rank.press("Enter")
    expect(where).to_have_text(["node-00/0"])
    series = page.locator(".jobwatch-chart-utilization").get_attribute("data-series")
    assert series == "all GPUs util|all GPUs temp"  # 512 GPUs: one line, the strip shows each
    assert recorded.errors() == []
    IMAGES.mkdir(exist_ok=True)
    page.locator(".jobwatch-workers-details").evaluate("d => d.open = false")
    page.screenshot(path=str(IMAGES / "job-workers.png"), full_page=True)


def test_the_page_follows_one_rank_live_and_shows_job_strings_as_text(
    site: EmbeddedServer, clock: FakeClock, open_page: Any
) -> None:
    """Node names are the job's own text: they show as text, never as markup."""
    api = Api(site.url)
    evil = '<img src=x onerror="window.__pwned=1">'
    assert api.put("/api/jobs/evil", json={"worldSize": 2}).status_code == 201
    for rank, node in ((0, evil), (1, "n1")):
        body = {
            "workerId": f"w{rank}",
            "progress": 5.0,
            "currentOperation": evil,
            "rank": rank,
            "worldSize": 2,
            "node": node,
            "metrics": {
                "gpus": [{"index": 0, "uuid": f"GPU-{rank}", "name": evil, "gpuUtilization": 50}]
            },
            "logLines": [{"level": "info", "message": f"{evil} from {rank}"}],
        }
        assert api.post("/api/jobs/evil/progress", json=body).status_code == 200
    recorded = open_page(f"{site.url}/jobs/evil")
    page = recorded.page
    expect(page.locator(".jobwatch-worker")).to_have_count(2)
    expect(page.locator(".jobwatch-worker").first.locator("td").first).to_have_text(evil)
    expect(page.locator(".jobwatch-heat-label").first).to_have_text(evil)
    expect(page.locator(".jobwatch-log-node option")).to_have_text(["all nodes", evil, "n1"])
    where = page.locator(".jobwatch-log-line .jobwatch-log-where")
    expect(where).to_have_text([f"{evil}/0"])
    # live: rank 0's next line comes, rank 1's does not
    for rank, node in ((1, "n1"), (0, evil)):
        body = {
            "workerId": f"w{rank}",
            "progress": 6.0,
            "rank": rank,
            "worldSize": 2,
            "node": node,
            "logLines": [{"level": "warning", "message": f"live {rank}"}],
        }
        assert api.post("/api/jobs/evil/progress", json=body).status_code == 200
    messages = page.locator(".jobwatch-log-line .jobwatch-log-message")
    expect(messages.last).to_have_text("live 0")
    assert "live 1" not in " ".join(messages.all_inner_texts())
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator(".jobwatch-workers img").count() == 0
    assert recorded.errors() == []
