"""A Reporter's logging handler never ships the records jobwatch's own work emits:
not its sender's, not another reporter's, not the HTTP and
WebSocket libraries' while jobwatch talks to the server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import websocket

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.report.conftest import log_messages


@pytest.fixture
def root_at_debug() -> Iterator[logging.Logger]:
    """The root logger at DEBUG, as a user debugging their own code sets it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.DEBUG)
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_two_handlers_on_the_root_logger_ship_only_what_the_user_logged(
    root_at_debug: logging.Logger,
    make_reporter: Callable[..., Reporter],
    module_server: EmbeddedServer,
) -> None:
    first, second = make_reporter(), make_reporter()
    root_at_debug.addHandler(first.logging_handler())
    root_at_debug.addHandler(second.logging_handler())
    user = logging.getLogger("user.training")
    for step in range(3):
        user.info("step %d", step)
        first.update(10 * step)
        second.update(10 * step)
        time.sleep(0.2)  # several intervals of both senders, each one request at least
    assert first.flush(timeout=10) and second.flush(timeout=10)
    time.sleep(0.3)  # a few more requests: their records must not arrive either
    assert first.flush(timeout=10) and second.flush(timeout=10)
    with Client(module_server.url) as client:
        for reporter in (first, second):
            assert log_messages(client, reporter.job_id) == ["step 0", "step 1", "step 2"]


def test_http_records_of_jobwatch_client_calls_are_not_shipped(
    root_at_debug: logging.Logger,
    make_reporter: Callable[..., Reporter],
    module_server: EmbeddedServer,
) -> None:
    """urllib3 logs each request at DEBUG in the calling thread; only the user's own
    HTTP (not a jobwatch ``Client`` call) is the user's to ship."""
    reporter = make_reporter()
    root_at_debug.addHandler(reporter.logging_handler())
    with Client(module_server.url) as client:
        client.health()
        client.list_jobs()
        requests.get(f"{module_server.url}/api/health", timeout=10)  # the user's own request
        assert reporter.flush(timeout=10)
        messages = log_messages(client, reporter.job_id)
    assert len(messages) >= 1
    assert all("/api/health" in m or "Starting new HTTP" in m for m in messages), messages
    assert not any("/api/jobs" in m for m in messages), messages


def test_websocket_records_of_a_subscription_are_not_shipped(
    root_at_debug: logging.Logger,
    make_reporter: Callable[..., Reporter],
    module_server: EmbeddedServer,
) -> None:
    reporter = make_reporter()
    reporter.update(1)
    assert reporter.flush(timeout=10)
    root_at_debug.addHandler(reporter.logging_handler())
    websocket.enableTrace(True, handler=logging.NullHandler())  # websocket-client logs frames
    try:
        with Client(module_server.url) as client:
            subscription = client.subscribe(reporter.job_id)
            reporter.update(2)
            next(iter(subscription))
            subscription.close()
    finally:
        websocket.enableTrace(False)
    reporter.log("mine")
    assert reporter.flush(timeout=10)
    with Client(module_server.url) as client:
        assert log_messages(client, reporter.job_id) == ["mine"]
