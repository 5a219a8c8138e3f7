"""A saved notebook reopened with a new kernel: the monitor cell run again follows the
same job, from the server's state, live (a real kernel restart, jupyter_client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobwatch import Client
from jobwatch.server import EmbeddedServer
from tests.conftest import wait_for
from tests.kernel import Kernel

pytestmark = pytest.mark.slow

CELL = "import jobwatch\nmonitor = jobwatch.JobMonitor('kept', {url!r})\nmonitor"


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    pytest.importorskip("ipykernel")
    k = Kernel()
    yield k
    k.stop()


def test_the_cell_run_again_in_a_new_kernel_follows_the_same_job(
    kernel: Kernel, server: EmbeddedServer, client: Client
) -> None:
    client.create_job(job_id="kept")
    client.report_progress("kept", "w", 30.0, "epoch 3")
    cell = kernel.run(CELL.format(url=server.url))
    assert cell.error() is None, cell.error()
    kernel.run("monitor.wait(0.5)")
    assert kernel.value("monitor.view.progress.value") == 30.0
    kernel.restart()
    client.report_progress("kept", "w", 50.0, "epoch 5")  # while no kernel watched
    cell = kernel.run(CELL.format(url=server.url))
    assert cell.error() is None, cell.error()
    wait_for(lambda: kernel.value("monitor.view.progress.value") == 50.0)
    wait_for(lambda: "live" in kernel.value("monitor.view.connection.value"))
    client.report_progress("kept", "w", 70.0, "epoch 7")
    wait_for(lambda: kernel.value("monitor.view.progress.value") == 70.0)
    assert "epoch 7" in kernel.value("monitor.view.live.value")
