"""System metrics for progress updates: CPU, memory, disk and network, read with psutil.

:class:`SystemSampler` reads the system metrics of the metrics table
(:data:`~jobwatch.contract.metrics.SYSTEM_METRICS`), each where its
:class:`~jobwatch.contract.metrics.PsutilQuery` says: ``cpuUtilization`` (%,
every CPU of the machine since the previous sample), ``memoryUsed`` and
``memoryTotal`` (MB, the machine's), ``processMemory`` (MB, the resident
memory of the reporting process and its children, e.g. DataLoader workers),
``diskUsed`` and ``diskTotal`` (MB, the working directory's filesystem), and
``diskRead``, ``diskWrite``, ``networkIn``, ``networkOut`` (bytes per second
since the previous sample, every disk and interface of the machine). A value
psutil cannot read here (no disk counters in a container, a ``/proc`` that
denies access) is ``None``; so is a rate or CPU figure in the first sample,
which has nothing before it.

Cost: one sample is a handful of reads of ``/proc`` (about 0.1-0.5 ms on
Linux; ``python -m benchmarks --only system``). Listing the process's
children means reading every process of the machine (``psutil`` reads each
one's parent), milliseconds on a busy machine: the list is made again only
every :data:`TREE_REFRESH` seconds, and a child that ended is dropped at the
next sample. Nothing is read at import; psutil loads when a sampler is made.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from jobwatch.contract.metrics import SYSTEM_METRICS, PsutilQuery
from jobwatch.report.samples import clean_flat

__all__ = ["TREE_REFRESH", "SystemSampler"]

_log = logging.getLogger(__name__)

TREE_REFRESH = 30.0
"""Seconds between two listings of the reporting process's children (each reads
every process of the machine); children that end are dropped at once."""
_TREE = "process_tree."
_QUERIES = tuple((m.wire, m.psutil) for m in SYSTEM_METRICS if m.psutil is not None)
"""(wire name, :class:`PsutilQuery`) of each system metric (every one has a query)."""


class SystemSampler:
    """Reads the system metrics; call it (from any one thread at a time) for a sample.

    Parameters
    ----------
    workdir:
        The directory whose filesystem ``diskUsed`` and ``diskTotal`` measure;
        default the working directory now.
    clock:
        Monotonic seconds, for the rates.

    Notes
    -----
    Making a sampler imports psutil and takes a first reading (so that the
    first sample's rates cover the time since), here, in the calling thread:
    the reporter's sender thread, which calls it later, must import nothing.
    The process whose memory is summed is the one that makes the sampler.
    """

    def __init__(
        self, workdir: str | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        import psutil

        self._psutil: Any = psutil
        self._errors = (psutil.Error, OSError)
        self._clock = clock
        self._args = {"workdir": os.getcwd() if workdir is None else workdir}
        self._root = psutil.Process()
        self._tree: list[Any] = [self._root]
        self._tree_at = -math.inf
        self._previous: dict[str, tuple[float, float]] = {}
        """Wire name of a rate -> (clock, counter) of the previous sample."""
        self._cpu_threads: set[int] = set()
        """Threads that have called ``cpu_percent`` (psutil measures from each one's
        previous call: a thread's first answer covers no time)."""
        self()

    def __call__(self) -> dict[str, float | None]:
        """One sample: every system metric by its wire name, in wire order.

        Returns
        -------
        dict
            ``{"cpuUtilization": ..., ..., "networkOut": ...}``; each value a
            number in the wire unit, cleaned to the contract
            (:func:`~jobwatch.report.samples.clean_flat`), or ``None``. Never
            raises: an unexpected error is logged at debug level and gives
            ``None`` for the metrics it touched.
        """
        now = self._clock()
        answers: dict[tuple[str, tuple[str, ...], tuple[tuple[str, bool], ...]], Any] = {}
        values: dict[str, float | None] = {}
        for wire, query in _QUERIES:
            key = (query.function, query.args, query.keywords)
            if key not in answers:
                answers[key] = self._read(query)
            try:
                values[wire] = self._value(wire, query, answers[key], now)
            except Exception:  # the training loop must never see a metrics failure
                _log.debug("system metric %s failed", wire, exc_info=True)
                values[wire] = None
        return clean_flat(values)

    def _read(self, query: PsutilQuery) -> Any:
        """What psutil answers to ``query`` (a list of answers, one per process,
        for a process tree); ``None`` where it cannot answer."""
        try:
            if query.function.startswith(_TREE):
                return self._read_tree(query.function[len(_TREE) :])
            args = tuple(self._args[name] for name in query.args)
            answer = getattr(self._psutil, query.function)(*args, **dict(query.keywords))
            if query.function == "cpu_percent":
                thread = threading.get_ident()
                if thread not in self._cpu_threads:
                    self._cpu_threads.add(thread)
                    return None
            return answer
        except self._errors as exc:
            _log.debug("psutil %s failed: %s", query.function, exc)
        except Exception:  # the training loop must never see a metrics failure
            _log.debug("psutil %s failed", query.function, exc_info=True)
        return None

    def _read_tree(self, method: str) -> list[Any] | None:
        """``method`` called on the reporting process and each of its children."""
        now = self._clock()
        if now - self._tree_at >= TREE_REFRESH:
            self._tree_at = now
            try:
                self._tree = [self._root, *self._root.children(recursive=True)]
            except self._errors as exc:
                _log.debug("listing the process's children failed: %s", exc)
        answers, ended = [], []
        for process in self._tree:
            try:
                answers.append(getattr(process, method)())
            except self._errors:  # it ended (or is a zombie) since the listing
                ended.append(process)
        if ended:
            self._tree = [p for p in self._tree if p not in ended]
        return answers if self._root not in ended else None

    def _value(self, wire: str, query: PsutilQuery, answer: Any, now: float) -> float | None:
        """The metric in its wire unit from ``answer`` (a sum over a process tree)."""
        if answer is None:
            return None
        if isinstance(answer, list):
            value: float = sum(_pick(part, query.attribute) for part in answer)
        else:
            value = _pick(answer, query.attribute)
        if query.rate:
            previous = self._previous.get(wire)
            self._previous[wire] = (now, value)
            if previous is None or now <= previous[0] or value < previous[1]:
                return None  # no earlier reading, or the counter was reset
            value = (value - previous[1]) / (now - previous[0])
        if query.divisor is not None:
            value = value / query.divisor
        return value if query.digits is None else round(value, query.digits)


def _pick(answer: Any, attribute: str | None) -> float:
    return float(answer if attribute is None else getattr(answer, attribute))
