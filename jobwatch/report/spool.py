"""The reporter's spool: what it was handed, on local disk until the server has it.

Each reporter writes the requests it composes (progress, log lines, training
metrics, GPU and system samples, alerts, and at the end the completion) to a file of its
own before sending them, and notes there which the server acknowledged. A
process that dies (SIGKILL, OOM, a preempted machine) leaves the file; the
next reporter of the same job on the same machine, or ``jobwatch sync``, sends
what it holds. Each request carries its ``updateId``, which the server applies
once, so a request sent again after a crash is not stored twice.

Layout: ``<root>/<job id>/<session>/`` holds ``header.json`` (the server URL
and the job, written once) and ``spool.jsonl``, one JSON record a line:
``{"u": updateId, "b": body}`` a progress request, ``{"c": body}`` the
completion, ``{"a": updateId}`` everything up to that request is done
(acknowledged, or dropped and counted). The owner holds an advisory lock
(``fcntl.flock``) on ``lock``; a spool whose lock is free belongs to a process
that has ended. Once every request is done the file is emptied; a finished
reporter removes its folder.

Durability: the sender appends what it composes in one write each time it
composes (once an interval, or sooner while log lines wait), and ``fsync``s at
most once per ``fsync_interval`` (the reporter's interval). A process that dies
loses nothing written (the kernel holds it); a machine that loses power loses
at most what was recorded in the last interval. Acknowledgements are written
with the next batch (a lost one means a request is sent again, which its
``updateId`` makes harmless).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_log = logging.getLogger("jobwatch.report.reporter")

DEFAULT_SPOOL_BYTES = 64 * 1024 * 1024
"""Bytes of requests one reporter keeps on disk (and in memory) while the server
does not take them; beyond, the oldest are dropped and counted (64 MiB holds
about half an hour of 100 metrics at 20 steps per second)."""
SPOOL_ENV = "JOBWATCH_SPOOL_DIR"
"""Environment variable naming the spool root; default :func:`default_root`."""

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a spool is adopted only by ``jobwatch sync``
    fcntl = None  # type: ignore[assignment]


def default_root() -> Path:
    """Where spools live: ``$JOBWATCH_SPOOL_DIR``, else platformdirs' user state
    directory of ``jobwatch`` plus ``spool`` (``~/.local/state/jobwatch/spool`` on Linux)."""
    env = os.environ.get(SPOOL_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir("jobwatch")) / "spool"


def _safe(job_id: str) -> str:
    """A job id as a folder name (job ids allow ``:`` and ``@``, fine on POSIX,
    not on Windows)."""
    return re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02X}", job_id)


@dataclass
class Pending:
    """What a spool still holds: its header and the records not yet done, in order.

    Attributes
    ----------
    path:
        The spool's folder.
    header:
        ``{"url", "jobId", "workerId", "name", "pricePerHour", "currency"}``.
    requests:
        ``(updateId, body)`` of each progress request not yet acknowledged.
    completion:
        The completion body, when the reporter had finished the job.
    """

    path: Path
    header: dict[str, Any]
    requests: list[tuple[str, dict[str, Any]]]
    completion: dict[str, Any] | None


class Spool:
    """One reporter's spool file (see the module docstring); used by its sender thread only.

    Parameters
    ----------
    path:
        The folder, created with ``header`` written into it.
    header:
        The server URL and the job (see :class:`Pending`).

    Raises
    ------
    OSError
        The folder cannot be created, written or locked.
    """

    def __init__(self, path: Path, header: dict[str, Any], fsync_interval: float = 0.0) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._fsync_interval = fsync_interval
        self._synced_at = -math.inf  # monotonic s of the last fsync
        self.path = path
        self._lock_file: IO[bytes] | None = open(path / "lock", "wb")  # noqa: SIM115
        if fcntl is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        (path / "header.json").write_text(json.dumps(header), encoding="utf-8")
        self._file: IO[bytes] = open(path / "spool.jsonl", "ab")  # noqa: SIM115
        self._buffer: list[bytes] = []
        self.size = 0  # bytes in the file

    def add(self, update_id: str, body: bytes) -> None:
        """Queue one request (``body``: its JSON) for the next :meth:`write`."""
        self._buffer.append(b'{"u":' + json.dumps(update_id).encode() + b',"b":' + body + b"}\n")

    def add_completion(self, body: dict[str, Any]) -> None:
        """Queue the completion for the next :meth:`write`."""
        self._buffer.append(json.dumps({"c": body}).encode() + b"\n")

    def done(self, update_id: str) -> None:
        """Note that every request up to ``update_id`` is done (written with the next batch)."""
        self._buffer.append(b'{"a":' + json.dumps(update_id).encode() + b"}\n")

    def write(self, *, empty: bool = False) -> None:
        """Append what was queued in one write, and ``fsync`` unless the last one was
        less than ``fsync_interval`` seconds ago; ``empty``: nothing is pending any
        more, so the file is emptied instead.

        Raises
        ------
        OSError
            The disk refused (full, read-only); the caller keeps the requests in memory.
        """
        if empty:
            self._buffer.clear()
            if self.size:
                self._file.truncate(0)
                self._file.seek(0)
                self.size = 0
            return
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._file.write(data)
        self._file.flush()
        now = time.monotonic()
        if now - self._synced_at >= self._fsync_interval:
            os.fsync(self._file.fileno())
            self._synced_at = now
        self.size += len(data)

    def rewrite(self, requests: list[tuple[str, bytes]]) -> None:
        """Replace the file by ``requests`` (the oldest were dropped): write a new
        file, ``fsync`` it and rename it over the old one, so a crash leaves one or the other."""
        self._buffer.clear()
        tmp = self.path / "spool.jsonl.tmp"
        with open(tmp, "wb") as out:
            for update_id, body in requests:
                out.write(b'{"u":' + json.dumps(update_id).encode() + b',"b":' + body + b"}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path / "spool.jsonl")
        self._file.close()
        self._file = open(self.path / "spool.jsonl", "ab")  # noqa: SIM115
        self.size = self._file.tell()

    def close(self, *, remove: bool) -> None:
        """Close the file and release the lock; ``remove``: delete the folder (nothing is pending)."""
        with contextlib.suppress(OSError):
            self._file.close()
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # the job's folder, when no other spool is in it
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()
            self._lock_file = None


def open_spool(
    root: Path, job_id: str, session: str, header: dict[str, Any], fsync_interval: float = 0.0
) -> Spool | None:
    """A new spool for one reporter under ``root`` that ``fsync``s at most once per
    ``fsync_interval`` seconds, or ``None`` (warned) where the disk refuses."""
    try:
        return Spool(root / _safe(job_id) / session, header, fsync_interval)
    except OSError as exc:
        _log.warning(
            "jobwatch: cannot write the spool under %s (%s); data the server has not "
            "taken is kept in memory only",
            root,
            exc,
        )
        return None


def orphans(root: Path, job_id: str | None = None) -> Iterator[Path]:
    """Spool folders under ``root`` (of ``job_id`` only, when given) whose owner has
    ended (its lock is free), oldest first. ``root`` may also be one spool folder."""
    if (root / "header.json").exists():
        candidates = [root]
    else:
        jobs = [root / _safe(job_id)] if job_id is not None else _dirs(root)
        candidates = [spool for job in jobs for spool in _dirs(job)]
    candidates.sort(key=lambda p: _mtime(p / "header.json"))
    for path in candidates:
        if (path / "header.json").exists() and not _locked(path):
            yield path


def _dirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock."""
    if fcntl is None:
        return False
    try:
        with open(path / "lock", "ab") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return True


def read(path: Path) -> Pending:
    """What the spool at ``path`` still holds. A torn last line (the process died
    mid-write: the text after the last newline) is ignored.

    Raises
    ------
    OSError, ValueError
        No readable header, a header without a job id, or a complete line (one
        that ends in a newline) that is not a record: the file was damaged, not
        torn, and what it holds cannot be told; the caller keeps the spool.
    """
    header = json.loads((path / "header.json").read_text(encoding="utf-8"))
    if not isinstance(header, dict) or not isinstance(header.get("jobId"), str):
        raise ValueError('its header.json names no job (no "jobId")')
    requests: list[tuple[str, dict[str, Any]]] = []
    completion: dict[str, Any] | None = None
    try:
        raw = (path / "spool.jsonl").read_bytes()
    except FileNotFoundError:
        raw = b""
    *lines, _torn = raw.split(b"\n")  # the text after the last newline: torn, or empty
    for number, line in enumerate(lines, 1):
        record = _record(line)
        if record is None:
            raise ValueError(f"line {number} of spool.jsonl is not a spool record")
        if "u" in record:
            requests.append((record["u"], record["b"]))
        elif "a" in record:
            ids = [uid for uid, _ in requests]
            if record["a"] in ids:
                del requests[: ids.index(record["a"]) + 1]
        elif "c" in record:
            completion = record["c"]
    return Pending(path, header, requests, completion)


def _record(line: bytes) -> dict[str, Any] | None:
    """One spool line as its record: a request (``u`` and ``b``), an acknowledgement
    (``a``) or the completion (``c``); ``None`` when it is none of them."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if "u" in record:
        ok = isinstance(record["u"], str) and isinstance(record.get("b"), dict)
    elif "a" in record:
        ok = isinstance(record["a"], str)
    else:
        ok = isinstance(record.get("c"), dict)
    return record if ok else None


def mark_done(path: Path, update_id: str) -> None:
    """Append that everything up to ``update_id`` of the spool at ``path`` is done (fsynced)."""
    with open(path / "spool.jsonl", "ab") as out:
        out.write(b'{"a":' + json.dumps(update_id).encode() + b"}\n")
        out.flush()
        os.fsync(out.fileno())


def remove(path: Path) -> None:
    """Delete a spool folder whose records are all done (and its job's folder when empty)."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
