"""The real PostgreSQL and Redis of the scale-out tests (README.md says how to run them).

Their URLs come from ``JOBWATCH_TEST_POSTGRES_URL`` and
``JOBWATCH_TEST_REDIS_URL``; ``.ci/run`` sets both. Unset, the tests that need
them are skipped with the reason, except under ``CI=true``, where they fail.
Each server gets a schema of its own (``search_path``) and a Redis channel of
its own, so tests never see each other's rows or events.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from sqlalchemy import Engine, create_engine

POSTGRES_ENV = "JOBWATCH_TEST_POSTGRES_URL"
REDIS_ENV = "JOBWATCH_TEST_REDIS_URL"


def scale_urls() -> tuple[str, str]:
    """(PostgreSQL URL, Redis URL) from the environment, or skip / fail the test."""
    postgres, redis_url = os.environ.get(POSTGRES_ENV), os.environ.get(REDIS_ENV)
    if postgres and redis_url:
        return postgres, redis_url
    missing = " and ".join(
        n for n, v in ((POSTGRES_ENV, postgres), (REDIS_ENV, redis_url)) if not v
    )
    reason = f"{missing} not set: no PostgreSQL/Redis to test the scale-out tier against"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI must provide them)")
    pytest.skip(reason)


@contextmanager
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A new empty schema in ``postgres_url``'s database; yields a URL whose
    connections use it, and drops it afterwards.

    Those connections commit without waiting for the WAL's flush to disk
    (``synchronous_commit=off``, a per-session setting): what another session
    sees is the same, only a crash of the shared PostgreSQL could lose the last
    commits, and on a machine whose disk every test shares the flush waits were
    most of the scale-out tests' time.
    """
    schema = f"jw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in postgres_url else "?"
    try:
        options = f"-csearch_path={schema} -csynchronous_commit=off"
        yield f"{postgres_url}{joiner}options={quote(options)}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def schema_engine(database: str) -> Iterator[Engine]:
    """An engine on a database holding jobwatch's empty tables: ``"sqlite"`` (in
    memory, one connection kept) or ``"postgresql"`` (a fresh schema of the test
    server; skipped, or failed in CI, without one: :func:`scale_urls`)."""
    from jobwatch.server.storage.schema import metadata

    if database == "sqlite":
        engine = create_engine("sqlite://")
        metadata.create_all(engine)
        yield engine
        return
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def fresh_channel() -> str:
    """A Redis pub/sub channel no other test uses."""
    return f"jobwatch-test:{uuid.uuid4().hex[:12]}"


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 to ``target`` whose link can be cut and restored,
    to take a real PostgreSQL away from a server without stopping it for others.

    ``cut()`` closes every open connection and refuses new ones (accepted, then
    closed at once, as a crashed database host would look); ``restore()``
    forwards again.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._down = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        userinfo = netloc[0] + "@" if len(netloc) == 2 else ""
        return parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}").geturl()

    def cut(self) -> None:
        self._down.set()
        with self._lock:
            doomed, self._open = self._open, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()
        self._thread.join(2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
