"""Quotas: jobs per server, log bytes per job and in all; 507 past one, nothing
stored; finishing a job is never refused; prune frees room again."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch import Client, errors
from jobwatch.server import EmbeddedServer
from jobwatch.server.core.quotas import Quotas

LINE = "x" * 1000


def _serve(clock: Any, **quotas: int) -> EmbeddedServer:
    return EmbeddedServer(config={"CLOCK": clock, **quotas})


def _logs(n: int) -> list[dict[str, str]]:
    return [{"level": "info", "message": LINE} for _ in range(n)]


def test_jobs_past_the_quota_are_refused_and_prune_frees_room(clock: Any) -> None:
    with _serve(clock, MAX_JOBS=3) as server, Client(server.url) as client:
        for i in range(3):
            client.create_job(job_id=f"j{i}")
        with pytest.raises(errors.QuotaExceeded, match="--max-jobs 3") as refused:
            client.create_job(job_id="j3")
        assert refused.value.status == 507
        answer = requests.put(f"{server.url}/api/jobs/j3", json={}, timeout=5)
        assert answer.status_code == 507 and answer.json()["error"]["code"] == "quota_exceeded"
        client.ensure_job("j0", name="renamed")  # updating a stored job is no new job
        assert client.list_jobs()["total"] == 3
        client.complete_job("j0", "w", "completed")
        clock.advance(2 * 86400)
        assert server.services.store.prune(86400)["jobs"] == 1
        client.create_job(job_id="j3")


def test_a_jobs_log_bytes_are_capped(clock: Any) -> None:
    with _serve(clock, MAX_JOB_LOG_BYTES=5_000) as server, Client(server.url) as client:
        client.create_job(job_id="chatty")
        client.report_progress("chatty", "w", 10, logs=_logs(5))
        with pytest.raises(errors.QuotaExceeded, match="--max-job-log-bytes 5000"):
            client.report_progress("chatty", "w", 20, logs=_logs(1))
        job = client.get_job("chatty")
        assert job["progress"] == 10  # the refused update stored nothing
        assert client.logs("chatty")["total"] == 5
        client.report_progress("chatty", "w", 30)  # progress without log lines still goes
        client.complete_job("chatty", "w", "completed", {"ok": True})  # finishing always does
        client.create_job(job_id="other")
        client.report_progress("other", "w", 10, logs=_logs(5))  # per job


def test_the_servers_log_bytes_are_capped_and_prune_frees_them(clock: Any) -> None:
    with _serve(clock, MAX_LOG_BYTES=8_000) as server, Client(server.url) as client:
        client.create_job(job_id="a")
        client.report_progress("a", "w", 10, logs=_logs(6))
        client.create_job(job_id="b")
        with pytest.raises(errors.QuotaExceeded, match="--max-log-bytes 8000"):
            client.report_progress("b", "w", 10, logs=_logs(3))
        client.complete_job("a", "w", "completed")
        clock.advance(2 * 86400)
        server.services.store.prune(86400)
        client.report_progress("b", "w", 10, logs=_logs(3))


def test_a_retried_update_counts_once(clock: Any) -> None:
    with _serve(clock, MAX_JOB_LOG_BYTES=5_000) as server:
        requests.put(f"{server.url}/api/jobs/r", json={}, timeout=5)
        body = {"workerId": "w", "progress": 5, "updateId": "u1", "logLines": _logs(5)}
        for _ in range(3):
            answer = requests.post(f"{server.url}/api/jobs/r/progress", json=body, timeout=5)
            assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_quota_settings_are_checked(value: Any) -> None:
    with pytest.raises(ValueError, match="whole number >= 0"):
        Quotas(max_jobs=value)


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(0, 10_000),
    job_bytes=st.integers(0, 10_000),
    added=st.integers(1, 10_000),
)
def test_log_quota_fuzz(limit: int, job_bytes: int, added: int) -> None:
    quotas = Quotas(max_job_log_bytes=limit)
    over = limit and job_bytes + added > limit
    try:
        quotas.check_logs("j", job_bytes, added)
    except errors.QuotaExceeded as exc:
        assert over and exc.status == 507 and str(limit) in exc.message
    else:
        assert not over


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(0, 10_000),
    total=st.integers(0, 10_000),
    added=st.integers(1, 10_000),
)
def test_total_quota_fuzz(limit: int, total: int, added: int) -> None:
    quotas = Quotas(max_log_bytes=limit)
    over = limit and total + added > limit
    try:
        quotas.check_total(total, added)
    except errors.QuotaExceeded as exc:
        assert over and exc.status == 507 and str(limit) in exc.message
    else:
        assert not over


def _wide_sample(n_gpus: int = 64) -> dict[str, Any]:
    """A sample whose per-GPU list is about 130 KB of JSON."""
    return {
        "gpus": [
            {"index": i, "uuid": f"GPU-{i}-" + "u" * 1000, "name": "n" * 1000}
            for i in range(n_gpus)
        ]
    }


def test_per_gpu_samples_and_training_metrics_count_toward_the_stored_total(clock: Any) -> None:
    """The total quota is of every stored byte, not log text only: a sample may carry
    about 1 MiB of per-GPU data, 1,000 training-metric points an update."""
    with _serve(clock, MAX_LOG_BYTES=300_000) as server, Client(server.url) as client:
        client.create_job(job_id="wide")
        client.report_progress("wide", "w", 10, metrics=_wide_sample())
        client.report_progress("wide", "w", 20, metrics=_wide_sample())
        with pytest.raises(errors.QuotaExceeded, match="--max-log-bytes 300000"):
            client.report_progress("wide", "w", 30, metrics=_wide_sample())
        assert client.get_job("wide")["progress"] == 20  # the refused update stored nothing
        client.report_progress("wide", "w", 40)  # progress alone still goes
        many = [{"step": s, "values": {f"metric-{k}": 1.0 for k in range(10)}} for s in range(100)]
        with pytest.raises(errors.QuotaExceeded, match="--max-log-bytes 300000"):
            for _ in range(100):  # 1,000 points (over 30 KB) an update
                client.report_progress("wide", "w", 41, scalars=many)
        client.complete_job("wide", "w", "completed")
        clock.advance(2 * 86400)
        server.services.store.prune(86400)
        client.create_job(job_id="next")
        client.report_progress("next", "w", 10, metrics=_wide_sample())  # prune freed the room


def test_the_stored_total_read_inside_a_batch_counts_the_batchs_own_writes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch keeps its job rows' byte counts in memory until its end; a fresh
    read of the stored total in the middle of it must still count them, or two
    updates of one batch could pass the quota together."""
    from jobwatch.contract.requests import JobSpec, ProgressUpdate
    from jobwatch.server.core import quotas
    from jobwatch.server.storage.store import Store
    from jobwatch.server.storage.writer import _Pending

    monkeypatch.setattr(quotas, "TOTAL_REFRESH", 0.0)  # read the total at every update
    store = Store(str(tmp_path / "jobs.db"), quotas=Quotas(max_log_bytes=5_000))
    try:
        store.create_job(JobSpec.model_validate({}), "j", upsert=True)
        update = ProgressUpdate.model_validate(
            {"workerId": "w", "progress": 1, "logLines": _logs(3)}
        )
        ops: list[Any] = []
        monkeypatch.setattr(store._writer, "submit", lambda op, key="": ops.append(op))
        store.apply_progress("j", update)
        store.apply_progress("j", update)
        batch = [_Pending(op, "j") for op in ops]
        store._writer._apply(batch)  # both in one transaction
        assert batch[0].error is None
        assert isinstance(batch[1].error, errors.QuotaExceeded)  # 3,000 + 3,000 > 5,000
    finally:
        store.close()
