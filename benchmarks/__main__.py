"""``python -m benchmarks [--quick] [--only GROUP ...]``: print the table."""

from __future__ import annotations

import argparse
import time

from benchmarks import (
    attacks,
    capture,
    costs,
    dom_latency,
    fanout,
    fleet,
    history,
    idle,
    ingest,
    integrations,
    kernel,
    log_latency,
    memory,
    peers,
    queries,
    reporter,
    scale,
    slowdisk,
    soak,
    startup,
    sync,
    system,
    training,
)
from benchmarks.report import machine, markdown

SUITES = {
    "ingest": ingest.run,
    "reporter": reporter.run,
    "system": system.run,
    "fanout": fanout.run,
    "fleet": fleet.run,
    "queries": queries.run,
    "costs": costs.run,
    "history": history.run,
    "memory": memory.run,
    "sync": sync.run,
    "soak": soak.run,
    "idle": idle.run,
    "scale": scale.run,
    "attacks": attacks.run,
    "startup": startup.run,
    "slowdisk": slowdisk.run,
    "training": training.run,
    "kernel": kernel.run,
    "integrations": integrations.run,
    "capture": capture.run,
    "peers": peers.run,
    "latency": log_latency.run,
    "dom-latency": dom_latency.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITES), help="run only these groups")
    args = parser.parse_args()
    started = time.monotonic()
    rows = []
    for name in args.only or SUITES:
        rows.extend(SUITES[name](args.quick))
    print(f"machine: {machine()}")
    print(markdown(rows))
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
