"""The ``jobwatch`` command: ``serve``, ``jobs``, ``report``, ``watch``, ``top``, ``costs``,
``sync``, ``tenants``, ``tokens``, ``share`` and more.

Exit codes: 0 success, 1 the server refused the request, 2 bad usage,
3 the server could not be reached or is
temporarily unavailable (502, 503, 504), 4 ``watch``: the job ended failed or
cancelled, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobwatch._version import __version__
from jobwatch.cli import costs as costs_command
from jobwatch.cli import sync as sync_command
from jobwatch.cli import tenancy
from jobwatch.cli.connect import UsageError, connect
from jobwatch.contract.basics import JOB_STATUSES, ascii_float, ascii_int
from jobwatch.errors import APIError, ConnectionError, MissingExtra
from jobwatch.extras import require
from jobwatch.server.storage.files import default_db_path
from jobwatch.view.formatting import format_duration
from jobwatch.view.log_filter import LogFilter
from jobwatch.view.terminal_safe import clean

if TYPE_CHECKING:
    from jobwatch.client.rest import Client
    from jobwatch.contract.answers import Job

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_JOB_FAILED = 4

TEMPORARY_STATUSES = frozenset({502, 503, 504})
"""Answers meaning "try again shortly" (a proxy with no server, the database away):
exit 3 like an unreachable server, not 1 like a refusal."""


def _bounded(what: str, kind: type[float], low: float, high: float) -> Any:
    """An argparse type: a ``kind`` number from ``low`` to ``high`` named ``what`` in errors."""
    noun = "an integer" if kind is int else "a number"

    def convert(text: str) -> float:
        try:
            value = (ascii_int if kind is int else ascii_float)(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(
                f"{what} must be {noun} from {low:g} to {high:g}, got {text!r}"
            )
        return value

    return convert


_port = _bounded("port", int, 0, 65535)
_price = _bounded("price", float, 0, 1e9)
_percent = _bounded("progress", float, 0, 100)
_days = _bounded("days", float, 0, 1e6)
_seconds = _bounded("seconds", float, 0, 60)
_count = _bounded("count", int, 1, 1000)
_workers = _bounded("workers", int, 1, 64)


def _rank(text: str) -> int:
    """An argparse type: a rank of a distributed job (:func:`~jobwatch.view.log_filter.parse_rank`)."""
    from jobwatch.view.log_filter import parse_rank

    try:
        return parse_rank(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _node(text: str) -> str:
    """An argparse type: a node of a distributed job (:func:`~jobwatch.view.log_filter.parse_node`)."""
    from jobwatch.view.log_filter import parse_node

    try:
        return parse_node(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_log_filter(parser: argparse.ArgumentParser, whose: str) -> None:
    parser.add_argument(
        "--rank",
        type=_rank,
        help=f"{whose} only the log lines of this rank of a distributed job (0 to worldSize - 1)",
    )
    parser.add_argument(
        "--node",
        type=_node,
        help=f"{whose} only the log lines of this node of a distributed job (as its workers "
        "name it; by default the hostname)",
    )


def _log_line(text: str) -> dict[str, str]:
    from jobwatch.contract.requests import LOG_LEVELS

    level, colon, message = text.partition(":")
    if not colon or level.strip().lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"expected LEVEL:MESSAGE with LEVEL one of {', '.join(LOG_LEVELS)}, got {text!r}"
        )
    return {"level": level.strip().lower(), "message": message}


def _json_value(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not allowed")

    try:
        return json.loads(text, parse_constant=reject)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"result must be JSON, e.g. '{{\"accuracy\": 0.93}}': {exc}"
        ) from None


def _database_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--database-url",
        "--db",
        dest="db",
        default=os.environ.get("JOBWATCH_DATABASE_URL") or None,
        metavar="URL",
        help=f"{what} (default $JOBWATCH_DATABASE_URL, else {default_db_path()})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jobwatch`` command."""
    parser = argparse.ArgumentParser(
        prog="jobwatch", description="Watch machine-learning jobs live."
    )
    parser.add_argument("--version", action="version", version=f"jobwatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the jobwatch server")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0 picks one)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="server processes (default 1; more need --database-url postgresql:// and --redis-url)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback without a token",
    )
    from jobwatch.server.deploy.settings import add_arguments

    add_arguments(serve)  # every setting's flag, from the one table docs/server.md shows

    prune = commands.add_parser(
        "prune", help="delete jobs finished more than --days ago, with their samples and logs"
    )
    prune.add_argument("--days", type=_days, required=True, help="age in days (>= 0)")
    _database_argument(prune, "database")

    demo = commands.add_parser(
        "demo", help="train a small network on scikit-learn's digits and watch it live"
    )
    demo.add_argument("--epochs", type=_count, default=30, help="epochs, 1-1000 (default 30)")
    demo.add_argument(
        "--pace", type=_seconds, default=0.2, help="seconds to wait per epoch, to watch (0.2)"
    )
    demo.add_argument("--price-per-hour", type=_price, default=2.5, help="for the cost (2.5)")

    jobs = commands.add_parser("jobs", help="create and list jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    create = jobs_commands.add_parser("create", help="create a job and print its id")
    create.add_argument("--name", help="a name for people")
    create.add_argument("--id", dest="job_id", help="the job id (default: generated)")
    create.add_argument("--price-per-hour", type=_price, help="price per hour, in --currency")
    create.add_argument("--currency", help="currency of the price (default QUBIC)")
    create.add_argument("--worker-id", help="bind the job to this worker")
    listing = jobs_commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--status", choices=JOB_STATUSES)
    listing.add_argument("--limit", type=_count, default=20, help="at most this many (1-1000)")
    for sub in (create, listing):
        sub.add_argument(
            "--url", help="server URL (default $JOBWATCH_URL or http://127.0.0.1:8765)"
        )

    report = commands.add_parser(
        "report",
        help="report progress, log lines or the end of a job (for shell scripts)",
        description="Create the job if needed (PUT), send one progress update, then "
        "complete or fail it if asked. Without --progress, log lines and --operation "
        "go with the job's current progress.",
    )
    report.add_argument("job_id", metavar="JOB", help="the job id")
    report.add_argument("--progress", type=_percent, help="percent done, 0-100")
    report.add_argument("--operation", help="what the job is doing, e.g. 'epoch 3/10'")
    report.add_argument(
        "--log",
        type=_log_line,
        action="append",
        default=[],
        metavar="LEVEL:MESSAGE",
        help="a log line, LEVEL info, warning or error (repeatable)",
    )
    finish = report.add_mutually_exclusive_group()
    finish.add_argument("--complete", action="store_true", help="mark the job completed")
    finish.add_argument("--fail", metavar="MESSAGE", help="mark the job failed with MESSAGE")
    report.add_argument("--result", type=_json_value, help="JSON result stored by --complete")
    report.add_argument("--worker-id", help="who reports (default: this machine's hostname)")
    report.add_argument("--url", help="server URL (default $JOBWATCH_URL or http://127.0.0.1:8765)")

    watch = commands.add_parser(
        "watch",
        help="show a job live until it ends",
        description="Show a job's progress, time remaining, cost, GPU metrics and log lines "
        "live until it ends. Exit 0 when it completed, 4 when it failed or was cancelled.",
    )
    watch.add_argument("job_id", metavar="JOB", help="the job id, or a share link")
    watch.add_argument("--url", help="server URL (default $JOBWATCH_URL or http://127.0.0.1:8765)")
    watch.add_argument(
        "--token", help="bearer token for the server; prefer setting $JOBWATCH_TOKEN (the default)"
    )
    watch.add_argument(
        "--wait",
        action="store_true",
        help="wait for a job that does not exist yet (instead of exit 1), e.g. one a worker"
        " is about to create",
    )
    _add_log_filter(watch, "show")
    top = commands.add_parser(
        "top",
        help="every job live in the terminal (htop style)",
        description="A live table of every job: status, progress, time remaining, cost, GPU, last "
        "update, and the cost of the running jobs and of today. Keys: s sort, r reverse, "
        "f status filter, / name filter, l rank and node of the log lines, Enter watch the "
        "job, q quit.",
    )
    top.add_argument("--url", help="server URL (default $JOBWATCH_URL or http://127.0.0.1:8765)")
    top.add_argument("--token", help="bearer token for the server (default $JOBWATCH_TOKEN)")
    top.add_argument("--status", choices=JOB_STATUSES, help="follow only jobs of this status")
    _add_log_filter(top, "the watch that Enter opens shows")
    costs_command.add_parser(commands)
    sync_command.add_parser(commands)
    tenancy.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "prune":
            return _prune(args)
        if args.command == "report":
            return _report(args)
        if args.command == "watch":
            return _watch(args)
        if args.command == "top":
            return _top(args)
        if args.command == "costs":
            return costs_command.run(args)
        if args.command == "sync":
            return sync_command.run(args)
        if args.command in ("tenants", "tokens", "share"):
            return tenancy.run(args)
        return _jobs(args)
    except UsageError as exc:
        print(f"jobwatch {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except APIError as exc:  # its message is the server's: cleaned like any remote text
        if exc.status in TEMPORARY_STATUSES:
            print(f"jobwatch: the server is unavailable right now: {clean(exc)}", file=sys.stderr)
            return EXIT_UNREACHABLE
        print(f"jobwatch: {clean(exc)}", file=sys.stderr)
        return EXIT_API_ERROR
    except ConnectionError as exc:
        print(f"jobwatch: cannot reach the server: {clean(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except MissingExtra as exc:
        print(f"jobwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    require("server", "jobwatch serve")
    from jobwatch.errors import SettingsError
    from jobwatch.server.deploy.run import gunicorn_unavailable, listen_problem
    from jobwatch.server.deploy.settings import FLAG_NAMES, ServerSettings, exposure_problem

    try:  # a flag wins over its JOBWATCH_* variable; list flags add to its items
        settings = ServerSettings.from_args(args, os.environ)
    except SettingsError as exc:
        print(f"jobwatch serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    no_gunicorn = gunicorn_unavailable()
    problem = (
        (
            f"--workers {args.workers} needs gunicorn, which cannot run here ({no_gunicorn});"
            " serve with --workers 1"
            if no_gunicorn is not None and args.workers > 1
            else None
        )
        or (
            None
            if args.insecure
            else exposure_problem(
                args.host,
                settings.write_token,
                ". Pass --token (or set JOBWATCH_TOKEN), or --insecure if the network is trusted.",
            )
        )
        or settings.problem(workers=args.workers, names=FLAG_NAMES)
        or listen_problem(args.host, args.port)
    )
    if problem:
        print(f"jobwatch serve: {problem}", file=sys.stderr)
        return EXIT_USAGE
    unreachable = _unreachable("serve", settings.database, settings.redis_url)
    if unreachable is not None:
        return unreachable
    os.environ.update(settings.worker_env())  # the worker processes read them
    if no_gunicorn is not None:
        from jobwatch.server.deploy.run import run_single

        run_single(
            args.host, args.port, settings.config(), access_log=args.access_log, reason=no_gunicorn
        )
        return 0
    from jobwatch.server.deploy.run import run_gunicorn

    run_gunicorn(
        args.host, args.port, settings.config(), access_log=args.access_log, workers=args.workers
    )
    return 0


def _unreachable(command: str, database: str, redis_url: str | None) -> int | None:
    """Connect once to the database and Redis; print one line and return exit code 3
    when one cannot be reached, else ``None``."""
    from jobwatch.server.deploy.settings import reachability_problem

    unreachable = reachability_problem(database, redis_url)
    if unreachable:
        print(f"jobwatch {command}: {clean(unreachable)}", file=sys.stderr)  # a driver's words
        return EXIT_UNREACHABLE
    return None


def _demo(args: argparse.Namespace) -> int:
    require("demo", "jobwatch demo")
    from jobwatch.cli.demo import run_demo

    return run_demo(epochs=args.epochs, pace=args.pace, price_per_hour=args.price_per_hour)


def _prune(args: argparse.Namespace) -> int:
    require("server", "jobwatch prune")
    from jobwatch.server.deploy.settings import missing_packages, settings_problem
    from jobwatch.server.storage.files import sqlite_file_problem
    from jobwatch.server.storage.store import Store

    database = args.db or str(default_db_path())
    problem = (
        settings_problem(database, None, 1)
        or sqlite_file_problem(database, must_exist=True)
        or missing_packages(database, None)
    )
    if problem:
        print(f"jobwatch prune: {problem}", file=sys.stderr)
        return EXIT_USAGE
    refused = _unreachable("prune", database, None)
    if refused is not None:
        return refused
    store = Store(database, timeout=None)  # a large prune may take long
    try:
        deleted = store.prune(args.days * 86400)
    finally:
        store.close()
    print(
        f"deleted {deleted['jobs']} jobs, {deleted['samples']} samples, "
        f"{deleted['logLines']} log lines finished more than {args.days:g} days ago"
    )
    return 0


def _jobs(args: argparse.Namespace) -> int:
    with connect(args.url) as client:
        if args.jobs_command == "create":
            job = client.create_job(
                job_id=args.job_id,
                name=args.name,
                price_per_hour=args.price_per_hour,
                currency=args.currency,
                worker_id=args.worker_id,
            )
            print(clean(job["id"], single_line=True))
            return 0
        listing = client.list_jobs(status=args.status, limit=args.limit)
        _print_jobs(listing["jobs"], listing["total"])
        return 0


def _report(args: argparse.Namespace) -> int:
    from jobwatch.client.rest import Client

    if args.result is not None and not args.complete:
        print("jobwatch report: --result needs --complete", file=sys.stderr)
        return EXIT_USAGE
    worker_id = args.worker_id or socket.gethostname()
    try:
        client = Client(args.url)
    except ValueError as exc:
        print(f"jobwatch report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with client:
        job = client.ensure_job(args.job_id, worker_id=worker_id)
        progress = args.progress
        if progress is None and (args.log or args.operation is not None):
            progress = job["progress"]
        if progress is not None:
            reply = client.report_progress(
                args.job_id, worker_id, progress, args.operation, logs=args.log
            )
            remaining = reply["timeRemaining"]
            eta = "" if remaining is None else f", {format_duration(remaining)} remaining"
            print(
                clean(
                    f"{args.job_id}: {reply['status']} {reply['progress']:g}%{eta}",
                    single_line=True,
                )
            )
        if args.complete or args.fail is not None:
            status = "completed" if args.complete else "failed"
            job = client.complete_job(args.job_id, worker_id, status, args.result, args.fail)
            print(clean(f"{args.job_id}: {job['status']}", single_line=True))
    return 0


def _watch(args: argparse.Namespace) -> int:
    from jobwatch.client.rest import Client, share_link_parts
    from jobwatch.terminal.watch import Watcher

    job_id, url, token = args.job_id, args.url, args.token
    shared = share_link_parts(job_id)
    if shared is not None:  # a share link names the server, the job and the token
        url, job_id, token = url or shared[0], shared[1], shared[2]
    try:
        client = Client(url, token=token)
    except ValueError as exc:
        print(f"jobwatch watch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    shown = LogFilter(args.rank, args.node)
    with client:
        problem = _filter_problem(client, job_id, shown, args.wait)
        if problem is not None:
            print(f"jobwatch watch: {clean(problem)}", file=sys.stderr)
            return EXIT_USAGE
        state = Watcher(client, job_id, wait=args.wait, log_filter=shown).run()
    return 0 if state.job["status"] == "completed" else EXIT_JOB_FAILED


def _filter_problem(client: Client, job_id: str, shown: LogFilter, wait: bool) -> str | None:
    """Why ``--rank``/``--node`` can show no line of the job (a job that does not exist
    yet, waited for, is not checked)."""
    from jobwatch.errors import JobNotFound
    from jobwatch.view.log_filter import filter_problem

    if not shown.active:
        return None
    try:
        job = client.get_job(job_id)
    except JobNotFound:
        if wait:
            return None
        raise
    return filter_problem(job, shown)


def _top(args: argparse.Namespace) -> int:
    require("top", "jobwatch top")
    from jobwatch.client.rest import Client
    from jobwatch.terminal.top import TopApp

    try:
        client = Client(args.url, token=args.token)
    except ValueError as exc:
        print(f"jobwatch top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with client:
        client.list_jobs(limit=1)  # unreachable or refused: one line and its exit code
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            print(
                "jobwatch top: needs a terminal (stdin and stdout); for plain output use"
                " `jobwatch jobs list`",
                file=sys.stderr,
            )
            return EXIT_USAGE
        app = TopApp(client, args.status, log_filter=LogFilter(args.rank, args.node))
        code = app.run()
    if app.error is not None:
        print(f"jobwatch top: the live stream stopped: {app.error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return code or 0


def _print_jobs(jobs: list[Job], total: int) -> None:
    header = f"{'ID':<24} {'STATUS':<10} {'PROGRESS':>8}  {'PRICE':>12}  NAME"
    print(header)
    for job in jobs:
        price = job["pricePerHour"]
        cost = "-" if price is None else f"{price:g}/h {clean(job['currency'], single_line=True)}"
        job_id, status = (clean(job[key], single_line=True) for key in ("id", "status"))
        print(
            f"{job_id:<24} {status:<10} {job['progress']:>7.1f}%  {cost:>12}  "
            f"{clean(job['name'] or '', single_line=True)}"
        )
    print(f"({len(jobs)} of {total})")
