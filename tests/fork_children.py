"""Fork children from a process whose Reporter is busy, as PyTorch DataLoader workers are.

Run as ``python tests/fork_children.py URL JOB_ID CHILDREN`` (by
tests/report/test_reporter_fork.py). One parent thread logs, updates and uses the
logging handler in a tight loop (so the sender thread is always busy taking
lines under the outbox's lock) while the main thread forks ``CHILDREN``
children, at most ``_AT_ONCE`` alive at a time. Each child calls every
recording method under ``signal.alarm`` (so a deadlock kills it with SIGALRM
instead of hanging the test), then flushes to the server; its lines are
``error`` lines, the parent's ``info``. Prints one JSON
line: ``{"hung": n, "failed": n, "ok": n, "parent_delivered": bool}``.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import threading

from jobwatch import Reporter

_AT_ONCE = 8
_RECORD_ALARM_S = 5  # recording never waits: seconds are far more than it needs
_FLUSH_ALARM_S = 60  # a fresh sender's first requests, on a loaded machine


def child(reporter: Reporter, number: int, logger: logging.Logger) -> int:
    signal.alarm(_RECORD_ALARM_S)
    reporter.log(f"child {number}", "error")  # errors: the test finds them among the parent's
    reporter.update(50.0, f"child {number}")
    logger.error("child %d via logging", number)
    for _ in reporter.track(range(2), description=f"child {number}"):
        pass
    signal.alarm(_FLUSH_ALARM_S)
    delivered = reporter.flush(timeout=_FLUSH_ALARM_S - 5)
    signal.alarm(0)
    if not delivered:  # show where the child's threads are, for the test's message
        faulthandler.dump_traceback(all_threads=True)
    return 0 if delivered else 3


def main(url: str, job_id: str, children: int) -> None:
    # a small buffer: the sender is always taking full batches, under the outbox's lock
    reporter = Reporter(job_id, url=url, gpu=False, interval=0.05, max_log_lines=2000)
    logger = logging.getLogger("fork-test")
    logger.setLevel(logging.INFO)
    logger.addHandler(reporter.logging_handler())
    stop = threading.Event()

    def busy() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            reporter.update(step % 100)
            reporter.log(f"parent {step}")
            if step % 100 == 0:
                logger.info("parent %d via logging", step)

    worker = threading.Thread(target=busy)
    worker.start()
    statuses: list[int] = []
    alive: set[int] = set()
    for number in range(children):
        while len(alive) >= _AT_ONCE:
            pid, status = os.wait()
            alive.discard(pid)
            statuses.append(status)
        pid = os.fork()
        if pid == 0:
            os._exit(child(reporter, number, logger))
        alive.add(pid)
    for pid in alive:
        statuses.append(os.waitpid(pid, 0)[1])
    stop.set()
    worker.join()
    hung = sum(1 for s in statuses if os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGALRM)
    ok = sum(1 for s in statuses if os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0)
    report = {"hung": hung, "failed": len(statuses) - hung - ok, "ok": ok}
    report["parent_delivered"] = reporter.flush(timeout=30)
    print(json.dumps(report), flush=True)
    reporter.close(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
