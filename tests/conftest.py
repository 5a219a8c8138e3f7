"""Shared fixtures: a real threaded server in this process, a controllable clock,
and WebSocket clients (websocket-client) that are closed after each test."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.seed_clients.npm import Bundler

# Rough cost of one test, in seconds, by kind: what orders the modules below for a
# test that has not run before.
_COST = {"browser": 30.0, "slow": 5.0, "notebook": 4.0, "other": 0.2}

SECONDS_KEY = "jobwatch/test-seconds"
"""The key in pytest's cache (``.pytest_cache``) under which each test's time in the
last run that ran it is kept: ``{node id: seconds of setup, call and teardown}``."""


def _estimate(item: pytest.Item) -> float:
    if item.get_closest_marker("browser"):
        return _COST["browser"]
    if item.get_closest_marker("slow"):
        return _COST["slow"]
    if item.nodeid.split("::")[0].endswith(".ipynb"):
        return _COST["notebook"]
    return _COST["other"]


def _module_cost(items: list[pytest.Item], measured: dict[str, float]) -> float:
    """Seconds the module's tests took when they last ran; estimated by kind for
    those that have not (a parametrized test whose cases share one id counts once)."""
    ids = {item.nodeid for item in items}
    known = sum(measured[nodeid] for nodeid in ids if nodeid in measured)
    return known + sum(_estimate(item) for item in items if item.nodeid not in measured)


OWN_STEPS = {
    "frameworks": "the framework integrations (tests/integrations/frameworks/): they train with "
    "torch, transformers, lightning, accelerate, xgboost or lightgbm and need the "
    "frameworks extra",
    "browser": "JupyterLab, Notebook 7 and the pages in headless Chromium (tests/browser/): "
    "half of the suite's CPU",
}
"""Folders (and their markers) left out of the README's test command and run by
``.ci/run`` as steps of their own, so that the command stays within minutes on a
2-core machine."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave a folder of :data:`OWN_STEPS` out unless ``-m`` asks for its marker
    (``-m frameworks``, ``-m browser``).

    Left out they are neither run nor counted as skipped, whatever other ``-m``
    expression is given (``-m "not slow"``).
    """
    for folder in OWN_STEPS:
        if folder in collection_path.parts:
            asked = re.search(rf"(?<!not )\b{folder}\b", config.getoption("markexpr") or "")
            return None if asked else True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the costliest modules first (longest-processing-time-first scheduling).

    A module's cost is its tests' time in the last run (:data:`SECONDS_KEY`), or
    an estimate by kind of test (:data:`_COST`) for those that have not run
    here. The workers take whole modules (``--dist loadscope``) in this order
    (``--no-loadscope-reorder``: xdist would otherwise order them by test count,
    which puts the few long browser tests last, where they alone set the run's end).
    Every worker reads the same cache, so all collect the same order. Within a
    module the order is unchanged.
    """
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    measured: dict[str, float] = cache.get(SECONDS_KEY, {}) if cache is not None else {}
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    ordered = sorted(  # stable: ties keep their order
        modules.values(), key=lambda module: _module_cost(module, measured), reverse=True
    )
    items[:] = [item for module in ordered for item in module]


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    """Collect with the compiled test modules kept in pytest's cache folder.

    pytest rewrites the assertions of each test module as it imports it, seconds
    of CPU in every xdist worker, and keeps the result only where Python may write
    bytecode. Where ``PYTHONDONTWRITEBYTECODE`` keeps ``__pycache__`` folders out
    of the checkout, the modules imported while collecting are compiled into
    ``.pytest_cache/d/pycache`` instead (``sys.pycache_prefix``) and read from
    there by the next run; after collecting, nothing more is written.
    """
    cache = getattr(session.config, "cache", None)  # None with -p no:cacheprovider
    if cache is None or not sys.dont_write_bytecode or sys.pycache_prefix:
        return (yield)
    sys.pycache_prefix = str(cache.mkdir("pycache"))
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = True
        sys.pycache_prefix = None


_seconds: dict[str, float] = {}
"""This run's time of each test so far (setup, call and teardown)."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # In the xdist controller (or the one process of -n 0): every test's reports.
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep this run's times in pytest's cache, beside those of tests it did not run."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _seconds:
        return  # an xdist worker: its controller saw the same reports and saves them
    kept: dict[str, float] = cache.get(SECONDS_KEY, {})
    kept.update({nodeid: round(seconds, 3) for nodeid, seconds in _seconds.items()})
    cache.set(SECONDS_KEY, kept)


class FakeClock:
    """Server time that moves only when a test says so (seconds since the epoch)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class Api:
    """A thin requests wrapper bound to one server's base URL."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, timeout=10, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.put(self.base + path, timeout=10, **kwargs)


class WsClient:
    """A real WebSocket client with JSON helpers."""

    def __init__(self, url: str) -> None:
        self.conn = websocket.create_connection(url, timeout=5)

    def send(self, message: dict[str, Any] | str) -> None:
        self.conn.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        self.conn.settimeout(timeout)
        result: dict[str, Any] = json.loads(self.conn.recv())
        return result

    def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Messages up to and including the first that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            seen.append(message)
            if predicate(message):
                return seen

    def subscribe(self, job_id: str, since: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe:job", "subscriptionId": job_id}
        if since is not None:
            message["since"] = since
        self.send(message)
        return self.recv()

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(autouse=True)
def _spool_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's reporters (and the processes it starts) spool into a folder of
    their own, never the user's, and never adopt another test's leftovers."""
    monkeypatch.setenv("JOBWATCH_SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:", "CLOCK": clock, "STALL_CHECK_INTERVAL": 0})
    yield srv
    srv.stop()


@pytest.fixture
def api(server: EmbeddedServer) -> Api:
    return Api(server.url)


@pytest.fixture
def client(server: EmbeddedServer) -> Iterator[Client]:
    """A :class:`jobwatch.client.rest.Client` of ``server``, closed after the test."""
    with Client(server.url) as c:
        yield c


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Poll ``predicate`` every 20 ms until it is true.

    Raises
    ------
    AssertionError
        ``predicate`` was still false after ``timeout`` seconds (the message names ``what``).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on as this returns (the OS picks it),
    for a server a test starts itself or for an address that refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def ws_factory(server: EmbeddedServer) -> Iterator[Callable[[], WsClient]]:
    clients: list[WsClient] = []

    def make() -> WsClient:
        client = WsClient(server.ws_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_job(api: Api) -> Callable[..., dict[str, Any]]:
    def make(**fields: Any) -> dict[str, Any]:
        response = api.post("/api/jobs", json=fields)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()["job"]
        return job

    return make


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``jobwatch serve`` as shipped, in a child process, for one test module."""
    server = ServerProcess(serve_command(tmp_path_factory.mktemp("served") / "db"))
    yield server
    server.stop()


@pytest.fixture
def served_client(served: ServerProcess) -> Iterator[Client]:
    with Client(served.url) as c:
        yield c


@pytest.fixture(scope="session")
def seed_bundler(tmp_path_factory: pytest.TempPathFactory) -> Bundler:
    """esbuild, React and recharts from npm, installed once per session (tests/seed_clients)."""
    return Bundler(tmp_path_factory.mktemp("npm"))
