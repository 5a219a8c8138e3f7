"""The Reporter's place in a distributed job, read from real launchers' variables.

Each case starts a child Python process with the variables that SLURM's
``srun``, Open MPI's ``mpirun`` or MPICH's Hydra (PMI) set for one rank (as
their manuals list them, see ``jobwatch/report/launcher.py``), builds
``Reporter(job_id, url=...)`` there with no rank argument, and reads back the
placement it found and what the server stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobwatch.report import launcher
from jobwatch.server import EmbeddedServer
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]

LAUNCHER_VARS = {name for row in launcher._LAUNCHERS for name in row[1:] if name is not None} | {
    "SLURM_NTASKS_PER_NODE",
    "CUDA_VISIBLE_DEVICES",
}

CHILD = textwrap.dedent(
    """
    import json, sys
    from jobwatch import Reporter

    job_id, url, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        report = Reporter(job_id, url=url, gpu=False, **kwargs)
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(0)
    place = report.placement
    report.update(10.0 + (place.rank or 0), "step")
    report.log(f"hello from {report.worker_id}")
    assert report.flush(20)
    print(json.dumps({
        "rank": place.rank, "worldSize": place.world_size, "localRank": place.local_rank,
        "localWorldSize": place.local_world_size, "nodeRank": place.node_rank,
        "launcher": place.launcher, "workerId": report.worker_id,
    }))
    report.close(timeout=20)
    """
)


@pytest.fixture
def live() -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(config={"DATABASE": ":memory:", "STALL_CHECK_INTERVAL": 0})
    yield server
    server.stop()


def run_child(
    server: EmbeddedServer, job_id: str, env: dict[str, str], **kwargs: Any
) -> dict[str, Any]:
    """Run one child with ``env`` over a clean environment; its printed JSON."""
    clean = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    clean["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, job_id, server.url, json.dumps(kwargs)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


SLURM_RANKS = [  # srun -N 2 --ntasks-per-node 2: (SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID)
    (0, 0, 0),
    (1, 1, 0),
    (2, 0, 1),
    (3, 1, 1),
]


def test_slurm_ranks_report_to_one_job(live: EmbeddedServer) -> None:
    api = Api(live.url)
    for rank, local, node in SLURM_RANKS:
        env = {
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(local),
            "SLURM_NODEID": str(node),
            "SLURM_NTASKS": "4",
            "SLURM_NTASKS_PER_NODE": "2(x2)",
        }
        found = run_child(live, "slurm-job", env, node=f"cn{node}")
        assert found == {
            "rank": rank,
            "worldSize": 4,
            "localRank": local,
            "localWorldSize": 2,
            "nodeRank": node,
            "launcher": "slurm",
            "workerId": f"cn{node}/{rank}",
        }
    job = api.get("/api/jobs/slurm-job").json()["job"]
    assert (job["worldSize"], job["workers"], job["nodes"]) == (4, 4, 2)
    assert job["progress"] == 10.0  # rank 0's
    workers = api.get("/api/jobs/slurm-job/workers").json()["workers"]
    assert [(w["rank"], w["node"], w["localRank"], w["progress"]) for w in workers] == [
        (0, "cn0", 0, 10.0),
        (1, "cn0", 1, 11.0),
        (2, "cn1", 0, 12.0),
        (3, "cn1", 1, 13.0),
    ]
    logs = api.get("/api/jobs/slurm-job/logs?node=cn1").json()["logs"]
    assert sorted((line["rank"], line["message"]) for line in logs) == [
        (2, "hello from cn1/2"),
        (3, "hello from cn1/3"),
    ]


def test_open_mpi_variables(live: EmbeddedServer) -> None:
    env = {
        "OMPI_COMM_WORLD_RANK": "5",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        "OMPI_COMM_WORLD_NODE_RANK": "1",
    }
    found = run_child(live, "ompi-job", env, node="mpi-b")
    assert found == {
        "rank": 5,
        "worldSize": 8,
        "localRank": 1,
        "localWorldSize": 4,
        "nodeRank": 1,
        "launcher": "openmpi",
        "workerId": "mpi-b/5",
    }
    workers = Api(live.url).get("/api/jobs/ompi-job/workers").json()
    assert workers["worldSize"] == 8
    assert [(w["rank"], w["localRank"], w["node"]) for w in workers["workers"]] == [(5, 1, "mpi-b")]


def test_pmi_variables(live: EmbeddedServer) -> None:
    env = {"PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "1"}
    found = run_child(live, "pmi-job", env, node="hydra-c")
    assert (found["launcher"], found["rank"], found["worldSize"], found["localRank"]) == (
        "pmi",
        2,
        3,
        0,
    )
    assert (found["localWorldSize"], found["nodeRank"]) == (1, None)


def test_torchrun_variables_win_over_slurms(live: EmbeddedServer) -> None:
    """torchrun inside an srun allocation: torchrun's own ranks are the processes'."""
    env = {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1",
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "2",
    }
    found = run_child(live, "nested-job", env, node="n1")
    assert (found["launcher"], found["rank"], found["nodeRank"]) == ("torchrun", 3, 1)


def test_explicit_arguments_win(live: EmbeddedServer) -> None:
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1"}
    found = run_child(live, "explicit-job", env, rank=0, world_size=2, local_rank=0, node="x")
    assert (found["rank"], found["worldSize"], found["localRank"], found["workerId"]) == (
        0,
        2,
        0,
        "x/0",
    )
    own_id = run_child(live, "explicit-job", env, worker_id="mine", node="x")
    assert (own_id["workerId"], own_id["rank"]) == ("mine", 1)


def test_a_single_process_is_unchanged(live: EmbeddedServer) -> None:
    found = run_child(live, "single-job", {})
    assert found["rank"] is None and found["launcher"] is None
    assert "/" not in found["workerId"]  # the hostname, as before launchers were read
    job = Api(live.url).get("/api/jobs/single-job").json()["job"]
    assert (job["worldSize"], job["workers"], job["workerId"]) == (None, 1, found["workerId"])
    one = run_child(live, "one-of-one", {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    assert one["rank"] is None  # a world of one process is a single worker


@pytest.mark.parametrize(
    "env",
    [
        {"RANK": "two", "WORLD_SIZE": "4"},
        {"RANK": "4", "WORLD_SIZE": "4"},
        {"RANK": "-1", "WORLD_SIZE": "4"},
        {"RANK": "1"},
        {"SLURM_PROCID": "1", "SLURM_NTASKS": ""},
        {"OMPI_COMM_WORLD_RANK": "1.5", "OMPI_COMM_WORLD_SIZE": "2"},
    ],
)
def test_bad_launcher_values_are_ignored(live: EmbeddedServer, env: dict[str, str]) -> None:
    found = run_child(live, "bad-env-job", env)
    assert (found["rank"], found["worldSize"], found["launcher"]) == (None, None, None)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"rank": 2, "world_size": 2}, "below world_size"),
        ({"rank": -1, "world_size": 2}, "rank must be an int >= 0"),
        ({"rank": 1}, "together"),
        ({"world_size": 0, "rank": 0}, "world_size must be at least 1"),
        ({"rank": 0, "world_size": 2, "node_price_per_hour": -1}, "node_price_per_hour"),
        ({"rank": 0, "world_size": 2, "node": ""}, "node"),
    ],
)
def test_bad_arguments_are_refused(
    live: EmbeddedServer, kwargs: dict[str, Any], words: str
) -> None:
    found = run_child(live, "bad-arg-job", {}, **kwargs)
    assert words in found["error"]
    assert Api(live.url).get("/api/jobs/bad-arg-job").status_code == 404  # nothing sent
