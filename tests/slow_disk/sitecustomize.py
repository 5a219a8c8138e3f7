"""A slow disk for ``jobwatch serve``: every SQLite commit that writes waits
``$JOBWATCH_SLOW_COMMIT_S`` seconds first, blocking its OS thread as a slow
``fsync`` does (the sleep is the one from before gevent patched ``time``);
with ``$JOBWATCH_COMMIT_LOG`` set, each such commit appends one line to that
file: its end (seconds since the epoch) and, as JSON, every job's ``seq`` as
that commit stored it (an event of seq ``s`` was stored by the first commit
that logs its job at ``s`` or more).

Loaded by a server started with this directory first on ``PYTHONPATH``
(tests/server/storage/test_slow_disk.py, benchmarks/slowdisk.py); nothing else imports it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

_DELAY = float(os.environ.get("JOBWATCH_SLOW_COMMIT_S", "0"))
_LOG = os.environ.get("JOBWATCH_COMMIT_LOG")  # where to append each writing commit's end time
_block = time.sleep  # captured before gevent's patching: it holds the OS thread


class _SlowCommit(sqlite3.Connection):
    def commit(self) -> None:
        writes = self.in_transaction  # a read-only transaction has nothing to flush
        seqs = _seqs(self) if writes and _LOG else {}
        if writes:
            _block(_DELAY)
        super().commit()
        if writes and _LOG:
            with open(_LOG, "a") as log:
                log.write(f"{time.time():.6f} {json.dumps(seqs)}\n")


def _seqs(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        return dict(conn.execute("SELECT id, seq FROM jobs").fetchall())
    except sqlite3.OperationalError:  # the schema's own first commit: no jobs table yet
        return {}


_connect = sqlite3.connect


def _slow_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs.setdefault("factory", _SlowCommit)
    return _connect(*args, **kwargs)


if _DELAY > 0 or _LOG:
    sqlite3.connect = sqlite3.dbapi2.connect = _slow_connect
