"""The spool: a worker killed mid-run (after an outage) loses nothing that reached
its spool, and ``jobwatch sync`` or the next reporter of the job sends exactly
that, once; a server that never answers never holds up ``complete()``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobwatch.cli.commands import main as jobwatch_main
from jobwatch.client.rest import Client
from jobwatch.contract.basics import parse_ts
from jobwatch.report import spool as spool_mod
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import free_port, wait_for
from tests.paths import REPO

STEPS = 300

WORKER = """
import sys, time
from jobwatch.report.reporter import Reporter
job_id, url = sys.argv[1], sys.argv[2]
calls = [0]
def gpu():
    calls[0] += 1
    return {"gpuUtilization": float(calls[0] % 100), "gpuMemoryUsed": 1.0, "gpuMemoryTotal": 8.0}
r = Reporter(job_id, url=url, gpu=gpu, interval=0.05, worker_id="w")
for i in range(20):
    r.log(f"line {i}")
    r.log_metrics({"loss": float(i), "acc": 0.5}, step=i)
    r.update(i / 10)
print("flushed", r.flush(timeout=30), flush=True)
sys.stdin.readline()  # the server is away now
for i in range(20, STEPS):
    r.log(f"line {i}")
    r.log_metrics({"loss": float(i), "acc": 0.5}, step=i)
    r.update(i / 10)
    time.sleep(0.002)
print("recorded", flush=True)
time.sleep(600)  # killed here
"""


def _spooled(root: Path, job_id: str) -> bytes:
    return b"".join(p.read_bytes() for p in root.glob(f"{job_id}/*/spool.jsonl"))


def _delivered(client: Client, job_id: str) -> dict[str, Any]:
    logs: list[str] = []
    while True:
        page = client.logs(job_id, limit=1000, offset=len(logs))
        logs += [line["message"] for line in page["logs"]]
        if len(logs) >= page["total"]:
            break
    scalars = client.scalars(job_id, max_points=10_000)
    samples = client.metrics(job_id, time_range=86_400, max_points=10_000)
    return {
        "lines": [m for m in logs if not m.startswith("jobwatch:")],
        "steps": [p["step"] for p in scalars.get("loss", [])],
        "acc": len(scalars.get("acc", [])),
        "samples": len(samples),
    }


@pytest.mark.parametrize("sender", ["jobwatch sync", "next reporter"])
def test_killed_worker_loses_nothing_its_spool_held(tmp_path: Path, sender: str) -> None:
    root = Path(os.environ["JOBWATCH_SPOOL_DIR"])
    port = free_port()
    config = {"DATABASE": str(tmp_path / "db.sqlite")}
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    url = f"http://127.0.0.1:{port}"
    srv = EmbeddedServer(port=port, config=config)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER.replace("STEPS", str(STEPS)), job_id, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "flushed True"
        srv.stop()  # the outage
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "recorded"
        last = f'"line {STEPS - 1}"'.encode()
        wait_for(lambda: last in _spooled(root, job_id), 30)
        child.send_signal(signal.SIGKILL)  # no atexit, no flush: only the spool is left
        child.wait(10)
        spools = list(root.glob(f"{job_id}/*"))
        assert len(spools) == 1
        pending = spool_mod.read(spools[0])
        waiting = {"samples": sum("metrics" in body for _, body in pending.requests)}
        assert waiting["samples"] > 0  # machine samples were kept through the outage
        srv = EmbeddedServer(port=port, config=config)
        with Client(url) as client:
            before = _delivered(client, job_id)  # what arrived before the outage
        if sender == "jobwatch sync":
            assert jobwatch_main(["sync", str(root)]) == 0
            assert jobwatch_main(["sync", str(root)]) == 0  # a second run sends nothing
        else:
            reporter = Reporter(job_id, url=url, gpu=False, interval=0.05, worker_id="w")
            assert reporter.close(timeout=30) is True
        assert not list(root.glob(f"{job_id}/*"))  # the spool is gone once delivered
        with Client(url) as client:
            after = _delivered(client, job_id)
    finally:
        child.kill()
        child.wait(10)
        srv.stop()
    assert after["lines"] == [f"line {i}" for i in range(STEPS)]  # each once, in order
    assert after["steps"] == list(range(STEPS))
    assert after["acc"] == STEPS
    assert after["samples"] == before["samples"] + waiting["samples"]


def test_complete_with_a_server_that_never_answers_returns_and_says_where(
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = Path(os.environ["JOBWATCH_SPOOL_DIR"])
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        job_id = f"job-{uuid.uuid4().hex[:10]}"
        reporter = Reporter(job_id, url=url, gpu=False, timeout=30.0, worker_id="w")
        reporter.update(50)
        reporter.log("kept on disk")
        start = time.monotonic()
        assert reporter.complete({"ok": 1}, timeout=1.0) is False
        assert time.monotonic() - start < 5  # its timeout, not the HTTP timeout of 30 s
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "jobwatch sync" in text and str(root) in text
    spools = list(root.glob(f"{job_id}/*"))
    assert len(spools) == 1
    pending = spool_mod.read(spools[0])
    assert pending.completion is not None and pending.completion["status"] == "completed"
    assert any(
        line["message"] == "kept on disk" for _, b in pending.requests for line in b["logLines"]
    )
    with EmbeddedServer(config={"DATABASE": ":memory:"}) as srv, Client(srv.url) as client:
        assert jobwatch_main(["sync", str(root), "--url", srv.url]) == 0
        job = client.get_job(job_id)
        assert (job["status"], job["result"]) == ("completed", {"ok": 1})
        assert [line["message"] for line in client.logs(job_id)["logs"]] == ["kept on disk"]


@pytest.mark.parametrize(
    ("options", "label"),
    [
        ({"gpu": False}, "system samples"),
        ({"gpu": lambda: {"gpuUtilization": 50.0}, "system": False}, "GPU samples"),
        ({"gpu": lambda: {"gpuUtilization": 50.0}}, "GPU and system samples"),
    ],
)
def test_the_kept_warning_names_the_samples_it_kept(
    options: dict[str, Any], label: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning at close counts the machine samples by what they are: a reporter
    without GPU sampling keeps system samples, not "GPU samples"."""
    reporter = Reporter(
        f"kept-{uuid.uuid4().hex[:6]}",
        url=f"http://127.0.0.1:{free_port()}",
        interval=0.05,
        **options,
    )
    for i in range(5):
        reporter.update(i * 10.0)
        time.sleep(0.06)
    with caplog.at_level("WARNING", logger="jobwatch"):
        reporter.close(timeout=0.5)
    kept = [r.getMessage() for r in caplog.records if "were not delivered" in r.getMessage()]
    assert kept, caplog.text
    assert re.search(rf"\d+ {label}\)", kept[0]), kept[0]


def test_sync_refuses_a_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spool folder someone named that is not there is a typo, not "nothing to send"."""
    missing = tmp_path / "no" / "spool"
    assert jobwatch_main(["sync", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"jobwatch sync: the folder {missing} does not exist\n"
    assert not (tmp_path / "no").exists()
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert jobwatch_main(["sync", str(not_a_folder)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_job_synced_later_keeps_the_duration_and_cost_it_ran(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reported while no server listened, sent by ``jobwatch sync`` later: the
    server dates its start and end by when they happened (``sentAt``), so its
    duration and cost are the run's, not the sync's few milliseconds (before:
    0.127 s for a 10 s run) nor the time until the sync."""
    root = Path(os.environ["JOBWATCH_SPOOL_DIR"])
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    reporter = Reporter(
        job_id, url=f"http://127.0.0.1:{free_port()}", gpu=False, system=False,
        price_per_hour=3600.0, interval=0.1, timeout=1.0, worker_id="w", config={"lr": 0.1},
    )  # fmt: skip
    reporter.update(10)
    time.sleep(2.0)  # the run
    reporter.update(90)
    assert reporter.complete({"ok": 1}, timeout=1.0) is False
    time.sleep(1.5)  # the spool waits for its sync
    with EmbeddedServer(config={"DATABASE": ":memory:"}) as srv, Client(srv.url) as client:
        assert jobwatch_main(["sync", str(root), "--url", srv.url]) == 0
        job = client.get_job(job_id)
        ran = time_of(job["completedAt"]) - time_of(job["startedAt"])
        assert 1.9 <= ran <= 3.0  # the run's 2 s and the reporter's own steps
        costs = client.request("GET", f"/api/jobs/{job_id}/monitor")
        assert costs["costSoFar"] == pytest.approx(ran, abs=0.002)  # 1 per second
        assert job["config"] == {"lr": 0.1}  # kept in the spool's header (before: lost)


def time_of(stamp: str) -> float:
    parsed = parse_ts(stamp)
    assert parsed is not None
    return parsed


def test_a_job_whose_server_came_late_starts_when_it_started() -> None:
    """The server was away for the run's first 2 s: the first update, sent when it
    came, carries its ``sentAt`` and the job starts when it did (before: when the
    server came)."""
    port = free_port()
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    reporter = Reporter(
        job_id, url=f"http://127.0.0.1:{port}", gpu=False, system=False,
        price_per_hour=3600.0, interval=0.1, timeout=1.0, worker_id="w",
    )  # fmt: skip
    started = time.time()
    reporter.update(10)
    time.sleep(2.0)
    with (
        EmbeddedServer(port=port, config={"DATABASE": ":memory:"}) as srv,
        Client(srv.url) as client,
    ):
        assert reporter.flush(timeout=30)
        job = client.get_job(job_id)
        assert time_of(job["startedAt"]) == pytest.approx(started, abs=0.5)
        reporter.complete(timeout=10)


@pytest.mark.parametrize(
    ("header", "lines"),
    [
        ({"jobId": "damaged", "url": "http://127.0.0.1:1"}, b"not json\n"),
        (
            {"jobId": "damaged", "url": "http://127.0.0.1:1"},
            b'{"u":"s-1","b":{"workerId":"w","progress":5}}\n\x00\x00garbage\n',
        ),
        ({"url": "http://127.0.0.1:1"}, b'{"u":"s-1","b":{"workerId":"w","progress":5}}\n'),
    ],
    ids=["a line that is not JSON", "garbage after a record", "no job id"],
)
def test_sync_keeps_a_damaged_spool_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: dict[str, Any], lines: bytes
) -> None:
    """A complete line (it ends in a newline) that is not a record means the file
    was damaged, not torn by a crash: the spool is kept for a person to look at
    (before: "0 updates sent" and the folder removed with what it held)."""
    spool = tmp_path / "damaged" / "s"
    spool.mkdir(parents=True)
    (spool / "header.json").write_text(json.dumps(header))
    (spool / "spool.jsonl").write_bytes(lines)
    with EmbeddedServer(config={"DATABASE": ":memory:"}) as srv:
        assert jobwatch_main(["sync", str(tmp_path), "--url", srv.url]) == 1
    err = capsys.readouterr().err
    assert f"cannot read {spool}" in err and "kept" in err, err
    assert (spool / "spool.jsonl").read_bytes() == lines


def test_a_torn_last_line_is_still_ignored(tmp_path: Path) -> None:
    spool = tmp_path / "s"
    spool.mkdir()
    (spool / "header.json").write_text(json.dumps({"jobId": "j", "url": "http://h"}))
    (spool / "spool.jsonl").write_bytes(
        b'{"u":"s-1","b":{"workerId":"w","progress":5}}\n{"u":"s-2","b":{"work'
    )
    assert [uid for uid, _ in spool_mod.read(spool).requests] == ["s-1"]
