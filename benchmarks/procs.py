"""A read-only server for measuring, and what ``/proc`` says about its gunicorn
worker: its pid, memory and CPU time."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from jobwatch.server.deploy.process import ServerProcess, serve_command

_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def served(db: Path) -> Iterator[ServerProcess]:
    """``jobwatch serve`` on ``db``, killed afterwards: a graceful stop adds about
    2 s per server, and a server that only answered reads has nothing to finish."""
    server = ServerProcess(serve_command(db))
    try:
        yield server
    finally:
        server.kill()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces; ppid is the 2nd field after it
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def worker_pids(server: ServerProcess, count: int, timeout: float = 30.0) -> list[int]:
    """The pids of the server's ``count`` gunicorn workers, once it answers ``/api/health``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = _children(server.pid)
        if len(children) == count:
            try:
                requests.get(f"{server.url}/api/health", timeout=5).raise_for_status()
            except requests.RequestException:
                time.sleep(0.1)
                continue
            return children
        time.sleep(0.1)
    raise RuntimeError(f"not {count} gunicorn workers under pid {server.pid}")


def worker_pid(server: ServerProcess, timeout: float = 30.0) -> int:
    """The pid of the server's one gunicorn worker, once it answers ``/api/health``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"{server.url}/api/health", timeout=5).raise_for_status()
        except requests.RequestException:
            time.sleep(0.1)
            continue
        children = _children(server.pid)
        if len(children) == 1:
            return children[0]
        time.sleep(0.1)
    raise RuntimeError(f"no single gunicorn worker under pid {server.pid}")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (MiB), from ``VmRSS``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS
