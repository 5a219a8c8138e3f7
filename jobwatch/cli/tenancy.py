"""``jobwatch tenants``, ``jobwatch tokens`` and ``jobwatch share``: the admin API from a shell.

Each command talks to a running server (``--url``, default ``$JOBWATCH_URL``)
with ``--token`` (default ``$JOBWATCH_TOKEN``): the admin token for
``tenants`` and ``tokens``, the job's tenant write token (or the admin's)
for ``share``. A new token is printed once, alone on the last line, so a
script can take it with ``| tail -n 1``; lists never show tokens.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from jobwatch.cli.connect import UsageError, connect
from jobwatch.contract.admin import expiry_limit, expiry_problem
from jobwatch.contract.basics import ascii_float, ascii_int
from jobwatch.view.terminal_safe import clean

__all__ = ["add_parsers", "run"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STATES = {"active": "in force", "expired": "expired", "revoked": "revoked"}
"""How ``tokens list`` shows a token's ``state``."""


def _duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h`` or ``7d`` as seconds (> 0)."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = ascii_float(number) * _UNITS[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration such as 90s, 15m, 12h or 7d, not {text!r}")
    return seconds


def _count(text: str) -> int:
    try:
        value = ascii_int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a whole number >= 0 (0: no limit), not {text!r}")
    return value


def _server_arguments(parser: argparse.ArgumentParser, token_help: str) -> None:
    parser.add_argument("--url", help="server URL (default $JOBWATCH_URL or http://127.0.0.1:8765)")
    parser.add_argument("--token", help=f"{token_help} (default $JOBWATCH_TOKEN)")


def add_parsers(commands: Any) -> None:
    """Add ``tenants``, ``tokens`` and ``share`` to the ``jobwatch`` subcommands."""
    tenants = commands.add_parser("tenants", help="create and list tenants (admin token)")
    actions = tenants.add_subparsers(dest="tenants_command", required=True, metavar="ACTION")
    put = actions.add_parser("create", help="create a tenant, or set its quotas")
    put.add_argument("name", help="1-32 of a-z 0-9 -; its job ids start with NAME:")
    put.add_argument("--max-jobs", type=_count, help="jobs stored (default 10000; 0: no limit)")
    put.add_argument("--max-bytes", type=_count, help="bytes of logs, samples, metrics (10 GiB)")
    put.add_argument("--max-connections", type=_count, help="WebSockets per process (100)")
    listing = actions.add_parser("list", help="list tenants with their quotas and usage")
    for sub in (put, listing):
        _server_arguments(sub, "the admin token")

    tokens = commands.add_parser("tokens", help="create, list and revoke tokens (admin token)")
    actions = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a token and print it (shown only once)")
    create.add_argument("--kind", required=True, choices=("write", "read", "worker", "share"))
    create.add_argument("--tenant", help="its tenant (needed for write and read)")
    create.add_argument("--job", dest="job_id", help="the one job of a worker or share token")
    create.add_argument("--label", help="a note for people, e.g. who holds it")
    create.add_argument(
        "--expires",
        type=_duration,
        help="e.g. 12h or 30d (share: default 7d, most 365d; others: most 3650d)",
    )
    listing = actions.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--tenant", help="only this tenant's")
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID", help="the id `tokens list` shows")
    for sub in (create, listing, revoke):
        _server_arguments(sub, "the admin token")

    share = commands.add_parser("share", help="share a job read-only; print the link")
    share.add_argument("job_id", metavar="JOB", help="the job id")
    share.add_argument("--expires", type=_duration, help="e.g. 12h or 30d (default 7d, most 365d)")
    share.add_argument("--label", help="a note for people")
    _server_arguments(share, "the job's tenant write token")


def _check_expiry(args: argparse.Namespace) -> None:
    """Refuse an ``--expires`` past the limit of the token it makes, before asking
    the server (which would refuse it too, with the same limit).

    Raises
    ------
    UsageError
        One line naming the limit in days.
    """
    expires = getattr(args, "expires", None)
    if expires is None:
        return
    kind = "share" if args.command == "share" else args.kind
    if expiry_problem(kind, expires) is not None:
        what = "a share link" if kind == "share" else f"a {kind} token"
        raise UsageError(
            f"--expires is at most {expiry_limit(kind) / 86400:.0f}d for {what} "
            f"(got {expires / 86400:g}d); a longer one is refused, never shortened"
        )


def run(args: argparse.Namespace) -> int:
    """Run ``tenants``, ``tokens`` or ``share``; returns the exit code (0).

    Raises
    ------
    UsageError
        ``--expires`` past the token's limit (365 days for a share link, ten
        years for the others).
    """
    _check_expiry(args)
    with connect(args.url, token=args.token) as client:
        if args.command == "share":
            made = client.share_job(args.job_id, expires_in=args.expires, label=args.label)
            print(f"share {made['share']['id']} expires {made['share']['expiresAt']}")
            print(clean(made["url"], single_line=True))
            return 0
        if args.command == "tenants":
            return _tenants(client, args)
        return _tokens(client, args)


def _tenants(client: Any, args: argparse.Namespace) -> int:
    if args.tenants_command == "create":
        quotas = {
            "maxJobs": args.max_jobs,
            "maxBytes": args.max_bytes,
            "maxConnections": args.max_connections,
        }
        body = {k: v for k, v in quotas.items() if v is not None}
        tenant = client.request("PUT", f"/api/admin/tenants/{args.name}", json_body=body)["tenant"]
        _print_tenants([tenant])
        return 0
    _print_tenants(client.request("GET", "/api/admin/tenants")["tenants"])
    return 0


def _tokens(client: Any, args: argparse.Namespace) -> int:
    if args.tokens_command == "create":
        body = {
            "kind": args.kind,
            "tenant": args.tenant,
            "jobId": args.job_id,
            "label": args.label,
            "expiresIn": args.expires,
        }
        made = client.request(
            "POST", "/api/admin/tokens", json_body={k: v for k, v in body.items() if v is not None}
        )
        _print_tokens([made["token"]])
        print(clean(made.get("url") or made["secret"], single_line=True))
        return 0
    if args.tokens_command == "revoke":
        revoked = client.request("DELETE", f"/api/admin/tokens/{args.token_id}")["token"]
        _print_tokens([revoked])
        return 0
    params = {"tenant": args.tenant}
    _print_tokens(client.request("GET", "/api/admin/tokens", params=params)["tokens"])
    return 0


def _print_tenants(tenants: list[dict[str, Any]]) -> None:
    for tenant in tenants:
        quotas, usage = tenant["quotas"], tenant["usage"]
        print(
            clean(
                f"{tenant['name']}  jobs {usage['jobs']}/{quotas['maxJobs'] or 'no limit'}  "
                f"bytes {usage['bytes']}/{quotas['maxBytes'] or 'no limit'}  "
                f"connections per process {quotas['maxConnections'] or 'no limit'}",
                single_line=True,
            )
        )


def _print_tokens(tokens: list[dict[str, Any]]) -> None:
    for token in tokens:
        state = _STATES.get(token.get("state") or "", token.get("state") or "unknown")
        parts = [token["id"], token["kind"], token["tenant"] or "-", token["jobId"] or "-"]
        parts += [state, f"expires {token['expiresAt'] or 'never'}", token["label"] or ""]
        print(clean("  ".join(parts).rstrip(), single_line=True))
