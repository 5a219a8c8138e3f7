"""``jobwatch sync [PATH]``: send what reporters that ended left in their spools.

A reporter keeps on local disk what the server has not acknowledged
(:mod:`jobwatch.report.spool`). When its process dies (SIGKILL, OOM, a
preempted machine) or exits while the server is away, this command sends what
is left, in order, to the server named in each spool (or ``--url``), then
removes the spool. Each request keeps its ``updateId``, and each one
acknowledged is noted in the spool before the next is sent, so a sync that is
interrupted, or run twice, stores nothing twice. Each is sent with its
``sentAt``, so the server places the job's start and end when they happened
(:class:`jobwatch.contract.requests.SentLater`), not when this command ran.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jobwatch.contract.basics import parse_ts, sent_late
from jobwatch.errors import APIError, JobFinished, JobNotFound, QuotaExceeded, RateLimited
from jobwatch.report import spool as spool_mod
from jobwatch.view.terminal_safe import clean


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sync`` to the ``jobwatch`` command's subcommands."""
    sync = commands.add_parser(
        "sync",
        help="send what ended reporters left on this machine",
        description="Send the updates, log lines, training metrics, GPU and system samples, alerts and "
        "completions that reporters which ended (killed, or at exit while the server was "
        "away) kept in their spools on this machine, exactly once, then remove them. Spools "
        "of reporters still running are left to them.",
    )
    sync.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="a spool folder, or a folder of them (default $JOBWATCH_SPOOL_DIR, else the "
        "user state directory's jobwatch/spool)",
    )
    sync.add_argument("--url", help="send to this server instead of the one each spool names")
    sync.add_argument("--token", help="bearer token for the server (default $JOBWATCH_TOKEN)")


def run(args: argparse.Namespace) -> int:
    """Sync every ended spool under ``args.path``; returns the exit code (0: all sent,
    1: the server refused a job, 2: the folder named is missing or not a folder,
    3: a server could not be reached: what is left stays)."""
    from jobwatch.client.rest import Client
    from jobwatch.errors import ConnectionError

    root = args.path if args.path is not None else spool_mod.default_root()
    if args.path is not None and not root.is_dir():  # a typo is not "nothing to send"
        why = "is not a folder" if root.exists() else "does not exist"
        print(f"jobwatch sync: the folder {root} {why}", file=sys.stderr)
        return 2
    code = 0
    found = 0
    for path in spool_mod.orphans(root):
        found += 1
        try:
            pending = spool_mod.read(path)
        except (OSError, ValueError) as exc:
            print(f"jobwatch sync: cannot read {path}: {exc}; kept as it is", file=sys.stderr)
            code = max(code, 1)
            continue
        url = args.url or pending.header.get("url")
        try:
            with Client(url, token=args.token) as client:
                sent = _send(client, pending)
        except ConnectionError as exc:
            print(f"jobwatch sync: cannot reach the server: {clean(exc)}", file=sys.stderr)
            return 3
        except APIError as exc:
            print(f"jobwatch sync: {path}: {clean(exc)}", file=sys.stderr)
            code = max(code, 1)
            continue
        spool_mod.remove(path)
        job = clean(str(pending.header.get("jobId")), single_line=True)
        print(f"{job}: {sent} updates sent{' and the completion' if pending.completion else ''}")
    if not found:
        print(f"jobwatch sync: nothing to send under {root}")
    return code


def _send(client: object, pending: spool_mod.Pending) -> int:
    """Send ``pending`` in order, noting each acknowledged request; returns how many went."""
    from jobwatch.client.rest import Client

    assert isinstance(client, Client)
    header = pending.header
    job_id = str(header["jobId"])
    path = f"/api/jobs/{quote(job_id, safe='')}"
    sent = 0
    for update_id, body in pending.requests:
        for _ in range(2):
            try:
                client.request("POST", f"{path}/progress", json_body=_dated(body))
            except JobNotFound:  # the server lost the job (a new database): create it again
                client.ensure_job(
                    job_id,
                    name=header.get("name"),
                    worker_id=header.get("workerId"),
                    price_per_hour=header.get("pricePerHour"),
                    currency=header.get("currency"),
                    config=header.get("config"),
                )
                continue
            except (JobFinished, RateLimited):
                raise
            except APIError as exc:  # refused for good (quota, validation): not sendable
                if not (isinstance(exc, QuotaExceeded) or 400 <= exc.status < 500):
                    raise
                print(f"jobwatch sync: {job_id}: an update was refused: {clean(exc)}")
            break
        spool_mod.mark_done(pending.path, update_id)
        sent += 1
    if pending.completion is not None:
        # completed already: this sync ran before, or another reporter finished it
        with contextlib.suppress(JobFinished):
            client.request("POST", f"{path}/complete", json_body=_dated(pending.completion))
    return sent


def _dated(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its ``sentAt`` (now), so that the server dates the job by when
    the request was made (its ``timestamp``), not by this sync: run on the machine
    that ran the job, or one whose clock agrees with it."""
    composed = parse_ts(body.get("timestamp"))
    return body if composed is None else {**body, **sent_late(composed, time.time())}
