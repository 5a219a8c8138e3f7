"""Idle soak: one subscription stays quiet through a proxy that cuts connections
idle for 60 s (AWS ALB's default), against ``jobwatch serve`` as shipped
(pings every 25 s), for 10 min 30 s (``--quick``: 70 s, one proxy timeout and
a little more).

tests/system/test_idle.py proves the same with every interval divided by 20; this
is the run at full length. It raises ``AssertionError`` (with the moment) if
the proxy cuts the connection or the subscription leaves ``live``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.report import Row
from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.idle_proxy import stay_quiet

PROXY_IDLE_TIMEOUT = 60.0
"""Seconds without a byte after which the proxy closes a connection."""
PING_INTERVAL = 25.0
"""Seconds between the shipped server's WebSocket pings (``WS_PING_INTERVAL``)."""
FULL_SECONDS = 630.0
QUICK_SECONDS = 70.0


def run(quick: bool) -> list[Row]:
    """One row: the longest silence on the wire, against the ping interval."""
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(serve_command(Path(tmp) / "idle.db"))
        try:
            result = stay_quiet(server.url, PROXY_IDLE_TIMEOUT, seconds, report_every=120)
        finally:
            server.stop()
    return [
        Row(
            "idle",
            f"a subscription quiet for {seconds:.0f} s through a proxy cutting after "
            f"{PROXY_IDLE_TIMEOUT:.0f} s idle",
            f"longest gap {result.longest_quiet:.1f} s; connections {result.accepted}, "
            f"cut {result.idle_closes}, reconnects {result.reconnects}",
            result.longest_quiet / PING_INTERVAL,
            f"ratio ~1.0 (gap / {PING_INTERVAL:.0f} s ping interval), well under "
            f"{PROXY_IDLE_TIMEOUT / PING_INTERVAL:.1f}",
            f"the event after the quiet time arrived ({result.event['type']} seq {result.seq})",
        )
    ]
