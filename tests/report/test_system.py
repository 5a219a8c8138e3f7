"""The system sampler (jobwatch/report/system.py) reads this machine, as psutil sees it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobwatch.contract.metrics import SYSTEM_FIELDS
from jobwatch.contract.requests import Metrics
from jobwatch.report import system
from jobwatch.report.system import SystemSampler
from tests.conftest import wait_for

MIB = 1024 * 1024
HELD = 96 * MIB
"""Bytes a child process holds (written, so resident)."""


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    """A child process holding :data:`HELD` bytes resident until it is killed."""
    code = f"import sys, time; b = bytearray({HELD}); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); time.sleep(120)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "1\n"
    yield process
    process.kill()
    process.wait()


def in_thread(sampler: SystemSampler) -> dict[str, float | None]:
    """One sample taken in a new thread, as the reporter's sender thread takes them."""
    got: list[dict[str, float | None]] = []
    thread = threading.Thread(target=lambda: got.append(sampler()))
    thread.start()
    thread.join()
    return got[0]


def test_a_sample_has_every_system_metric_within_the_contract() -> None:
    sampler = SystemSampler()
    first, second = in_thread(sampler), sampler()
    for sample in (first, second):
        assert list(sample) == list(SYSTEM_FIELDS)
        Metrics.model_validate(sample)  # the server would take it
    memory = psutil.virtual_memory()
    assert second["memoryTotal"] == pytest.approx(memory.total / MIB, abs=0.1)
    assert second["memoryUsed"] == pytest.approx(memory.used / MIB, rel=0.2)
    disk = psutil.disk_usage(os.getcwd())
    assert second["diskTotal"] == pytest.approx(disk.total / MIB, abs=0.1)
    me = psutil.Process()  # the tree: under xdist a worker may hold another test's servers
    tree = [me, *me.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in tree if p.is_running()) / MIB
    assert second["processMemory"] == pytest.approx(rss, rel=0.2)
    assert second["cpuUtilization"] is not None and 0 <= second["cpuUtilization"] <= 100
    for rate in ("diskRead", "diskWrite", "networkIn", "networkOut"):
        # from the first reading in the constructor on; None only where the machine has no counter
        assert first[rate] is None or first[rate] >= 0
    assert second["networkIn"] is not None  # every Linux has /proc/net/dev, loopback at least


def test_cpu_is_none_in_a_threads_first_sample() -> None:
    """psutil measures CPU from the calling thread's previous call: a first call covers nothing."""
    sampler = SystemSampler()
    assert in_thread(sampler)["cpuUtilization"] is None
    assert sampler()["cpuUtilization"] is not None  # the constructor's thread has called before


def test_the_process_memory_counts_its_children_and_drops_one_that_ended(
    child: subprocess.Popen[str],
) -> None:
    sampler = SystemSampler()
    own = psutil.Process().memory_info().rss
    with_child = sampler()["processMemory"]
    assert with_child is not None and with_child * MIB >= own + 0.9 * HELD
    child.kill()
    child.wait()
    without = sampler()["processMemory"]
    assert without is not None and without * MIB <= with_child * MIB - 0.9 * HELD


def test_a_child_started_later_counts_from_the_next_listing(
    monkeypatch: pytest.MonkeyPatch, child: subprocess.Popen[str]
) -> None:
    monkeypatch.setattr(system, "TREE_REFRESH", 3600.0)
    clock = [0.0]
    sampler = SystemSampler(clock=lambda: clock[0])
    child_pid = child.pid
    assert child_pid in {p.pid for p in sampler._tree}  # listed at once by the constructor
    late = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        sampler()
        assert late.pid not in {p.pid for p in sampler._tree}
        clock[0] = 3600.0
        sampler()
        assert late.pid in {p.pid for p in sampler._tree}
    finally:
        late.kill()
        late.wait()


def test_a_working_directory_that_went_away_costs_only_the_disk(tmp_path: Path) -> None:
    gone = tmp_path / "run"
    gone.mkdir()
    sampler = SystemSampler(str(gone))
    assert sampler()["diskTotal"] is not None
    gone.rmdir()
    sample = sampler()
    assert (sample["diskUsed"], sample["diskTotal"]) == (None, None)
    assert sample["memoryTotal"] is not None and sample["processMemory"] is not None


def test_a_counter_that_went_back_gives_no_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A counter reset (an interface re-created) cannot be made here: psutil is stood in for."""
    counters = [psutil.net_io_counters()._replace(bytes_recv=5000, bytes_sent=100)]
    monkeypatch.setattr(psutil, "net_io_counters", lambda nowrap: counters[0])
    clock = [0.0]
    sampler = SystemSampler(clock=lambda: clock[0])
    clock[0] = 2.0
    counters[0] = counters[0]._replace(bytes_recv=9000, bytes_sent=50)
    sample = sampler()
    assert (sample["networkIn"], sample["networkOut"]) == (2000.0, None)


def test_a_psutil_failure_costs_its_metrics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in psutil (stood in for: it cannot be made to fail here)."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    sampler = SystemSampler()
    monkeypatch.setattr(psutil, "virtual_memory", broken)
    sample = sampler()
    assert (sample["memoryUsed"], sample["memoryTotal"]) == (None, None)
    assert sample["processMemory"] is not None and sample["diskTotal"] is not None


def test_the_sampler_survives_a_process_that_vanishes_mid_sample(
    child: subprocess.Popen[str],
) -> None:
    """The children are read while they may end: the sample never raises, whatever the timing."""
    sampler = SystemSampler()
    stop = threading.Event()
    errors: list[BaseException] = []

    def sample_until_stopped() -> None:
        while not stop.is_set():
            try:
                sampler()
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=sample_until_stopped)
    thread.start()
    child.kill()
    child.wait()
    wait_for(lambda: child.pid not in {p.pid for p in sampler._tree}, 10)
    stop.set()
    thread.join()
    assert errors == []
