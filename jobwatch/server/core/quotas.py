"""How much one server stores: jobs, log bytes per job, log bytes in all.

A client with the write token (or any client of a server without one) could
otherwise fill the disk: one made 83,625 jobs in 30 s, another wrote 400 MB of
log lines in 9 s. Past a quota a write is refused with 507 and a message
naming the setting; nothing of it is stored. Finishing a job is never
refused, and ``jobwatch prune`` (retention) frees room again: the counts are
of what is stored now, so deleted jobs no longer count.

Log text, per-GPU sample data (a sample may carry about 1 MiB of it) and
training-metric points (1,000 an update) grow without bound: the total quota
counts all three; the per-job quota counts log text (a job's samples and
metrics arrive at its own pace and are bounded by the total). A job row is
about 1 KB, so the job count bounds the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobwatch.contract.requests import ProgressUpdate
from jobwatch.errors import QuotaExceeded

DEFAULT_MAX_JOBS = 100_000
"""Jobs one server keeps by default (finished ones count until pruned)."""
DEFAULT_MAX_JOB_LOG_BYTES = 1024**3
"""Bytes of log text one job may store by default (1 GiB)."""
TOTAL_REFRESH = 5.0
"""Seconds a read of the stored total is reused before it is read again."""


@dataclass(frozen=True)
class Quotas:
    """The limits; 0 turns one off.

    Attributes
    ----------
    max_jobs:
        Jobs stored at once.
    max_job_log_bytes:
        Bytes of log messages (UTF-8) one job may store.
    max_log_bytes:
        Bytes of log messages all jobs together may store (default: no limit;
        size it to the disk).
    """

    max_jobs: int = DEFAULT_MAX_JOBS
    max_job_log_bytes: int = DEFAULT_MAX_JOB_LOG_BYTES
    max_log_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("max_jobs", "max_job_log_bytes", "max_log_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0 (0: no limit), got {value!r}")

    def check_new_job(self, stored_jobs: int) -> None:
        """Refuse a new job when ``stored_jobs`` already reach :attr:`max_jobs` (507)."""
        if self.max_jobs and stored_jobs >= self.max_jobs:
            raise QuotaExceeded(
                f"the server stores {stored_jobs} jobs, the most allowed (--max-jobs "
                f"{self.max_jobs}); prune finished jobs (jobwatch prune) or raise the quota"
            )

    def check_logs(self, job_id: str, job_bytes: int, added: int) -> None:
        """Refuse ``added`` bytes of log text for a job holding ``job_bytes`` (507)."""
        if self.max_job_log_bytes and job_bytes + added > self.max_job_log_bytes:
            raise QuotaExceeded(
                f"job {job_id!r} stores {job_bytes} bytes of log lines; {added} more would pass "
                f"its quota (--max-job-log-bytes {self.max_job_log_bytes}); nothing was stored"
            )

    def check_total(self, total_bytes: int, added: int) -> None:
        """Refuse ``added`` bytes (log text, per-GPU samples, training metrics) on a
        server storing ``total_bytes`` of them (507)."""
        if self.max_log_bytes and total_bytes + added > self.max_log_bytes:
            raise QuotaExceeded(
                f"the server stores {total_bytes} bytes of log lines, per-GPU samples and "
                f"training metrics; {added} more would pass its quota (--max-log-bytes "
                f"{self.max_log_bytes}); prune finished jobs (jobwatch prune) or raise the "
                "quota; nothing was stored"
            )


def log_bytes(update: ProgressUpdate) -> int:
    """Bytes of log text ``update`` would store (its messages, UTF-8, as truncated)."""
    return sum(len(line.message.encode("utf-8")) for line in update.log_lines or ())


SCALAR_POINT_BYTES = 24
"""Bytes counted for one training-metric point beside its name (step, time, value)."""


def data_bytes(gpus_json: str | None, scalar_names: list[str]) -> int:
    """Bytes of other data an update would store: its per-GPU sample JSON
    (``gpus_json``, ``None`` without one) and one training-metric point per name
    in ``scalar_names`` (the name's UTF-8 bytes plus :data:`SCALAR_POINT_BYTES`)."""
    sample = len(gpus_json.encode("utf-8")) if gpus_json else 0
    points = sum(len(name.encode("utf-8")) + SCALAR_POINT_BYTES for name in scalar_names)
    return sample + points


class StoredTotal:
    """The log bytes stored in all, read at most every :data:`TOTAL_REFRESH` seconds
    and kept current in between by this process's own writes.

    Parameters
    ----------
    read:
        Returns the stored total (a ``SUM`` over the jobs) read with the
        database connection it is given.
    """

    def __init__(self, read: Callable[[Any], int]) -> None:
        self._read = read
        self._value = 0
        self._read_at = -float("inf")

    def get(self, conn: Any) -> int:
        """The stored total, read again on ``conn`` when the last read is too old."""
        now = time.monotonic()
        if now - self._read_at >= TOTAL_REFRESH:
            self._value, self._read_at = self._read(conn), now
        return self._value

    def add(self, added: int) -> None:
        """Count ``added`` bytes this process just stored."""
        self._value += added

    def forget(self) -> None:
        """Read the total again next time (after a prune)."""
        self._read_at = -float("inf")
