"""The thread that marks silent jobs stalled (:func:`jobwatch.server.core.alerts.alert_rules.stall`),
jobs whose process reports but whose training code stopped hung
(:func:`jobwatch.server.core.alerts.hangs.hang`), and silent or straggling workers of
distributed jobs (:mod:`jobwatch.server.core.workers`).

Every ``interval`` seconds it asks the store for running jobs silent longer
than ``stall_after`` and marks each one under its row lock; with several
processes on one database each runs a watchdog, and the row lock makes sure
only one of them emits a job's ``JOB_STALLED``.
"""

from __future__ import annotations

import logging
import threading

from jobwatch.server.core.alerts.hangs import DEFAULT_HANG_AFTER
from jobwatch.server.storage.store import Store

log = logging.getLogger(__name__)


class StallWatchdog:
    """Marks stalled jobs every ``interval`` seconds until :meth:`close`.

    Parameters
    ----------
    store:
        Where the jobs are.
    stall_after:
        Seconds without an update after which a running job is stalled (or ten
        of its usual update intervals if that is longer).
    interval:
        Seconds between two checks; 0 starts no thread (call :meth:`check`).
    hang_after:
        Seconds without a call from a reporting job's training code after which
        it is hung (or ten of its usual intervals between calls, or what it said
        it may take, if longer).
    """

    def __init__(
        self,
        store: Store,
        stall_after: float,
        interval: float,
        hang_after: float = DEFAULT_HANG_AFTER,
    ) -> None:
        if not stall_after > 0:
            raise ValueError(f"stall_after must be > 0 seconds, got {stall_after!r}")
        if not hang_after > 0:
            raise ValueError(f"hang_after must be > 0 seconds, got {hang_after!r}")
        self.store = store
        self.stall_after = stall_after
        self.hang_after = hang_after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="jobwatch-stall-watchdog", daemon=True
            )
            self._thread.start()

    def check(self) -> list[str]:
        """Mark the jobs stalled now, then the jobs hung now, and the workers of
        distributed jobs silent (after ``stall_after`` too) or straggling;
        returns the ids of the jobs this call marked stalled or hung."""
        marked = []
        for job_id in self.store.stalled_candidates(self.stall_after):
            if self.store.mark_stalled(job_id, self.stall_after):
                marked.append(job_id)
        for job_id in self.store.hung_candidates(self.hang_after):
            if self.store.mark_hung(job_id, self.hang_after):
                marked.append(job_id)
        for job_id in self.store.distributed_running():
            self.store.check_workers(job_id, self.stall_after)
        return marked

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception as exc:  # a database outage: try again next time
                log.warning("jobwatch: checking for stalled jobs failed: %s", exc)

    def close(self) -> None:
        """Stop the thread (a check in progress finishes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
