"""The NCCL-hang signature (jobwatch/server/core/alerts/nccl_hang.py): a GPU at full
utilization drawing far less power than the job's typical draw, for long enough,
marks the job hung (alert source ``hung``); the job is moving again once the
signature no longer holds. Checked on rows, through a real server fed GPU samples,
and from a real Reporter reading a fake NVML."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from jobwatch.contract.requests import JobSpec, ProgressUpdate
from jobwatch.server import EmbeddedServer
from jobwatch.server.core import rules
from jobwatch.server.core.alerts import nccl_hang
from jobwatch.server.core.alerts.nccl_hang import NcclHangRule
from jobwatch.server.core.job_row import JobRow, with_changes
from tests.conftest import FakeClock, wait_for
from tests.fake_nvml import FakeGpu, FakeNvml

RULE = NcclHangRule(after=120.0)


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def running(**fields: Any) -> JobRow:
    row = rules.new_job("j", JobSpec.model_validate({"workerId": "w", "pricePerHour": 36.0}), 0.0)
    return with_changes(
        row,
        {"status": "running", "started_at": 0.0, "updated_at": 0.0, "progress": 5.0, **fields},
    )


def feed(
    job: JobRow, samples: list[tuple[float, float | None, float | None]]
) -> tuple[JobRow, list[Any]]:
    """Apply one progress update per ``(time, utilization, watts)``; progress does not move
    and the training code makes no call. Returns the row after and every alert row."""
    alerts: list[Any] = []
    for at, utilization, watts in samples:
        update = ProgressUpdate.model_validate(
            {
                "workerId": "w",
                "progress": 5,
                "metrics": {"gpuUtilization": utilization, "powerUsage": watts},
            }
        )
        outcome = rules.apply_progress(job, update, at, nccl_hang=RULE)
        job = outcome.job
        alerts += outcome.alert_rows
    return job, alerts


WORKING = [(float(t), 97.0, 300.0) for t in range(0, 60, 10)]
"""A minute of training: nearly full utilization at 300 W."""


def test_full_utilization_at_low_power_for_the_duration_is_a_hang_once() -> None:
    spinning = [(float(t), 100.0, 70.0) for t in range(60, 190, 10)]  # from 60 s to 180 s
    job, alerts = feed(running(), WORKING + spinning[:-1])
    assert not job["hung"] and alerts == []  # 110 s of the signature: not yet
    job, alerts = feed(job, [*spinning[-1:], (190.0, 100.0, 70.0)])
    assert job["hung"] == 1 and job["hung_at"] == 60.0
    (alert,) = alerts
    assert (alert["source"], alert["level"], alert["title"]) == (
        "hung",
        "warning",
        "job hung: NCCL-hang signature",
    )
    assert alert["text"].startswith(
        "GPU utilization 100 % at 70 W for 2 min, the job's typical draw 300 W; "
        "1.20 QUBIC spent since"
    )


def test_the_job_moves_again_when_the_signature_no_longer_holds() -> None:
    spinning = [(float(t), 100.0, 70.0) for t in range(60, 200, 10)]
    job, _ = feed(running(), WORKING + spinning)
    assert job["hung"]
    job, alerts = feed(job, [(300.0, 98.0, 290.0)])
    assert not job["hung"] and job["hung_at"] is None
    assert job["hung_seconds"] == 240.0 and job["hung_cost"] == pytest.approx(2.4)
    (alert,) = alerts
    assert (alert["source"], alert["level"], alert["title"]) == ("hung", "info", "job moving again")


def test_idle_spells_do_not_lower_the_typical_draw() -> None:
    idle = [(float(t), 0.0, 60.0) for t in range(60, 600, 10)]  # CPU evaluation, data loading
    spinning = [(float(t), 100.0, 70.0) for t in range(600, 740, 10)]
    job, alerts = feed(running(), WORKING + idle + spinning)
    assert job["hung"] and len(alerts) == 1


def test_a_break_in_the_signature_starts_its_clock_again() -> None:
    first = [(float(t), 100.0, 70.0) for t in range(60, 160, 10)]  # 90 s
    working = [(160.0, 97.0, 300.0)]
    second = [(float(t), 100.0, 70.0) for t in range(170, 280, 10)]  # 100 s
    job, alerts = feed(running(), WORKING + first + working + second)
    assert not job["hung"] and alerts == []


def test_a_job_never_seen_working_or_without_power_readings_is_never_judged() -> None:
    spinning = [(float(t), 100.0, 70.0) for t in range(0, 600, 10)]
    assert feed(running(), spinning)[1] == []  # no typical draw to compare with
    no_power = [(float(t), 100.0, None) for t in range(60, 600, 10)]
    assert feed(running(), WORKING + no_power)[1] == []


def test_moving_progress_or_a_call_from_the_training_code_is_not_a_hang() -> None:
    job = running()
    alerts: list[Any] = []
    for step, at in enumerate(range(0, 400, 10)):
        spinning = at >= 60
        update = ProgressUpdate.model_validate(
            {
                "workerId": "w",
                "progress": 5 + step * 0.1,
                "metrics": {
                    "gpuUtilization": 100.0 if spinning else 97.0,
                    "powerUsage": 70.0 if spinning else 300.0,
                },
            }
        )
        outcome = rules.apply_progress(job, update, float(at), nccl_hang=RULE)
        job, alerts = outcome.job, alerts + outcome.alert_rows
    assert not job["hung"] and alerts == []


def test_without_the_rule_nothing_is_judged() -> None:
    job = running()
    for at in range(0, 600, 10):
        update = ProgressUpdate.model_validate(
            {"workerId": "w", "progress": 5, "metrics": {"gpuUtilization": 100, "powerUsage": 9}}
        )
        outcome = rules.apply_progress(job, update, float(at))
        job = outcome.job
        assert outcome.alert_rows == []
    assert "#ncclHang" not in (job["alert_state"] or {})


def test_each_rank_of_a_distributed_job_has_its_own_typical_draw_and_clock() -> None:
    state: dict[str, Any] = {}
    job = running()
    fired = []
    # rank 0's GPUs spin at low power (a collective waits); rank 1's never joined it: idle
    for at in range(0, 300, 10):
        for rank in (0, 1):
            working = ((97.0, 300.0), (97.0, 250.0))[rank]
            waiting = ((100.0, 70.0), (0.0, 55.0))[rank]
            util, watts = waiting if at >= 60 else working
            sample = {"gpuUtilization": util, "powerUsage": watts}
            state, changes, alerts = nccl_hang.check(
                RULE, job, state, sample, str(rank), float(at), alive=False
            )
            job = with_changes(job, changes)
            fired += alerts
    assert job["hung"] and len(fired) == 1


def test_the_rule_refuses_thresholds_out_of_range() -> None:
    for bad in [{"after": 0}, {"after": 60, "utilization": 101}, {"after": 60, "power": 0}]:
        with pytest.raises(ValueError, match="NCCL-hang"):
            NcclHangRule(**bad)


# -- a server ---------------------------------------------------------------------------


def served(clock: FakeClock) -> EmbeddedServer:
    return EmbeddedServer(
        config={
            "DATABASE": ":memory:",
            "CLOCK": clock,
            "STALL_CHECK_INTERVAL": 0,
            "NCCL_HANG_AFTER": 120,
            "NCCL_HANG_UTILIZATION": 95,
            "NCCL_HANG_POWER": 50,
        }
    )


def test_a_server_marks_the_signature_hung_and_clears_it(tmp_path: Any) -> None:
    clock = FakeClock()
    with served(clock) as server:
        base = f"{server.url}/api/jobs/spin"
        requests.put(base, json={"pricePerHour": 36.0}, timeout=5)

        def sample(utilization: float, watts: float, gpus: int = 8) -> None:
            per_gpu = [
                {"index": i, "gpuUtilization": utilization, "powerUsage": watts / gpus}
                for i in range(gpus)
            ]
            body = {
                "workerId": "w",
                "progress": 40,
                "metrics": {"gpuUtilization": utilization, "powerUsage": watts, "gpus": per_gpu},
            }
            assert requests.post(f"{base}/progress", json=body, timeout=5).ok
            clock.advance(10)

        for _ in range(6):
            sample(96, 2400)
        for _ in range(14):
            sample(100, 560)
        job = requests.get(base, timeout=5).json()["job"]
        assert job["hung"] is True and job["stalled"] is False
        sample(99, 2300)
        job = requests.get(base, timeout=5).json()["job"]
        assert job["hung"] is False
        alerts = requests.get(f"{base}/alerts", timeout=5).json()["alerts"]
        assert [(a["source"], a["level"], a["title"]) for a in alerts] == [
            ("hung", "warning", "job hung: NCCL-hang signature"),
            ("hung", "info", "job moving again"),
        ]
        assert "typical draw 2400 W" in alerts[0]["text"]


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGpu]:
    from jobwatch.report import gpu

    card = FakeGpu("GPU-aaaaaaaa-1111-2222-3333-444444444444", utilization=97, power=300_000)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([card]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu.reset()
    yield card
    gpu.reset()


def test_a_reporter_whose_gpu_spins_at_low_power_is_hung_then_moving(fake_gpu: FakeGpu) -> None:
    from jobwatch import Reporter

    clock = FakeClock()
    with served(clock) as server:
        reporter = Reporter("spin", url=server.url, gpu="auto", interval=0.05, price_per_hour=36)
        try:
            reporter.update(10, "epoch 1")
            assert reporter.flush(timeout=10)

            def step(seconds: float) -> None:
                """Move the server's clock, then wait for the reporter's next sample of the
                card as it is now (one read before the card changed may still arrive)."""
                clock.advance(seconds)
                wanted = iso(clock())
                watts = fake_gpu.power / 1000

                def arrived() -> bool:
                    monitor = requests.get(f"{server.url}/api/jobs/spin/monitor", timeout=5)
                    latest = monitor.json()["metrics"]["latest"]
                    return (
                        latest is not None
                        and latest["timestamp"] == wanted
                        and latest["powerUsage"] == pytest.approx(watts)
                    )

                wait_for(arrived, what="a sample at the new server time")

            def job() -> dict[str, Any]:
                return requests.get(f"{server.url}/api/jobs/spin", timeout=5).json()["job"]

            for _ in range(4):
                step(15)
            fake_gpu.utilization, fake_gpu.power = 100, 65_000  # a collective that waits
            for _ in range(10):
                step(15)
            assert job()["hung"] is True
            fake_gpu.utilization, fake_gpu.power = 98, 290_000  # it went through
            step(15)
            assert job()["hung"] is False
        finally:
            reporter.close(timeout=5)
        alerts = requests.get(f"{server.url}/api/jobs/spin/alerts", timeout=5).json()["alerts"]
        assert [(a["source"], a["level"]) for a in alerts] == [
            ("hung", "warning"),
            ("hung", "info"),
        ]
