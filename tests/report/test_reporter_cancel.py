"""Ctrl-C inside ``with Reporter(...)`` cancels the job instead of failing it."""

from __future__ import annotations

import pytest

from jobwatch import Client, Reporter


def test_keyboard_interrupt_cancels_the_job(server):
    with pytest.raises(KeyboardInterrupt), Reporter("interrupted", url=server.url, gpu=False) as r:
        r.update(30, "epoch 3/10")
        raise KeyboardInterrupt
    job = Client(server.url).get_job("interrupted")
    assert job["status"] == "cancelled"
    assert job["progress"] == 30
    assert job["error"] == "interrupted (KeyboardInterrupt)"


def test_boolean_progress_is_refused_like_the_server_does(server):
    reporter = Reporter("booleans", url=server.url, gpu=False)
    try:
        with pytest.raises(ValueError, match="progress"):
            reporter.update(True)
    finally:
        reporter.close(timeout=5)
