"""A real ``torchrun`` job of 2 nodes x 2 processes reports to one jobwatch job.

Each "node" is its own network namespace with its own hostname (``ip netns``
plus ``unshare --uts``); the namespaces are joined by a veth pair, so the
rendezvous and gloo's all-reduce cross that link, and node A forwards node B's
requests to the server on this side of a second veth pair::

    server 10.200.28.1 --veth-- 10.200.28.2 [node-a] 10.200.29.1 --veth-- 10.200.29.2 [node-b]

The training script (``torchrun_train.py``) holds one ``Reporter(job_id, url=...)``
line with no rank argument. The test checks one job of 4 workers on 2 nodes,
progress from rank 0, each rank's line once with its rank and node, each
node's GPUs sampled by its local rank 0 only; then it kills one rank with
SIGKILL and waits for the ``worker_silent`` alert while the other node's
ranks go on. Needs root (namespaces) and torch (the ``frameworks`` extra).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import Api

pytestmark = [pytest.mark.slow, pytest.mark.frameworks, pytest.mark.timeout(300)]

torch = pytest.importorskip("torch", reason="torch is not installed (the frameworks extra)")

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("torchrun_train.py")
TEST_NET = "10.200.0.0/16"  # blackholed first (TESTING.md): nothing leaves by the default route
SERVER_IP, A_UP, A_LINK, B_LINK = "10.200.28.1", "10.200.28.2", "10.200.29.1", "10.200.29.2"
NS = {"a": f"jwt{os.getpid() % 100000}a", "b": f"jwt{os.getpid() % 100000}b"}
LINKS = {"root": f"jwr{os.getpid() % 100000}", "a_up": "up0", "a_b": "ab0", "b_a": "ba0"}
STALL_AFTER = 3.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def two_nodes() -> Iterator[None]:
    """Two network namespaces joined by veth pairs (see the module's diagram)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces and UTS namespaces need root")
    routes = _ip("route", "show", "type", "blackhole").stdout
    added_blackhole = TEST_NET not in routes
    if added_blackhole:
        _ip("route", "add", "blackhole", TEST_NET)
    try:
        a, b = NS["a"], NS["b"]
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", LINKS["root"], "type", "veth", "peer", "name", LINKS["a_up"], "netns", a)
        _ip("-n", a, "link", "add", LINKS["a_b"], "type", "veth", "peer", "name", LINKS["b_a"])
        _ip("-n", a, "link", "set", LINKS["b_a"], "netns", b)
        _ip("addr", "add", f"{SERVER_IP}/24", "dev", LINKS["root"])
        _ip("link", "set", LINKS["root"], "up")
        _ip("-n", a, "addr", "add", f"{A_UP}/24", "dev", LINKS["a_up"])
        _ip("-n", a, "addr", "add", f"{A_LINK}/24", "dev", LINKS["a_b"])
        _ip("-n", b, "addr", "add", f"{B_LINK}/24", "dev", LINKS["b_a"])
        for ns, links in ((a, ("lo", LINKS["a_up"], LINKS["a_b"])), (b, ("lo", LINKS["b_a"]))):
            for link in links:
                _ip("-n", ns, "link", "set", link, "up")
        # node A forwards between node B and the server (forwarding is per namespace)
        subprocess.run(
            ["ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            check=True,
            timeout=30,
        )
        _ip("-n", b, "route", "add", "10.200.28.0/24", "via", A_LINK)
        _ip("route", "add", "10.200.29.0/24", "via", A_UP)
        yield
    finally:
        _ip("route", "del", "10.200.29.0/24", check=False)
        for ns in NS.values():
            _ip("netns", "del", ns, check=False)  # takes its veth ends, and so their peers
        _ip("link", "del", LINKS["root"], check=False)
        if added_blackhole:
            _ip("route", "del", "blackhole", TEST_NET, check=False)


@pytest.fixture
def server(two_nodes: None) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(
        host=SERVER_IP,
        config={
            "DATABASE": ":memory:",
            "ALLOWED_HOSTS": (SERVER_IP,),
            "STALL_AFTER": STALL_AFTER,
            "STALL_CHECK_INTERVAL": 0.5,
        },
    )
    yield srv
    srv.stop()


def _launch(node: str, node_rank: int, server: EmbeddedServer, run: Path) -> subprocess.Popen[str]:
    """One node's ``torchrun`` in its namespace, under its own hostname."""
    ns, link = (NS["a"], LINKS["a_b"]) if node == "a" else (NS["b"], LINKS["b_a"])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_", "LOCAL_"))},
        "PYTHONPATH": str(ROOT),
        "JOBWATCH_URL": server.url,
        "JOBWATCH_JOB": "ddp-torchrun",
        "JOBWATCH_TEST_RUN": str(run),
        "GLOO_SOCKET_IFNAME": link,  # gloo's peers meet over the veth link
        "OMP_NUM_THREADS": "1",
        "NO_PROXY": "*",
    }
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "2",
        "--node-rank",
        str(node_rank),
        "--master-addr",
        A_LINK,
        "--master-port",
        "29528",
        "--max-restarts",
        "0",
        str(SCRIPT),
    ]
    command = f"hostname node-{node} && exec " + " ".join(launcher)
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", command],
        env=env,
        stdout=(run / f"node-{node}.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group per node, killed whole at the end
    )


def _wait(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_torchrun_two_nodes_one_job(server: EmbeddedServer, tmp_path: Path) -> None:
    api = Api(server.url)
    nodes = [_launch("a", 0, server, tmp_path), _launch("b", 1, server, tmp_path)]
    try:
        _run_and_check(api, nodes, tmp_path)
    except BaseException:
        for name in ("node-a.log", "node-b.log"):
            print(f"--- {name}\n{(tmp_path / name).read_text()[-4000:]}")
        raise
    finally:
        for proc in nodes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        for rank in range(4):  # a worker the launcher left behind (its own session)
            _kill_worker(tmp_path / f"pid-{rank}")


def _kill_worker(pid_file: Path) -> None:
    """SIGKILL the training process named in ``pid_file`` if it still runs that script."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # gone
    if SCRIPT.name.encode() in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _run_and_check(api: Api, nodes: list[subprocess.Popen[str]], run: Path) -> None:
    def trained() -> bool:
        for proc in nodes:
            assert proc.poll() is None, "a launcher ended before training did"
        return all((run / f"trained-{rank}").exists() for rank in range(4))

    _wait("4 ranks to train", trained, 180)

    def all_lines() -> bool:
        return api.get("/api/jobs/ddp-torchrun/logs?limit=1000").json()["total"] >= 4

    _wait("every rank's line", all_lines, 30)
    job = api.get("/api/jobs/ddp-torchrun").json()["job"]
    assert (job["worldSize"], job["workers"], job["nodes"]) == (4, 4, 2)
    assert job["workerId"] == "node-a/0"
    assert job["currentOperation"].startswith("rank 0 ")  # rank 0 speaks for the job
    workers = api.get("/api/jobs/ddp-torchrun/workers").json()["workers"]
    assert [(w["rank"], w["node"], w["localRank"], w["workerId"]) for w in workers] == [
        (0, "node-a", 0, "node-a/0"),
        (1, "node-a", 1, "node-a/1"),
        (2, "node-b", 0, "node-b/2"),
        (3, "node-b", 1, "node-b/3"),
    ]
    assert all(w["currentOperation"].startswith(f"rank {w['rank']} ") for w in workers)

    logs = api.get("/api/jobs/ddp-torchrun/logs?limit=1000").json()["logs"]
    joined = sorted(
        (line["rank"], line["node"], line["message"])
        for line in logs
        if " joined on " in line["message"]
    )
    assert joined == [
        (0, "node-a", "rank 0 joined on node-a"),
        (1, "node-a", "rank 1 joined on node-a"),
        (2, "node-b", "rank 2 joined on node-b"),
        (3, "node-b", "rank 3 joined on node-b"),
    ]
    for rank in range(4):
        own = api.get(f"/api/jobs/ddp-torchrun/logs?rank={rank}").json()
        assert {line["rank"] for line in own["logs"]} == {rank}

    samples = api.get("/api/jobs/ddp-torchrun/metrics?timeRange=600").json()["metrics"]
    gpus = [gpu for sample in samples for gpu in sample.get("gpus") or []]
    assert {(gpu["node"], gpu["name"]) for gpu in gpus} == {
        ("node-a", "sampled-by-rank-0"),
        ("node-b", "sampled-by-rank-2"),
    }  # each node's GPUs sampled once, by its local rank 0
    assert all(len(sample["gpus"]) == 2 for sample in samples if sample.get("gpus"))
    scalars = api.get("/api/jobs/ddp-torchrun/scalars").json()["scalars"]
    assert len(scalars["loss"]) == 20  # rank 0's values only, one per step

    # a rank dies: it falls silent while node-a's ranks go on
    seq = api.get("/api/jobs/ddp-torchrun").json()["job"]["seq"]
    os.kill(int((run / "pid-3").read_text()), signal.SIGKILL)
    before = {w["rank"]: w["progress"] for w in workers}

    def silent_alert() -> bool:
        alerts = api.get("/api/jobs/ddp-torchrun/alerts?limit=1000").json()["alerts"]
        return any(
            a["seq"] > seq
            and a["source"] == "worker_silent"
            and a["title"] == "worker node-b/3 is silent"
            for a in alerts
        )

    _wait("the worker_silent alert of rank 3", silent_alert, 60)
    workers = api.get("/api/jobs/ddp-torchrun/workers").json()["workers"]
    by_rank = {w["rank"]: w for w in workers}
    assert by_rank[3]["status"] == "silent"
    assert by_rank[0]["status"] == by_rank[1]["status"] == "running"
    assert by_rank[0]["progress"] > before[0] and by_rank[1]["progress"] > before[1]
    assert api.get("/api/jobs/ddp-torchrun").json()["job"]["status"] == "running"

    (run / "stop").write_text("")

    def completed() -> bool:
        return bool(api.get("/api/jobs/ddp-torchrun").json()["job"]["status"] == "completed")

    _wait("rank 0 to complete the job", completed, 60)
    # node-a's launcher would now wait in torchrun's exit barrier for node-b's,
    # which failed with its killed rank: the test's teardown ends both.
    assert requests.get(f"{api.base}/api/health", timeout=10).ok
