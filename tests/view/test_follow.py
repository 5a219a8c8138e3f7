"""``JobFollower``, the one follow loop of the notebook monitor and ``jobwatch watch``,
against a real server and its WebSocket."""

from __future__ import annotations

import threading

import pytest

from jobwatch.client.rest import Client
from jobwatch.errors import JobNotFound
from jobwatch.view.follow import HistoryLoaded, JobFollower
from jobwatch.view.state import MonitorState
from tests.conftest import wait_for


class Recorder:
    """A view that keeps what each render showed: (connection, status, progress)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str | None, float | None]] = []
        self.samples: list[int] = []

    def render(self, state: MonitorState, connection: str) -> None:
        self.shown.append((connection, state.job.get("status"), state.job.get("progress")))
        self.samples.append(len(state.samples))


def test_a_job_not_yet_created_is_waited_for_then_followed_to_its_end(client: Client) -> None:
    view = Recorder()
    follower = JobFollower(client, "later", wait_interval=0.05, refresh=0.01, name="t-follow")
    assert follower.waiting
    follower.start(view)
    try:
        assert view.shown[0] == ("waiting", None, None)
        client.create_job(job_id="later")
        wait_for(lambda: follower.state.connection == "live")
        client.report_progress("later", "w", 40.0, "epoch 4")
        wait_for(lambda: any(p == 40.0 for _, _, p in view.shown))
        client.complete_job("later", "w", "completed", {"acc": 0.9})
        assert follower.wait(10)
        assert view.shown[-1] == ("ended", "completed", 100.0)
        assert follower.state.job["result"] == {"acc": 0.9} and follower.error is None
    finally:
        follower.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("t-follow")]


def test_an_unknown_job_raises_unless_waited_for(client: Client) -> None:
    with pytest.raises(JobNotFound):
        JobFollower(client, "nobody", wait=False)


def test_a_finished_job_is_shown_without_a_stream_with_its_training_metrics(
    client: Client,
) -> None:
    client.create_job(job_id="done")
    for step in (1, 2, 3):
        client.report_progress(
            "done", "w", step * 10, scalars=[{"step": step, "values": {"loss": 1 / step}}]
        )
    client.complete_job("done", "w", "completed")
    view = Recorder()
    follower = JobFollower(client, "done", load_scalars=True)
    state = follower.run(view)
    assert follower.subscription is None and follower.shown_final.is_set()
    assert [p.step for p in state.scalars["loss"]] == [1, 2, 3]
    assert view.shown[-1][:2] == ("ended", "completed")


def test_close_says_closed_and_updates_from_the_user_are_rendered(client: Client) -> None:
    client.create_job(job_id="open")
    view = Recorder()
    follower = JobFollower(client, "open", refresh=0.01).start(view)
    wait_for(lambda: follower.state.connection == "live")
    rows = [{"timestamp": f"2026-11-29T10:00:0{i}.000Z", "gpuUtilization": 50.0} for i in range(3)]
    follower.put(HistoryLoaded(rows))
    wait_for(lambda: view.samples[-1] == 3)
    follower.close()
    assert view.shown[-1][0] == "closed" and follower.closed and not follower.wait(0.1)
    follower.close()  # idempotent


def test_a_big_jobs_workers_are_read_less_often(client: Client) -> None:
    from jobwatch.view.follow import WORKERS_PER_SECOND

    client.create_job(job_id="big")
    follower = JobFollower(client, "big", workers_interval=3.0)
    assert follower._workers_wait() == 3.0
    follower.state.set_workers({"worldSize": 512, "workers": [{"rank": r} for r in range(512)]})
    assert follower._workers_wait() == 512 / WORKERS_PER_SECOND == 8.0
