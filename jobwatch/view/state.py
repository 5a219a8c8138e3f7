"""What a front-end knows of one job, kept apart from any display.

:class:`MonitorState` takes the ``/monitor`` snapshot, stream events and
history pages, and answers what to show: header figures, chart series (at
most :data:`MAX_POINTS` samples) and new log lines. It does no IO and imports
no ipywidgets, so it is tested without a kernel and shared by every
front-end: ``jobwatch watch`` and the notebook monitor with its text fallback.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from jobwatch.contract.answers import (
    Alert,
    AlertData,
    CompletedData,
    JobEvent,
    LogLine,
    LogsData,
    Monitor,
    ProgressData,
    ScalarValue,
)
from jobwatch.contract.answers import Sample as WireSample
from jobwatch.contract.basics import FINISHED_STATUSES, parse_ts
from jobwatch.contract.gpu_identity import GpuId, gpu_ids, gpu_labels
from jobwatch.contract.job_fields import VIEWED_FIELDS
from jobwatch.contract.metrics import GPU_FIELDS, METRIC_FIELDS, SYSTEM_FIELDS

MAX_POINTS = 2_000
"""Most samples a monitor keeps for its charts."""
MAX_LOG_LINES = 1_000
"""Most log lines a monitor keeps."""
MAX_SCALAR_POINTS = 2_000
"""Most points a monitor keeps per training metric."""
MAX_ALERTS = 20
"""Most alerts a monitor keeps (the newest)."""


@dataclass(frozen=True)
class Sample:
    """One metrics sample: ``ts`` (s since the epoch), the flat fields (every metric of
    :data:`~jobwatch.contract.metrics.METRICS`, ``None`` where missing) and the per-GPU ones.

    ``gpus`` maps a GPU's key (its UUID, else ``index:<index>``; see
    :func:`jobwatch.contract.gpu_identity.gpu_ids`) to its fields, and ``ids`` the same
    key to its :class:`~jobwatch.contract.gpu_identity.GpuId`; both empty when the
    sample has no per-GPU detail. :func:`gpu_lines` gives the labels to show.
    """

    ts: float
    flat: dict[str, float | None]
    gpus: dict[str, dict[str, float | None]]
    ids: dict[str, GpuId] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Sample | None:
        """From a ``/metrics`` row or a ``JOB_PROGRESS`` ``metrics`` object; ``None`` if undated."""
        ts = parse_ts(raw.get("timestamp"))
        if ts is None:
            return None
        flat = {name: _number(raw.get(name)) for name in METRIC_FIELDS}
        entries = [gpu for gpu in raw.get("gpus") or [] if isinstance(gpu, dict)]  # parsed JSON
        ids = gpu_ids(entries)
        gpus = {
            gpu_id.key: {name: _number(gpu.get(name)) for name in GPU_FIELDS}
            for gpu_id, gpu in zip(ids, entries, strict=True)
        }
        return cls(ts, flat, gpus, {gpu_id.key: gpu_id for gpu_id in ids})


def job_model(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A viewer's copy of a job object: every field of
    :data:`~jobwatch.contract.job_fields.VIEWED_FIELDS` (``None`` where ``raw``
    lacks it, as from an older server), then whatever else ``raw`` holds."""
    return {**dict.fromkeys(VIEWED_FIELDS), **raw}


def gpu_lines(samples: Iterable[Sample]) -> dict[str, str]:
    """The GPUs of ``samples``, one line each: key to label, in display order.

    A GPU is known by its key (its UUID where it has one), so two MIG slices of
    one GPU, or two GPUs reporting the same index, are two lines; a GPU is
    numbered as its newest sample says. Labels are those of
    :func:`jobwatch.contract.gpu_identity.gpu_labels` (``GPU 0``, ``GPU 0 (MIG 1g.5gb)``).
    """
    newest: dict[str, GpuId] = {}
    for sample in samples:
        newest.update(sample.ids)
    return gpu_labels(newest.values())


@dataclass(frozen=True)
class Series:
    """Chart data for one metric: ``x`` (s since the epoch) and one ``y`` list per line.

    Missing values are ``nan`` (drawn as gaps, never as 0).
    """

    x: list[float]
    lines: dict[str, list[float]]


SCALAR_AXES = ("step", "time", "cost")
"""What a training-metric chart may draw its values against: the step, the time (s
since the epoch), or the job's cost when each value was logged (its currency)."""


@dataclass(frozen=True)
class ScalarPoint:
    """One training-metric value: ``step``, ``ts`` (s since the epoch), ``value`` and
    ``cost``, what the job had cost when it was logged (``None``: no price, or a server
    that does not say)."""

    step: int
    ts: float
    value: float
    cost: float | None = None


@dataclass
class MonitorState:
    """The state of one job's monitor.

    Parameters
    ----------
    clock:
        Seconds since the epoch; moves elapsed time on between events.
    """

    clock: Callable[[], float] = time.time
    job: dict[str, Any] = field(default_factory=dict)
    time_remaining: float | None = None
    cost_so_far: float | None = None
    estimated_total_cost: float | None = None
    currency: str = "QUBIC"
    seq: int = 0
    connection: str = "connecting"
    last_update: float | None = None
    """When (``clock`` seconds) the monitor last heard of the job: a snapshot or an event;
    what a view shows beside "disconnected"."""
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    logs: deque[LogLine] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    new_logs: list[LogLine] = field(default_factory=list)
    log_total: int = 0
    scalars: dict[str, deque[ScalarPoint]] = field(default_factory=dict)
    latest_scalars: dict[str, ScalarPoint] = field(default_factory=dict)
    scalars_version: int = 0
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=MAX_ALERTS))
    _elapsed: float | None = None
    _elapsed_at: float = 0.0
    version: int = 0
    samples_version: int = 0
    has_gpu: bool = False
    """Whether a sample kept has a GPU value (the GPU charts have something to draw)."""
    has_system: bool = False
    """Whether a sample kept has a system value (CPU, memory, disk, network)."""

    # -- input ----------------------------------------------------------------

    def load_snapshot(self, snapshot: Monitor, *, history: bool = True) -> None:
        """Start from a ``GET /monitor`` answer.

        With ``history=False`` its ``metrics.history`` is left out (the latest
        sample is kept), for :meth:`add_history` to put in later: converting
        2,000 samples of 8 GPUs takes about 70 ms, which a first view need not
        wait for.
        """
        self.last_update = self.clock()
        self.job = job_model(snapshot["job"])
        self._estimates(snapshot)
        self.seq = int(snapshot.get("seq", 0))
        metrics = snapshot.get("metrics") or {"latest": None, "history": []}
        self.replace_samples((metrics.get("history") or []) if history else [])
        latest = metrics.get("latest")
        if latest:
            self._add_sample(latest)
        self.add_logs(snapshot.get("logs") or [])
        for name, point in (snapshot.get("scalars") or {}).items():
            self._add_scalar(
                name,
                point.get("step"),
                point.get("timestamp"),
                point.get("value"),
                point.get("cost"),
            )
        self.alerts.clear()
        for alert in snapshot.get("alerts") or []:
            self._add_alert(alert)
        self.version += 1

    def apply(self, event: JobEvent) -> None:
        """Apply one stream event (``JOB_PROGRESS``, ``JOB_LOGS``, ``JOB_COMPLETED``,
        ``JOB_STALLED``, ``JOB_RESUMED``, ``JOB_ALERT``); another type changes nothing.

        Read defensively: a field that another server left out is skipped.
        """
        self.last_update = self.clock()
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "JOB_PROGRESS":
            self._progress(cast(ProgressData, data))
        elif kind == "JOB_LOGS":
            self.add_logs(cast(LogsData, data).get("logs") or [])
        elif kind in ("JOB_STALLED", "JOB_RESUMED"):
            self.job["stalled"] = kind == "JOB_STALLED"
        elif kind == "JOB_ALERT":
            self._add_alert(cast(AlertData, data).get("alert") or {})
        elif kind == "JOB_COMPLETED":
            self._completed(cast(CompletedData, data))
        else:
            return
        self.seq = max(self.seq, int(event.get("seq") or 0))
        self.version += 1

    def replace_samples(self, rows: Iterable[WireSample | Mapping[str, Any]]) -> None:
        """Replace the chart samples with a history page (``/metrics`` rows, oldest first)."""
        self.samples.clear()
        self.has_gpu = self.has_system = False
        for row in rows:
            self._add_sample(row)
        self.samples_version += 1
        self.version += 1

    def add_history(self, rows: Iterable[WireSample | Mapping[str, Any]]) -> None:
        """Put a snapshot's history (``/monitor`` rows, oldest first) before the
        samples kept since: the samples kept are those loading the history first
        would have kept (each sample not older than the one before it, a repeat
        of the one before it dropped, the newest :data:`MAX_POINTS`)."""
        kept = list(self.samples)
        self.samples.clear()
        self.has_gpu = self.has_system = False
        for row in rows:
            self._add_sample(row)
        for sample in kept:
            self._append_sample(sample)
        self.samples_version += 1
        self.version += 1

    def merge_scalars(self, series: Mapping[str, Iterable[ScalarValue]]) -> None:
        """Merge a ``/scalars`` answer's ``scalars`` (``{name: [{step, timestamp,
        value}]}``) into the training-metric history: points already kept (from
        events that arrived meanwhile) stay, each point once, in step order, the
        newest :data:`MAX_SCALAR_POINTS` per name."""
        for name, points in series.items():
            kept = {(p.step, p.ts): p for p in self.scalars.get(name, ())}
            for raw in points:
                step, ts, value = raw.get("step"), parse_ts(raw.get("timestamp")), raw.get("value")
                number = _number(value)
                if isinstance(step, int) and ts is not None and number is not None:
                    point = ScalarPoint(step, ts, number, _number(raw.get("cost")))
                    kept.setdefault((step, ts), point)
            merged = deque(sorted(kept.values(), key=lambda p: (p.step, p.ts)), MAX_SCALAR_POINTS)
            if merged:
                self.scalars[name] = merged
                newest = merged[-1]
                latest = self.latest_scalars.get(name)
                if latest is None or newest.step >= latest.step:
                    self.latest_scalars[name] = newest
        self.scalars_version += 1
        self.version += 1

    def add_logs(self, lines: Iterable[LogLine]) -> None:
        """Add log lines newer than those kept; they also queue in :attr:`new_logs`."""
        last = cast(int, self.logs[-1]["id"]) if self.logs else -1
        fresh = [line.copy() for line in lines if cast(int, line["id"]) > last]
        self.logs.extend(fresh)
        self.new_logs.extend(fresh)
        del self.new_logs[: -MAX_LOG_LINES or None]
        self.log_total += len(fresh)

    def take_new_logs(self) -> list[LogLine]:
        """The log lines added since the last call (at most :data:`MAX_LOG_LINES`)."""
        fresh, self.new_logs = self.new_logs, []
        return fresh

    def set_connection(self, state: str) -> None:
        """``connecting``, ``live``, ``reconnecting``, ``offline``, ``closed`` or
        ``ended`` (the watcher stopped following a finished job)."""
        if state != self.connection:
            self.connection = state
            self.version += 1

    # -- output ---------------------------------------------------------------

    @property
    def stalled(self) -> bool:
        """Whether the server marked the running job stalled (no update for too long)."""
        return bool(self.job.get("stalled")) and not self.finished

    @property
    def finished(self) -> bool:
        """Whether the job has completed, failed or been cancelled."""
        return self.job.get("status") in FINISHED_STATUSES

    @property
    def elapsed(self) -> float | None:
        """Seconds since the job started, moving on with the clock while it runs.

        ``None`` before it starts.
        """
        reported = self.reported_elapsed
        if self.finished:
            return reported
        if reported is not None:
            return reported + max(0.0, self.clock() - self._elapsed_at)
        started = parse_ts(self.job.get("startedAt"))
        return None if started is None else max(0.0, self.clock() - started)

    @property
    def reported_elapsed(self) -> float | None:
        """Seconds since the job started as of the last update, standing still between updates.

        From start to end once the job has finished; ``None`` while the server
        has not said.
        """
        if self.finished:
            started = parse_ts(self.job.get("startedAt"))
            ended = parse_ts(self.job.get("completedAt"))
            if started is not None and ended is not None:
                return max(0.0, ended - started)
        return self._elapsed

    def series(self, metric: str, window: float | None) -> Series:
        """Chart data of ``metric`` over the last ``window`` seconds (``None``: all kept).

        One line per GPU (labelled as :func:`gpu_lines` says) when the samples
        carry per-GPU detail, else one line ``"all GPUs"`` from the flat field.
        """
        samples = list(self.samples)
        if window is not None and samples:
            start = max(self.clock(), samples[-1].ts) - window
            samples = [s for s in samples if s.ts >= start]
        gpus = gpu_lines(samples)
        lines: dict[str, list[float]] = {}
        if gpus:
            for key, label in gpus.items():
                lines[label] = [_nan(s.gpus.get(key, {}).get(metric)) for s in samples]
        else:
            lines["all GPUs"] = [_nan(s.flat.get(metric)) for s in samples]
        return Series([s.ts for s in samples], lines)

    def newest_scalars(self, most: int) -> tuple[list[tuple[str, float]], int, int]:
        """The newest value of the first ``most`` training metrics by name, how many
        metrics are left out, and the newest step among those given; ``([], 0, 0)``
        before any."""
        names = sorted(self.latest_scalars)[:most]
        if not names:
            return [], 0, 0
        shown = [(n, self.latest_scalars[n].value) for n in names]
        step = max(self.latest_scalars[n].step for n in names)
        return shown, len(self.latest_scalars) - len(names), step

    def scalar_series(self, by: str = "step") -> Series:
        """Training-metric chart data: one line per name, ``x`` the union of
        the steps (``by="step"``), of the times (``by="time"``, s since the
        epoch) or of the costs (``by="cost"``: what the job had cost when each
        value was logged, in its currency; values without one are left out),
        each line ``nan`` where it has no value at that ``x``.

        Raises
        ------
        ValueError
            ``by`` is not one of :data:`SCALAR_AXES`.
        """
        if by not in SCALAR_AXES:
            raise ValueError(f"by must be 'step', 'time' or 'cost', got {by!r}")

        def x_of(point: ScalarPoint) -> float | None:
            return {"step": point.step, "time": point.ts, "cost": point.cost}[by]

        keyed = {
            name: {x: p.value for p in points if (x := x_of(p)) is not None}
            for name, points in sorted(self.scalars.items())
        }
        keyed = {name: values for name, values in keyed.items() if values}
        xs = sorted({x for values in keyed.values() for x in values})
        lines = {name: [values.get(x, math.nan) for x in xs] for name, values in keyed.items()}
        return Series([float(x) for x in xs], lines)

    # -- internals ------------------------------------------------------------

    def _progress(self, data: ProgressData) -> None:
        for key in ("status", "progress", "currentOperation"):
            if key in data:
                self.job[key] = data[key]
        self._estimates(data)
        sample = data.get("metrics")
        if sample:
            self._add_sample(sample)
        for point in data.get("scalars") or []:
            for name, value in (point.get("values") or {}).items():
                self._add_scalar(
                    name, point.get("step"), point.get("timestamp"), value, point.get("cost")
                )

    def _completed(self, data: CompletedData) -> None:
        self.job.update(
            status=data.get("status"),
            result=data.get("result"),
            error=data.get("error"),
            completedAt=data.get("completedAt"),
        )
        if data.get("status") == "completed":
            self.job["progress"] = 100.0
        self._estimates(data)
        self.time_remaining = 0.0
        self.estimated_total_cost = self.cost_so_far  # the total is known now

    def _add_alert(self, alert: Mapping[str, Any]) -> None:
        if not isinstance(alert.get("title"), str):
            return
        if any(kept.get("seq") == alert.get("seq") for kept in self.alerts):
            return  # the snapshot's and the stream's copy of one alert
        self.alerts.append(cast(Alert, dict(alert)))
        self.job["alerts"] = max(int(self.job.get("alerts") or 0), len(self.alerts))

    def _add_scalar(
        self, name: object, step: object, stamp: object, value: object, cost: object = None
    ) -> None:
        number, ts = _number(value), parse_ts(stamp)
        if not isinstance(name, str) or not isinstance(step, int) or number is None or ts is None:
            return
        point = ScalarPoint(step, ts, number, _number(cost))
        points = self.scalars.setdefault(name, deque(maxlen=MAX_SCALAR_POINTS))
        if not points or (point.step, point.ts) > (points[-1].step, points[-1].ts):
            points.append(point)
        latest = self.latest_scalars.get(name)
        if latest is None or point.step >= latest.step:
            self.latest_scalars[name] = point
        self.scalars_version += 1

    def _estimates(self, data: Mapping[str, Any]) -> None:
        if "timeRemaining" in data:
            self.time_remaining = data["timeRemaining"]
        if "costSoFar" in data:
            self.cost_so_far = data["costSoFar"]
        if "estimatedTotalCost" in data:
            self.estimated_total_cost = data["estimatedTotalCost"]
        if data.get("currency"):
            self.currency = data["currency"]
        if data.get("elapsed") is not None:
            self._elapsed = float(data["elapsed"])
            self._elapsed_at = self.clock()

    def _add_sample(self, raw: Mapping[str, Any]) -> None:
        sample = Sample.from_wire(raw)
        if sample is not None:
            self._append_sample(sample)

    def _append_sample(self, sample: Sample) -> None:
        if self.samples and sample.ts < self.samples[-1].ts:
            return
        if (
            self.samples
            and sample.ts == self.samples[-1].ts
            and sample.flat == self.samples[-1].flat
        ):
            return  # the snapshot's latest sample is also the history's last
        self.samples.append(sample)
        self.samples_version += 1
        flat = sample.flat
        if not self.has_gpu:
            self.has_gpu = bool(sample.gpus) or any(flat[f] is not None for f in GPU_FIELDS)
        if not self.has_system:
            self.has_system = any(flat[f] is not None for f in SYSTEM_FIELDS)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
