"""A real hang: two torchrun ranks (gloo, CPU) where rank 1 never enters an
all_reduce, so rank 0 blocks in it while its reporter's thread keeps sending
samples. The watchdog marks the job hung (source ``hung``), not stalled.

Thresholds scaled down through the server's settings: hung after 2 s without a
call, stalled after 60 s without a report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.frameworks]

RANKS = textwrap.dedent(
    """
    import sys, time
    import torch
    import torch.distributed as dist
    from jobwatch import Reporter

    url, job_id = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    # no GPU here: the samples stand for NVML's, sent by the reporter's thread
    report = Reporter(job_id, url=url, interval=0.1, price_per_hour=36.0,
                      gpu=lambda: {"gpuUtilization": 100.0, "powerUsage": 90.0})
    for step in range(5):
        value = torch.ones(1)
        dist.all_reduce(value)
        report.update(10.0 * (step + 1), f"step {step + 1}")
    report.flush(timeout=10)
    print(f"rank {rank} trained", flush=True)
    if rank == 0:
        dist.all_reduce(torch.ones(1))  # waits forever: rank 1 never joins
    else:
        time.sleep(3600)  # stuck elsewhere (a deadlocked data loader)
    """
)


def test_a_rank_blocked_in_all_reduce_makes_the_job_hung_not_stalled(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip(f"torchrun not installed beside {sys.executable}")
    script = tmp_path / "ranks.py"
    script.write_text(RANKS)
    config = {
        "DATABASE": ":memory:",
        "HANG_AFTER": 2.0,
        "STALL_AFTER": 60.0,
        "STALL_CHECK_INTERVAL": 0.2,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with EmbeddedServer(config=config) as server:
        command = [str(torchrun), "--standalone", "--nproc-per-node", "2", str(script)]
        ranks = subprocess.Popen(
            [*command, server.url, "ddp-hang"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopped whole below
        )
        try:
            deadline = time.monotonic() + 120
            job: dict[str, object] = {}
            while time.monotonic() < deadline and ranks.poll() is None:
                answer = requests.get(f"{server.url}/api/jobs/ddp-hang", timeout=5)
                job = answer.json().get("job", {}) if answer.ok else {}
                if job.get("hung"):
                    break
                time.sleep(0.2)
            assert job.get("hung") is True, ranks.stdout.read() if ranks.poll() is not None else job
            assert job["stalled"] is False and job["status"] == "running"
            assert job["progress"] == 50
            alerts = requests.get(f"{server.url}/api/jobs/ddp-hang/alerts", timeout=5).json()
            sources = [a["source"] for a in alerts["alerts"]]
            assert "hung" in sources and "stalled" not in sources
            (hung,) = [a for a in alerts["alerts"] if a["source"] == "hung"]
            assert hung["text"].startswith("no progress for ")
            assert "QUBIC spent since" in hung["text"]
            # the ranks still report: a second later the job is still hung, not stalled
            time.sleep(1.0)
            job = requests.get(f"{server.url}/api/jobs/ddp-hang", timeout=5).json()["job"]
            assert job["hung"] is True and job["stalled"] is False
        finally:
            os.killpg(ranks.pid, signal.SIGKILL)
            ranks.wait(30)
