"""The shapes of the server's answers and streamed messages, as pydantic models.

These models describe what :mod:`jobwatch.server.web.api` and
:mod:`jobwatch.server.web.ws.session` send (built by :mod:`jobwatch.server.core.serialize` and
:mod:`jobwatch.server.core.rules`); :mod:`jobwatch.server.web.openapi` turns them into
the OpenAPI and AsyncAPI documents, and the tests check live answers against
those documents. They forbid unknown fields so that a field the server adds
without documenting it breaks the tests.

Units as on the wire (see :mod:`jobwatch.contract.requests`): percent, MB, degrees
Celsius, watts, seconds, the job's currency; timestamps ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from jobwatch.contract.job_fields import WIRE_FIELDS, JobField
from jobwatch.contract.metrics import GPU_METRICS, SYSTEM_METRICS
from jobwatch.contract.requests import GpuSample

_Answer = ConfigDict(extra="forbid", populate_by_name=True)

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Seconds = float
Cost = float


_JOB_DOC = "A job as every endpoint returns it; ``seq`` is the number of its latest event."


def _job_answer_field(field: JobField) -> tuple[Any, Any]:
    """The ``Job`` model's annotation and ``Field`` for one wire field of the table."""
    kind: Any = {"time": datetime, "flag": bool}.get(field.form, field.python)
    if field.choices:
        kind = Literal[field.choices]
    if field.nullable and kind is not Any:
        kind = kind | None
    return kind, Field(
        alias=field.wire,
        description=field.description,
        ge=field.minimum,
        le=field.maximum,
    )


if TYPE_CHECKING:

    class Job(BaseModel):
        """The fields of :data:`~jobwatch.contract.job_fields.WIRE_FIELDS`."""

else:
    Job = create_model(
        "Job",
        __config__=_Answer,
        __doc__=_JOB_DOC,
        __module__=__name__,
        **{field.column: _job_answer_field(field) for field in WIRE_FIELDS},
    )


class Worker(BaseModel):
    """One worker of a job: a rank of a distributed job, or the job's one worker."""

    model_config = _Answer

    worker_id: str = Field(alias="workerId")
    node: str
    rank: int | None = Field(ge=0, description="null: a job without worldSize")
    local_rank: int | None = Field(alias="localRank")
    status: Literal["running", "silent", "left", "finished"]
    first_update_at: datetime | None = Field(alias="firstUpdateAt")
    last_update_at: datetime | None = Field(alias="lastUpdateAt")
    progress: float = Field(ge=0, le=100, description="its own progress, percent")
    current_operation: str | None = Field(alias="currentOperation")
    rate: float | None = Field(description="smoothed progress rate, percent per second")
    straggler: bool
    price_per_hour: float | None = Field(
        alias="pricePerHour", description="its node's price, when it reports one"
    )
    cost: float | None = Field(description="what its node accrued at that price")


class WorkersAnswer(BaseModel):
    """``GET /api/jobs/{jobId}/workers``."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    world_size: int | None = Field(alias="worldSize")
    workers: list[Worker]


class JobAnswer(BaseModel):
    """``{job}``: the answer of create, update, read and complete."""

    model_config = _Answer

    job: Job


class JobList(BaseModel):
    """``GET /api/jobs``: one page of jobs, newest first."""

    model_config = _Answer

    jobs: list[Job]
    total: int = Field(ge=0)
    limit: int
    offset: int


class ProgressAnswer(BaseModel):
    """``POST /progress``: the job's figures after the update was committed."""

    model_config = _Answer

    success: Literal[True]
    job_id: str = Field(alias="jobId")
    status: JobStatus
    progress: float = Field(ge=0, le=100)
    time_remaining: Seconds | None = Field(alias="timeRemaining", ge=0)
    cost_so_far: Cost | None = Field(alias="costSoFar", ge=0)
    estimated_total_cost: Cost | None = Field(alias="estimatedTotalCost", ge=0)
    currency: str
    seq: int = Field(ge=0)
    min_interval: Seconds | None = Field(
        default=None,
        alias="minInterval",
        gt=0,
        description="only while the server is busy: report at most every this many seconds",
    )
    budget: Cost | None = Field(ge=0, description="the job's budget, in its currency")
    over_budget: bool = Field(
        alias="overBudget", description="whether the cost so far has reached the budget"
    )


_SAMPLE_DOC = (
    "One metrics sample with the server time it was received; the system metrics "
    "(cpuUtilization, memoryUsed, ...) only when the worker sent any, ``gpus`` only when sent."
)

if TYPE_CHECKING:

    class Sample(BaseModel):
        """The timestamp, the metrics of :data:`~jobwatch.contract.metrics.METRICS`, ``gpus``."""

else:
    Sample = create_model(
        "Sample",
        __config__=_Answer,
        __doc__=_SAMPLE_DOC,
        __module__=__name__,
        timestamp=(datetime, ...),
        **{m.column: (float | None, Field(alias=m.wire)) for m in GPU_METRICS},
        **{m.column: (float | None, Field(None, alias=m.wire)) for m in SYSTEM_METRICS},
        gpus=(list[GpuSample] | None, None),
    )


class LogLine(BaseModel):
    """A stored log line; ``id`` grows with each line of a job (``null`` in a
    ``JOB_LOGS`` event, which is sent before the lines are numbered)."""

    model_config = _Answer

    id: int | None
    level: Literal["info", "warning", "error"]
    timestamp: datetime
    message: str
    rank: int | None = Field(None, description="the rank that logged it (distributed jobs)")
    node: str | None = Field(None, description="the node that logged it (distributed jobs)")


class ScalarValue(BaseModel):
    """One training-metric value at a step, with the server time it was stored."""

    model_config = _Answer

    step: int = Field(ge=0)
    timestamp: datetime
    value: float
    cost: Cost | None = Field(
        ge=0,
        description="what the job had cost when the value was stored (its price integrated "
        "up to timestamp); null without a price. For charts against money",
    )


class Alert(BaseModel):
    """An alert; ``seq`` is the number of its ``JOB_ALERT`` event."""

    model_config = _Answer

    seq: int = Field(ge=1)
    timestamp: datetime
    level: Literal["info", "warning", "error"]
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


class AlertsAnswer(BaseModel):
    """``GET /alerts``: one page of alerts, oldest first."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    alerts: list[Alert]
    total: int = Field(ge=0)
    limit: int
    offset: int


class ReceiptMetric(BaseModel):
    """One training metric on a receipt: its final value (at ``step``) and its range."""

    model_config = _Answer

    final: float
    step: int = Field(ge=0)
    min: float
    max: float


class ReceiptAnswer(BaseModel):
    """``GET /receipt``: what a job cost and what it got (docs/api.md "Receipts")."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    status: JobStatus
    started_at: str | None = Field(alias="startedAt")
    completed_at: str | None = Field(alias="completedAt")
    duration: Seconds = Field(ge=0, description="completedAt (or now) - startedAt")
    cost: Cost | None = Field(ge=0, description="cost so far; null without a price")
    currency: str
    budget: Cost | None = Field(ge=0)
    gpus: int = Field(ge=0, description="GPUs of the newest sample")
    gpu_hours: float = Field(alias="gpuHours", ge=0, description="duration / 3600 x gpus")
    metrics: dict[str, ReceiptMetric]
    hung_seconds: Seconds = Field(alias="hungSeconds", ge=0)
    hung_cost: Cost = Field(alias="hungCost", ge=0)
    stalled_seconds: Seconds = Field(alias="stalledSeconds", ge=0)
    stalled_cost: Cost = Field(alias="stalledCost", ge=0)
    error: str | None


class CostTotal(BaseModel):
    """Spend of one currency over the report's window (``GET /api/costs``)."""

    model_config = _Answer

    currency: str
    cost: Cost = Field(ge=0, description="summed over the window's days")
    hours: Seconds = Field(ge=0, description="hours the jobs ran inside the window")
    jobs: int = Field(ge=0, description="jobs whose run overlaps the window")
    running: int = Field(ge=0, description="of those, how many run now")
    daily: list[Cost] = Field(description="the cost on each of the answer's days, in order")


class CostGroup(CostTotal):
    """Spend of one group (``by``) in one currency."""

    group: str | None = Field(
        description="providerId, tenant (null: the operator's) or name (else the job id)"
    )


class Unpriced(BaseModel):
    """Jobs without a price that ran inside the window: in no sum of money."""

    model_config = _Answer

    jobs: int = Field(ge=0)
    hours: float = Field(ge=0)


class CostsAnswer(BaseModel):
    """``GET /api/costs``: spend per day and per group (docs/api.md "Spend across jobs")."""

    model_config = _Answer

    since: datetime = Field(description="the first day's midnight in timeZone")
    until: datetime = Field(description="now: running jobs count up to here")
    time_zone: str = Field(alias="timeZone")
    by: Literal["provider", "tenant", "name"] | None
    days: list[str] = Field(description="the days, YYYY-MM-DD, oldest first")
    groups: list[CostGroup] = Field(description="costliest first; empty without by")
    totals: list[CostTotal] = Field(description="one per currency")
    unpriced: Unpriced


class MonitorMetrics(BaseModel):
    """The newest sample and the last 60 seconds of samples, oldest first."""

    model_config = _Answer

    latest: Sample | None
    history: list[Sample]


class MonitorAnswer(BaseModel):
    """``GET /monitor``: everything a viewer needs to start; subscribe with ``since=seq``."""

    model_config = _Answer

    job: Job
    metrics: MonitorMetrics
    gpus_omitted: int = Field(
        alias="gpusOmitted",
        ge=0,
        description="how many of the oldest samples of `metrics.history` come without their "
        "per-GPU list (`gpus`): one answer holds at most 4 MiB of per-GPU lists, the newest "
        "first (an extension)",
    )
    logs: list[LogLine]
    scalars: dict[str, ScalarValue]
    alerts: list[Alert] = Field(description="the newest 20, oldest first")
    time_remaining: Seconds | None = Field(alias="timeRemaining", ge=0)
    cost_so_far: Cost | None = Field(alias="costSoFar", ge=0)
    estimated_total_cost: Cost | None = Field(alias="estimatedTotalCost", ge=0)
    elapsed: Seconds | None = Field(ge=0)
    currency: str
    seq: int = Field(ge=0)


class MetricsAnswer(BaseModel):
    """``GET /metrics``: samples of the window, oldest first."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    time_range: float = Field(alias="timeRange")
    max_points: int | None = Field(alias="maxPoints")
    downsampled: bool
    gpus_omitted: int = Field(
        alias="gpusOmitted",
        ge=0,
        description="how many of the oldest samples come without their per-GPU list "
        "(`gpus`): one answer holds at most 4 MiB of per-GPU lists, the newest first",
    )
    metrics: list[Sample]


class ScalarsAnswer(BaseModel):
    """``GET /scalars``: each training metric's values, oldest first."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    time_range: float | None = Field(alias="timeRange")
    max_points: int | None = Field(alias="maxPoints")
    downsampled: bool
    scalars: dict[str, list[ScalarValue]]


class LogsAnswer(BaseModel):
    """``GET /logs``: one page of log lines, oldest first."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    logs: list[LogLine]
    total: int = Field(ge=0)
    limit: int
    offset: int


class Health(BaseModel):
    """``GET /api/health``."""

    model_config = _Answer

    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    """``GET /api/ready`` (200): the database answers and, with Redis, the
    subscription is up (``broker``: ``none`` without Redis)."""

    model_config = _Answer

    status: Literal["ready"]
    database: Literal["ok"]
    broker: Literal["ok", "none"]


class ErrorDetail(BaseModel):
    """One bad field, by JSON path (``metrics.gpuUtilization``, ``logLines[2].level``)."""

    model_config = _Answer

    field: str
    message: str


class ErrorBody(BaseModel):
    """``code`` (machine-readable, see docs/api.md "Errors"), ``message`` and ``details``."""

    model_config = _Answer

    code: str
    message: str
    details: list[ErrorDetail]


class ErrorEnvelope(BaseModel):
    """Every error answer: ``{"error": {code, message, details}}``."""

    model_config = _Answer

    error: ErrorBody


# -- WebSocket: server to client ----------------------------------------------


class ScalarStep(BaseModel):
    """One step's training metrics in a ``JOB_PROGRESS`` event."""

    model_config = _Answer

    step: int = Field(ge=0)
    timestamp: datetime
    values: dict[str, float]
    cost: Cost | None = Field(
        None,
        ge=0,
        description="the job's cost so far at timestamp (absent from events stored by a "
        "server from before it was sent)",
    )


class ProgressData(BaseModel):
    """``data`` of ``JOB_PROGRESS``; ``scalars`` only when the update carried some."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    status: JobStatus
    progress: float = Field(ge=0, le=100)
    current_operation: str | None = Field(alias="currentOperation")
    metrics: Sample | None
    time_remaining: Seconds | None = Field(alias="timeRemaining", ge=0)
    cost_so_far: Cost | None = Field(alias="costSoFar", ge=0)
    estimated_total_cost: Cost | None = Field(alias="estimatedTotalCost", ge=0)
    elapsed: Seconds | None = Field(ge=0)
    currency: str
    timestamp: datetime
    scalars: list[ScalarStep] | None = None


class LogsData(BaseModel):
    """``data`` of ``JOB_LOGS``."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    logs: list[LogLine]


class CompletedData(BaseModel):
    """``data`` of ``JOB_COMPLETED``."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    status: Literal["completed", "failed", "cancelled"]
    result: Any
    error: str | None
    completed_at: datetime = Field(alias="completedAt")
    cost_so_far: Cost | None = Field(alias="costSoFar", ge=0)
    currency: str
    receipt: ReceiptAnswer | None = Field(
        default=None,
        description="the job's receipt (GET /receipt), in the live event only, not in a replay",
    )


class StalledData(BaseModel):
    """``data`` of ``JOB_STALLED``: seconds since the last update."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    stalled: Literal[True]
    last_update_at: datetime = Field(alias="lastUpdateAt")
    silent_for: Seconds = Field(alias="silentFor", ge=0)
    timestamp: datetime


class ResumedData(BaseModel):
    """``data`` of ``JOB_RESUMED``: how long the job was silent."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    stalled: Literal[False]
    silent_for: Seconds = Field(alias="silentFor", ge=0)
    timestamp: datetime


class AlertData(BaseModel):
    """``data`` of ``JOB_ALERT``."""

    model_config = _Answer

    job_id: str = Field(alias="jobId")
    alert: Alert


class JobSummary(BaseModel):
    """One job in ``JOBS_CHANGED``."""

    model_config = _Answer

    id: str
    name: str | None
    status: JobStatus
    progress: float = Field(ge=0, le=100)
    current_operation: str | None = Field(alias="currentOperation")
    time_remaining: Seconds | None = Field(alias="timeRemaining", ge=0)
    cost_so_far: Cost | None = Field(alias="costSoFar", ge=0)
    estimated_total_cost: Cost | None = Field(alias="estimatedTotalCost", ge=0)
    currency: str
    price_per_hour: float | None = Field(alias="pricePerHour")
    gpu_utilization: float | None = Field(alias="gpuUtilization")
    gpu_temperature: float | None = Field(alias="gpuTemperature")
    updated_at: datetime = Field(alias="updatedAt")
    started_at: datetime | None = Field(alias="startedAt")
    completed_at: datetime | None = Field(alias="completedAt")
    created_at: datetime = Field(alias="createdAt")
    worker_id: str | None = Field(alias="workerId")
    stalled: bool
    alerts: int = Field(ge=0)
    world_size: int | None = Field(
        alias="worldSize", description="a distributed job's ranks; null: one worker"
    )
    workers: int = Field(ge=0, description="its workers that report")
    nodes: int = Field(ge=0, description="their distinct nodes")
    budget: Cost | None = Field(ge=0, description="the most it should cost; null: none")


class JobsChangedData(BaseModel):
    """``data`` of ``JOBS_CHANGED``."""

    model_config = _Answer

    jobs: list[JobSummary]


class _Event(BaseModel):
    model_config = _Answer

    job_id: str = Field(alias="jobId")
    seq: int = Field(ge=1)


class ProgressEvent(_Event):
    """``{type: "JOB_PROGRESS", jobId, seq, data}``."""

    type: Literal["JOB_PROGRESS"]
    data: ProgressData


class LogsEvent(_Event):
    """``{type: "JOB_LOGS", jobId, seq, data}``."""

    type: Literal["JOB_LOGS"]
    data: LogsData


class CompletedEvent(_Event):
    """``{type: "JOB_COMPLETED", jobId, seq, data}``."""

    type: Literal["JOB_COMPLETED"]
    data: CompletedData


class StalledEvent(_Event):
    """``{type: "JOB_STALLED", jobId, seq, data}``."""

    type: Literal["JOB_STALLED"]
    data: StalledData


class ResumedEvent(_Event):
    """``{type: "JOB_RESUMED", jobId, seq, data}``."""

    type: Literal["JOB_RESUMED"]
    data: ResumedData


class AlertEvent(_Event):
    """``{type: "JOB_ALERT", jobId, seq, data}``."""

    type: Literal["JOB_ALERT"]
    data: AlertData


class JobsChanged(BaseModel):
    """``{type: "JOBS_CHANGED", seq, data: {jobs}}`` of ``subscribe:jobs``; ``seq`` is
    the server time of the tick in milliseconds."""

    model_config = _Answer

    type: Literal["JOBS_CHANGED"]
    seq: int = Field(ge=0)
    data: JobsChangedData


class Subscribed(BaseModel):
    """The ack of ``subscribe:job``: events up to ``seq`` are replayed or already read.
    A ``seq`` below the ``since`` asked for: the job's history differs from the
    client's (a replaced database), and the whole job is replayed."""

    model_config = _Answer

    type: Literal["subscribed"]
    subscription_id: str = Field(alias="subscriptionId")
    seq: int = Field(ge=0)


class Unsubscribed(BaseModel):
    """The ack of ``unsubscribe:job``."""

    model_config = _Answer

    type: Literal["unsubscribed"]
    subscription_id: str = Field(alias="subscriptionId")


class SocketError(BaseModel):
    """A refused message or subscription; the connection stays open."""

    model_config = _Answer

    type: Literal["error"]
    subscription_id: str | None = Field(None, alias="subscriptionId")
    error: ErrorBody


SERVER_MESSAGES: tuple[type[BaseModel], ...] = (
    ProgressEvent,
    LogsEvent,
    CompletedEvent,
    StalledEvent,
    ResumedEvent,
    AlertEvent,
    JobsChanged,
    Subscribed,
    Unsubscribed,
    SocketError,
)
"""Every message the server sends on ``/ws``."""
