"""Real faults for the scale-out tier, on loopback only: a PostgreSQL of the
test's own (frozen with SIGSTOP, thawed with SIGCONT), and a TCP proxy that is
silently partitioned: it stops forwarding without closing anything, as a
network that drops every packet looks to the application (the kernels on
both sides keep acknowledging, so TCP itself notices nothing).

The machine's shared PostgreSQL (5432) and Redis (6379) are never touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from tests.conftest import free_port


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (Debian's layout), or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def private_postgres_problem() -> str | None:
    """Why :class:`PrivatePostgres` cannot run here, or ``None``."""
    if postgres_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    if os.geteuid() != 0:
        return "starting a private PostgreSQL as the postgres user needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own: ``initdb`` in a temporary
    directory, served on a free loopback port by the postgres user, trust auth.

    Attributes
    ----------
    port:
        Where it listens.
    url:
        ``postgresql://postgres@127.0.0.1:PORT/postgres``.
    """

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        self._bin = bin_dir
        self._dir = Path(tempfile.mkdtemp(prefix="jobwatch-pg-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        user = pwd.getpwnam("postgres")
        os.chown(self._dir, user.pw_uid, user.pw_gid)
        self._data = self._dir / "data"
        self._as_postgres(
            str(self._bin / "initdb"), "-D", str(self._data), "-A", "trust", "-U", "postgres"
        )
        self.start()

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._dir} -c fsync=off"
        self._as_postgres(
            str(self._bin / "pg_ctl"), "-D", str(self._data), "-o", options, "-w", "-l",
            str(self._dir / "log"), "start",
        )  # fmt: skip

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process it started."""
        pid = int((self._data / "postmaster.pid").read_text().split()[0])
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP every process of the server: connections stay open, the
        kernel still accepts and acknowledges, nothing answers."""
        for process in self.processes():
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every process of the server."""
        for process in self.processes():
            process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server at once (``pg_ctl stop -m immediate``); :meth:`start` restarts it."""
        self._as_postgres(str(self._bin / "pg_ctl"), "-D", str(self._data), "-m",
                          "immediate", "stop")  # fmt: skip

    def close(self) -> None:
        """Stop the server (thawed first) and delete its directory."""
        with contextlib.suppress(OSError, psutil.Error, ValueError):
            self.thaw()
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class PrivateRedis:
    """A Redis server of the test's own on a free port, which the test may stop
    and start again on the same port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start redis-server and wait until it accepts connections."""
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill the server."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None


class PartitionProxy:
    """A TCP proxy on 127.0.0.1 to ``target`` that can be silently partitioned.

    :meth:`partition` stops forwarding in both directions without closing any
    connection; connections accepted meanwhile are held open, unforwarded.
    :meth:`heal` resumes forwarding, including what was held back.

    Attributes
    ----------
    port:
        Where it listens.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="partition-proxy", daemon=True).start()

    def url_for(self, url: str, port: int) -> str:
        """``url`` with ``127.0.0.1:port`` replaced by this proxy's address."""
        return url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.port}")

    def partition(self) -> None:
        """Stop forwarding; close nothing."""
        self._open.clear()

    def heal(self) -> None:
        """Forward again."""
        self._open.set()

    def close(self) -> None:
        """Close the listener and every connection."""
        self._stop.set()
        self._open.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            self._sockets.append(client)
        self._open.wait()  # partitioned: hold the connection, unanswered
        if self._stop.is_set():
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.2)
        while not self._stop.is_set():
            if not self._open.is_set():
                self._open.wait(0.2)  # partitioned: read nothing, send nothing
                continue
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                for sock in (source, sink):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return
            self._open.wait()  # partitioned while reading: hold the data until healed
            if self._stop.is_set():
                return
            try:
                sink.sendall(data)
            except OSError:
                return
