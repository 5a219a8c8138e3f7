"""The server's answers and streamed messages as typed dicts, for the client side.

:class:`~jobwatch.client.rest.Client` returns these and its subscriptions
yield them: plain ``dict`` objects decoded from JSON, with wire (camelCase)
keys, that a type checker can follow. They import nothing but :mod:`typing`,
so the client stays light; the server describes the same shapes as pydantic
models (``jobwatch/server/web/answers.py``, for its OpenAPI document), and a
test keeps the two key for key.

Units as on the wire: progress and utilization in percent (0-100), memory in
MB, temperature in degrees Celsius, power in watts, durations in seconds,
costs in the job's currency; timestamps are ISO 8601 text in UTC (``...Z``),
parse them with :func:`jobwatch.contract.basics.parse_ts`.

A client reads what a server sent: these types say what a jobwatch server
sends, not what was checked, so code that must survive another server still
reads defensively (``.get``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "Alert",
    "AlertData",
    "AlertEvent",
    "AlertsPage",
    "CompletedData",
    "CompletedEvent",
    "CostGroup",
    "CostReport",
    "CostTotal",
    "GpuReading",
    "Health",
    "Job",
    "JobEvent",
    "JobList",
    "JobStatus",
    "JobSummary",
    "JobsChanged",
    "JobsChangedData",
    "LogLine",
    "LogsData",
    "LogsEvent",
    "LogsPage",
    "MetricsPage",
    "Monitor",
    "MonitorMetrics",
    "ProgressData",
    "ProgressEvent",
    "ProgressReply",
    "Ready",
    "Receipt",
    "ReceiptMetric",
    "ResumedData",
    "ResumedEvent",
    "Sample",
    "ScalarStep",
    "ScalarValue",
    "ScalarsPage",
    "StalledData",
    "StalledEvent",
    "Unpriced",
]

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
LogLevel = Literal["info", "warning", "error"]


class Job(TypedDict):
    """A job as every endpoint returns it; ``seq`` is the number of its latest event."""

    id: str
    name: str | None
    status: JobStatus
    progress: float
    currentOperation: str | None
    workerId: str | None
    pricePerHour: float | None
    currency: str
    providerId: str | None
    createdAt: str
    startedAt: str | None
    updatedAt: str
    completedAt: str | None
    result: Any
    error: str | None
    seq: int
    stalled: bool
    alerts: int
    worldSize: int | None
    workers: int
    nodes: int
    budget: float | None
    hung: bool
    config: dict[str, Any] | None


class JobList(TypedDict):
    """``GET /api/jobs``: one page of jobs, newest first."""

    jobs: list[Job]
    total: int
    limit: int
    offset: int


class _ProgressFigures(TypedDict):
    """What every ``POST /progress`` answer holds (:class:`ProgressReply`)."""

    success: Literal[True]
    jobId: str
    status: JobStatus
    progress: float
    timeRemaining: float | None
    costSoFar: float | None
    estimatedTotalCost: float | None
    currency: str
    seq: int
    budget: float | None
    overBudget: bool


class ProgressReply(_ProgressFigures, total=False):
    """``POST /progress``: the job's figures once the update was committed, and
    ``minInterval`` only while the server is busy (report at most every this many
    seconds)."""

    minInterval: float


class Health(TypedDict):
    """``GET /api/health``."""

    status: Literal["ok"]
    version: str


class Ready(TypedDict):
    """``GET /api/ready`` (200): the database and the broker answer."""

    status: Literal["ready"]
    database: Literal["ok"]
    broker: Literal["ok", "none"]


class GpuReading(TypedDict, total=False):
    """One GPU's part of a sample (each field may be absent or ``None``)."""

    index: int | None
    uuid: str | None
    name: str | None
    gpuUtilization: float | None
    gpuMemoryUsed: float | None
    gpuMemoryTotal: float | None
    gpuTemperature: float | None
    powerUsage: float | None


class _SampleFields(TypedDict):
    timestamp: str
    gpuUtilization: float | None
    gpuMemoryUsed: float | None
    gpuMemoryTotal: float | None
    gpuTemperature: float | None
    powerUsage: float | None


class Sample(_SampleFields, total=False):
    """One metrics sample with the server time it was received (the fields of
    :data:`~jobwatch.contract.metrics.METRICS`): the GPU metrics always, the
    system metrics only when the worker sent any; ``gpus`` only when sent."""

    cpuUtilization: float | None
    memoryUsed: float | None
    memoryTotal: float | None
    processMemory: float | None
    diskUsed: float | None
    diskTotal: float | None
    diskRead: float | None
    diskWrite: float | None
    networkIn: float | None
    networkOut: float | None
    gpus: list[GpuReading] | None


class _LogLineFields(TypedDict):
    id: int | None
    level: LogLevel
    timestamp: str
    message: str


class LogLine(_LogLineFields, total=False):
    """A stored log line; ``id`` grows with each line of a job (``None`` in a
    ``JOB_LOGS`` event, sent before the lines are numbered); ``rank`` and ``node``
    when a rank of a distributed job logged it."""

    rank: int
    node: str


class ScalarValue(TypedDict):
    """One training-metric value at a step, with the server time it was stored."""

    step: int
    timestamp: str
    value: float
    cost: float | None


class Alert(TypedDict):
    """An alert; ``seq`` is the number of its ``JOB_ALERT`` event."""

    seq: int
    timestamp: str
    level: LogLevel
    title: str
    text: str | None
    source: Literal[
        "worker",
        "rule",
        "failed",
        "stalled",
        "worker_silent",
        "straggler",
        "hung",
        "budget",
        "receipt",
    ]


class AlertsPage(TypedDict):
    """``GET /alerts``: one page of alerts, oldest first."""

    jobId: str
    alerts: list[Alert]
    total: int
    limit: int
    offset: int


class MonitorMetrics(TypedDict):
    """The newest sample and the last 60 seconds of samples, oldest first."""

    latest: Sample | None
    history: list[Sample]


class Monitor(TypedDict):
    """``GET /monitor``: all a viewer needs to start; subscribe with ``since=seq``.

    ``gpusOmitted``: how many of the oldest history samples come without ``gpus``;
    ``scalars``: the newest value of each training metric; ``alerts``: the newest 20.
    """

    job: Job
    metrics: MonitorMetrics
    gpusOmitted: int
    logs: list[LogLine]
    scalars: dict[str, ScalarValue]
    alerts: list[Alert]
    timeRemaining: float | None
    costSoFar: float | None
    estimatedTotalCost: float | None
    elapsed: float | None
    currency: str
    seq: int


class MetricsPage(TypedDict):
    """``GET /metrics``: the samples of the window, oldest first."""

    jobId: str
    timeRange: float
    maxPoints: int | None
    downsampled: bool
    gpusOmitted: int
    metrics: list[Sample]


class ScalarsPage(TypedDict):
    """``GET /scalars``: each training metric's values, oldest first."""

    jobId: str
    timeRange: float | None
    maxPoints: int | None
    downsampled: bool
    scalars: dict[str, list[ScalarValue]]


class LogsPage(TypedDict):
    """``GET /logs``: one page of log lines, oldest first."""

    jobId: str
    logs: list[LogLine]
    total: int
    limit: int
    offset: int


# -- the stream of one job (subscribe:job) ----------------------------------------


class _ScalarStepFields(TypedDict):
    step: int
    timestamp: str
    values: dict[str, float]


class ScalarStep(_ScalarStepFields, total=False):
    """One step's training metrics in a ``JOB_PROGRESS`` event; ``cost``: the job's
    cost so far then (absent from events stored by an older server)."""

    cost: float | None


class _ProgressFields(TypedDict):
    jobId: str
    status: JobStatus
    progress: float
    currentOperation: str | None
    metrics: Sample | None
    timeRemaining: float | None
    costSoFar: float | None
    estimatedTotalCost: float | None
    elapsed: float | None
    currency: str
    timestamp: str


class ProgressData(_ProgressFields, total=False):
    """``data`` of ``JOB_PROGRESS``; ``scalars`` only when the update carried some."""

    scalars: list[ScalarStep] | None


class LogsData(TypedDict):
    """``data`` of ``JOB_LOGS``."""

    jobId: str
    logs: list[LogLine]


class CostTotal(TypedDict):
    """Spend of one currency over a spend report's window: ``daily`` per day, in order."""

    currency: str
    cost: float
    hours: float
    jobs: int
    running: int
    daily: list[float]


class CostGroup(CostTotal):
    """Spend of one group (providerId, tenant or name) in one currency."""

    group: str | None


class Unpriced(TypedDict):
    """Jobs without a price that ran inside a spend report's window."""

    jobs: int
    hours: float


class CostReport(TypedDict):
    """``GET /api/costs``: spend per day and per group."""

    since: str
    until: str
    timeZone: str
    by: Literal["provider", "tenant", "name"] | None
    days: list[str]
    groups: list[CostGroup]
    totals: list[CostTotal]
    unpriced: Unpriced


class ReceiptMetric(TypedDict):
    """One training metric on a receipt: its final value (at ``step``) and its range."""

    final: float
    step: int
    min: float
    max: float


class Receipt(TypedDict):
    """``GET /receipt``: what a job cost and what it got."""

    jobId: str
    status: JobStatus
    startedAt: str | None
    completedAt: str | None
    duration: float
    cost: float | None
    currency: str
    budget: float | None
    gpus: int
    gpuHours: float
    metrics: dict[str, ReceiptMetric]
    hungSeconds: float
    hungCost: float
    stalledSeconds: float
    stalledCost: float
    error: str | None


class _CompletedFields(TypedDict):
    """``data`` of ``JOB_COMPLETED`` as every one has it."""

    jobId: str
    status: Literal["completed", "failed", "cancelled"]
    result: Any
    error: str | None
    completedAt: str
    costSoFar: float | None
    currency: str


class CompletedData(_CompletedFields, total=False):
    """``data`` of ``JOB_COMPLETED``; ``receipt`` in the live event only (docs/api.md "Receipts")."""

    receipt: Receipt


class StalledData(TypedDict):
    """``data`` of ``JOB_STALLED``: seconds since the last update."""

    jobId: str
    stalled: Literal[True]
    lastUpdateAt: str
    silentFor: float
    timestamp: str


class ResumedData(TypedDict):
    """``data`` of ``JOB_RESUMED``: how long the job was silent."""

    jobId: str
    stalled: Literal[False]
    silentFor: float
    timestamp: str


class AlertData(TypedDict):
    """``data`` of ``JOB_ALERT``."""

    jobId: str
    alert: Alert


class ProgressEvent(TypedDict):
    """``{type: "JOB_PROGRESS", jobId, seq, data}``."""

    type: Literal["JOB_PROGRESS"]
    jobId: str
    seq: int
    data: ProgressData


class LogsEvent(TypedDict):
    """``{type: "JOB_LOGS", jobId, seq, data}``."""

    type: Literal["JOB_LOGS"]
    jobId: str
    seq: int
    data: LogsData


class CompletedEvent(TypedDict):
    """``{type: "JOB_COMPLETED", jobId, seq, data}``."""

    type: Literal["JOB_COMPLETED"]
    jobId: str
    seq: int
    data: CompletedData


class StalledEvent(TypedDict):
    """``{type: "JOB_STALLED", jobId, seq, data}``."""

    type: Literal["JOB_STALLED"]
    jobId: str
    seq: int
    data: StalledData


class ResumedEvent(TypedDict):
    """``{type: "JOB_RESUMED", jobId, seq, data}``."""

    type: Literal["JOB_RESUMED"]
    jobId: str
    seq: int
    data: ResumedData


class AlertEvent(TypedDict):
    """``{type: "JOB_ALERT", jobId, seq, data}``."""

    type: Literal["JOB_ALERT"]
    jobId: str
    seq: int
    data: AlertData


JobEvent = ProgressEvent | LogsEvent | CompletedEvent | StalledEvent | ResumedEvent | AlertEvent
"""One event of a job's stream; ``type`` tells which (narrow on ``event["type"]``)."""


# -- the fleet (subscribe:jobs) ---------------------------------------------------


class JobSummary(TypedDict):
    """One job in ``JOBS_CHANGED``: GPU fields from its newest sample, costs as of the message."""

    id: str
    name: str | None
    status: JobStatus
    progress: float
    currentOperation: str | None
    timeRemaining: float | None
    costSoFar: float | None
    estimatedTotalCost: float | None
    currency: str
    pricePerHour: float | None
    gpuUtilization: float | None
    gpuTemperature: float | None
    updatedAt: str
    startedAt: str | None
    completedAt: str | None
    createdAt: str
    workerId: str | None
    stalled: bool
    alerts: int
    worldSize: int | None
    workers: int
    nodes: int
    budget: float | None


class JobsChangedData(TypedDict):
    """``data`` of ``JOBS_CHANGED``."""

    jobs: list[JobSummary]


class JobsChanged(TypedDict):
    """``{type: "JOBS_CHANGED", seq, data: {jobs}}``; ``seq`` is the server's time in ms."""

    type: Literal["JOBS_CHANGED"]
    seq: int
    data: JobsChangedData
