"""The jobwatch wire contract, free of IO.

What a request may carry: the request and WebSocket message types with their
validation (pydantic v2), ``parse_body``, ``parse_query`` and
``parse_client_message``, whose errors name the JSON path of each bad field. The
limits, names and timestamp format come from :mod:`jobwatch.contract.basics`
(re-exported here); what the server makes of a valid request (time remaining,
cost, stalls) is :mod:`jobwatch.server.core.rules`. Both sides import this
module; it imports no flask, requests, ipywidgets or pynvml.

Units on the wire: progress and utilization in percent (0-100), memory in MB
(MiB, as nvidia-smi reports), temperature in degrees Celsius, power in watts,
durations in seconds, cost in the job's currency. Timestamps are ISO 8601 in
UTC with milliseconds and a ``Z``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import pydantic
import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema

from jobwatch.contract.basics import (
    ALERT_LEVELS,
    CURRENCY_RULE,
    FINISHED_STATUSES,
    JOB_ID_PATTERN,
    JOB_STATUSES,
    LOG_LEVELS,
    LOG_TIME_WINDOW,
    MAX_ALERTS,
    MAX_BODY_BYTES,
    MAX_CLOCK_SKEW,
    MAX_CONFIG_BYTES,
    MAX_LOG_LINES,
    MAX_MESSAGE_BYTES,
    MAX_SCALAR_NAMES,
    MAX_SCALAR_POINTS,
    MAX_SEND_DELAY,
    MAX_STEP,
    MAX_TEXT,
    MAX_UPDATE_ID,
    MAX_WORLD_SIZE,
    SCALAR_NAME_PATTERN,
    SCALAR_NAME_RULE,
    SENT_LATE_AFTER,
    check_keys,
    currency_code,
    format_ts,
    parse_ts,
    sent_late,
    truncate_message,
    valid_job_id,
    valid_scalar_name,
)
from jobwatch.contract.basics import (
    epoch as _epoch,
)
from jobwatch.contract.error_paths import error_details
from jobwatch.contract.metrics import GPU_METRICS, METRICS, Metric, combine, metric
from jobwatch.contract.wire_input import (
    may_hold_negative_zero,
    positive_zero,
    query_pairs,
    repeated_parameters,
)
from jobwatch.errors import ValidationError

__all__ = [
    "ALERT_LEVELS",
    "CURRENCY_RULE",
    "FINISHED_STATUSES",
    "JOB_ID_PATTERN",
    "JOB_STATUSES",
    "LOG_LEVELS",
    "LOG_TIME_WINDOW",
    "MAX_ALERTS",
    "MAX_BODY_BYTES",
    "MAX_CLOCK_SKEW",
    "MAX_CONFIG_BYTES",
    "MAX_LOG_LINES",
    "MAX_MESSAGE_BYTES",
    "MAX_SCALAR_NAMES",
    "MAX_SCALAR_POINTS",
    "MAX_SEND_DELAY",
    "MAX_TEXT",
    "MAX_UPDATE_ID",
    "MAX_WORLD_SIZE",
    "SCALAR_NAME_PATTERN",
    "SCALAR_NAME_RULE",
    "SENT_LATE_AFTER",
    "AlertIn",
    "CompleteRequest",
    "GpuSample",
    "JobSpec",
    "LogLineIn",
    "Metrics",
    "ProgressUpdate",
    "ScalarPoint",
    "SentLater",
    "check_config",
    "check_keys",
    "currency_code",
    "format_ts",
    "parse_body",
    "parse_ts",
    "sent_late",
    "truncate_message",
    "valid_job_id",
    "valid_scalar_name",
]

_NON_FINITE = re.compile(rb"NaN|Infinity")
"""Tokens JSON does not have but lenient parsers accept; a body holding one is
parsed strictly once more (the words may also sit inside a string)."""

# -- request types ---------------------------------------------------------

_Model = TypeVar("_Model", bound=BaseModel)

_Strict = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", populate_by_name=True)


def _no_nul(value: str) -> str:
    """Refuse U+0000: PostgreSQL text cannot hold it, so no backend stores it."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


NoNul = AfterValidator(_no_nul)
Text = Annotated[str, Field(max_length=MAX_TEXT), NoNul]
Percent = Annotated[float, Field(ge=0, le=100)]


def _metric_type(entry: Metric) -> Any:
    """``entry``'s value type: a number in its range, or ``None``."""
    if entry.exclusive_minimum:
        return Annotated[float, Field(gt=entry.minimum, le=entry.maximum)] | None
    return Annotated[float, Field(ge=entry.minimum, le=entry.maximum)] | None


def _at_most(entry: Metric, bound: Metric) -> Any:
    """A validator refusing a value of ``entry`` above ``bound``'s in the same sample."""

    def check(cls: type, value: float | None, info: pydantic.ValidationInfo) -> float | None:
        limit = info.data.get(bound.column)
        if value is not None and limit is not None and value > limit:
            raise ValueError(
                f"must not exceed {bound.wire} ({value:g} {entry.unit} > {limit:g} {bound.unit})"
            )
        return value

    return field_validator(entry.column)(check)


def _validation_order(entries: tuple[Metric, ...]) -> list[Metric]:
    """``entries`` with each ``at_most`` bound before the metric it bounds, so
    that the bound's check can see it (pydantic validates in field order)."""
    order: list[Metric] = []
    for entry in entries:
        for needed in (*([metric(entry.at_most)] if entry.at_most else []), entry):
            if needed not in order:
                order.append(needed)
    return order


def _metric_fields(name: str, entries: tuple[Metric, ...]) -> Any:
    """A pydantic model with a field per metric of ``entries`` (``None`` by
    default, aliased to its wire name) and their ``at_most`` checks."""
    fields: dict[str, Any] = {
        entry.column: (_metric_type(entry), Field(None, alias=entry.wire))
        for entry in _validation_order(entries)
    }
    return pydantic.create_model(
        name,
        __config__=_Strict,
        __module__=__name__,
        __validators__={
            f"_{entry.column}_at_most": _at_most(entry, metric(entry.at_most))
            for entry in entries
            if entry.at_most
        },
        **fields,
    )


if TYPE_CHECKING:

    class _GpuFields(BaseModel):
        """The fields of :data:`~jobwatch.contract.metrics.GPU_METRICS` (built below)."""

    class _SampleFields(BaseModel):
        """The fields of :data:`~jobwatch.contract.metrics.METRICS` (built below)."""

else:
    _GpuFields = _metric_fields("_GpuFields", GPU_METRICS)
    _SampleFields = _metric_fields("_SampleFields", METRICS)


class GpuSample(_GpuFields):
    """One GPU's sample: the GPU metric fields plus ``index``, ``uuid`` and ``name``.

    Each metric is a number or ``None`` (unsupported on this GPU or MIG slice).
    """

    index: Annotated[int, Field(ge=0, le=1024)] | None = None
    uuid: Text | None = None
    name: Text | None = None


# The docstring is the API document's description of ``metrics``; the fields
# and their ranges are those of jobwatch.contract.metrics.METRICS.
class Metrics(_SampleFields):
    """The ``metrics`` object of a progress update.

    GPU fields (each a number or ``None``): ``gpuUtilization`` % 0-100,
    ``gpuMemoryUsed`` MB >= 0, ``gpuMemoryTotal`` MB > 0, ``gpuTemperature``
    Celsius -40..150, ``powerUsage`` W 0..5000; memory at most 10,000,000 MB,
    which rejects NVML's sentinel values such as 4294967295. Optional ``gpus``:
    per-GPU samples. When ``gpus`` is given and a flat field is absent, the flat
    field is filled from them: mean utilization, summed memory and power,
    hottest temperature.

    System fields (optional, each a number or ``None``; the worker's machine,
    not one GPU): ``cpuUtilization`` % 0-100; ``memoryUsed`` MB >= 0 and at
    most ``memoryTotal`` (> 0), both at most 1,000,000,000 MB;
    ``processMemory`` MB 0..1,000,000,000 (resident memory of the reporting
    process and its children); ``diskUsed`` MB >= 0 and at most ``diskTotal``
    (> 0), both at most 1e12 MB; ``diskRead``, ``diskWrite``, ``networkIn``,
    ``networkOut`` in bytes per second, 0..1e12.
    """

    gpus: list[GpuSample] | None = Field(None, max_length=1024)

    @model_validator(mode="after")
    def _fill_from_gpus(self) -> Metrics:
        if not self.gpus:
            return self
        for entry in GPU_METRICS:
            if getattr(self, entry.column) is None:
                values = [v for g in self.gpus if (v := getattr(g, entry.column)) is not None]
                if values:
                    setattr(self, entry.column, combine(entry, values))
        return self

    def flat(self) -> dict[str, float | None]:
        """Every metric's flat field by its wire name, in wire order (values may be ``None``)."""
        return {entry.wire: getattr(self, entry.column) for entry in METRICS}


class LogLineIn(BaseModel):
    """One entry of ``logLines``: ``level`` (info, warning or error, any case;
    stored in lower case), ``message`` (text; over 16 KiB of UTF-8 it is
    truncated with a marker) and an optional worker ``timestamp``."""

    model_config = _Strict

    level: str
    message: Annotated[str, NoNul]
    timestamp: datetime | None = None

    @field_validator("level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        lowered = level.lower()
        if lowered not in LOG_LEVELS:
            raise ValueError(f"unknown level {level!r}; allowed: {', '.join(LOG_LEVELS)}")
        return lowered

    @field_validator("message")
    @classmethod
    def _truncate(cls, message: str) -> str:
        return truncate_message(message)

    def time_at(self, now: float) -> float:
        """When the line was written, in server seconds since the epoch.

        The worker's ``timestamp`` (naive means UTC) when it lies within
        :data:`LOG_TIME_WINDOW` seconds before ``now``; else ``now``, so that a
        wrong worker clock can never put a line in the future or the distant past.
        """
        if self.timestamp is None:
            return now
        at = _epoch(self.timestamp)
        return at if now - LOG_TIME_WINDOW <= at <= now else now


def _scalar_name(name: str) -> str:
    if not valid_scalar_name(name):
        raise ValueError(f"scalar name {name[:80]!r} is not allowed; names are {SCALAR_NAME_RULE}")
    return name


ScalarName = Annotated[
    str,
    AfterValidator(_scalar_name),
    WithJsonSchema({"type": "string", "pattern": SCALAR_NAME_PATTERN}),
]


class ScalarPoint(BaseModel):
    """One step's training metrics: ``{"step": 120, "values": {"loss": 0.23}}``.

    ``step`` is an integer >= 0 (the training step, epoch or batch count the
    values belong to); ``values`` maps 1-100 names (see :func:`valid_scalar_name`)
    to finite numbers (booleans are refused).
    """

    model_config = _Strict

    step: Annotated[int, Field(ge=0, le=MAX_STEP)]
    values: Annotated[dict[ScalarName, float], Field(min_length=1, max_length=MAX_SCALAR_NAMES)]


class AlertIn(BaseModel):
    """An alert from training code: ``title`` (1-200 characters), ``text`` (at
    most 4,096) and ``level`` (info, warning or error; default warning)."""

    model_config = _Strict

    title: Annotated[str, Field(min_length=1, max_length=200), NoNul]
    text: Annotated[str, Field(max_length=4096), NoNul] | None = None
    level: Literal["info", "warning", "error"] = "warning"


MAX_EXPECTED_SILENCE = 7 * 86400.0
"""Longest ``expectSilenceFor`` accepted, in seconds (a week)."""


class SentLater(BaseModel):
    """``timestamp`` and ``sentAt`` of a request that may be sent later than it
    happened (a spool sent by ``jobwatch sync``, an outbox drained after an outage).

    Both are on the worker's clock: ``timestamp`` when the request was composed
    (or the job ended), ``sentAt`` when it was sent. Their difference is the
    request's age, which the server takes from its own time of arrival to place
    the job's start and end; a skew between the two clocks cancels out (as in
    :meth:`ProgressUpdate.call_at`).
    """

    model_config = _Strict

    timestamp: datetime | None = Field(
        None,
        description=(
            "The worker's clock when the request was made (on complete: when the job "
            "ended). It orders progress updates; with sentAt it dates a late request."
        ),
    )
    sent_at: datetime | None = Field(
        None,
        alias="sentAt",
        description=(
            "When this request was sent, on the worker's clock (the clock of timestamp). "
            "With timestamp it gives the request's age (sentAt - timestamp, 0 to 30 days): "
            "the server places the job's startedAt and completedAt that long before it "
            'arrived (docs/api.md "Sent later"). Needs timestamp.'
        ),
    )

    @field_validator("sent_at")
    @classmethod
    def _age_can_be(
        cls, sent_at: datetime | None, info: pydantic.ValidationInfo
    ) -> datetime | None:
        if sent_at is None:
            return None
        composed = info.data.get("timestamp")
        if composed is None:
            raise ValueError("needs timestamp (when the request was composed, on the same clock)")
        age = _epoch(sent_at) - _epoch(composed)
        if age < 0:
            raise ValueError(
                f"is {-age:.3f} s before timestamp: a request is sent after it is made"
            )
        if age > MAX_SEND_DELAY:
            raise ValueError(
                f"is {age / 86400:.1f} days after timestamp; at most {MAX_SEND_DELAY / 86400:.0f}"
            )
        return sent_at

    def age(self) -> float:
        """Seconds between ``timestamp`` and ``sentAt`` (0 without ``sentAt``)."""
        if self.sent_at is None or self.timestamp is None:
            return 0.0
        return _epoch(self.sent_at) - _epoch(self.timestamp)


class ProgressUpdate(SentLater):
    """Body of ``POST /api/jobs/{jobId}/progress``.

    ``workerId`` (1-1024 characters) and ``progress`` (number, 0-100 %) are
    required; ``currentOperation``, ``metrics``, ``logLines`` (at most 1000)
    and ``timestamp`` (the worker's clock: it orders updates and, with
    ``sentAt``, dates a late one, :class:`SentLater`) may be absent or ``null``. ``updateId`` (1-64 characters, unique per update of a
    worker) makes a retried update apply once: a repeat is answered as the first
    time. ``scalars`` (optional): training metrics, one :class:`ScalarPoint` or
    a list of them, at most 1,000 values in all. ``alerts`` (optional): at most
    100 :class:`AlertIn` from the training code. ``resumedFrom`` (optional,
    0-100 %): the worker started part-way, at this progress (a run resumed from
    a checkpoint); above 0 it makes the job's time remaining wait until
    progress moves (docs/api.md "Estimates").
    """

    model_config = _Strict

    worker_id: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), NoNul] = Field(
        alias="workerId"
    )
    progress: Percent
    current_operation: Text | None = Field(None, alias="currentOperation")
    metrics: Metrics | None = None
    log_lines: list[LogLineIn] | None = Field(None, alias="logLines", max_length=MAX_LOG_LINES)
    update_id: Annotated[str, Field(min_length=1, max_length=MAX_UPDATE_ID), NoNul] | None = Field(
        None, alias="updateId"
    )
    scalars: ScalarPoint | list[ScalarPoint] | None = None
    alerts: Annotated[list[AlertIn], Field(max_length=MAX_ALERTS)] | None = None
    resumed_from: Percent | None = Field(
        None,
        alias="resumedFrom",
        description=(
            "The worker started part-way, at this progress in percent: a run resumed "
            "from a checkpoint (tqdm's initial). Above 0 it declares a resume: time "
            "remaining is null until progress moves, then counts only the progress "
            "made since. Absent, null or 0: the run started from scratch."
        ),
    )

    rank: Annotated[int, Field(ge=0, le=MAX_WORLD_SIZE - 1, strict=True)] | None = Field(
        None,
        description=(
            "This worker's global rank in a distributed job (0 to worldSize - 1). "
            "Sent with worldSize; rank 0 sets the job's progress and operation."
        ),
    )
    world_size: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE, strict=True)] | None = Field(
        None,
        alias="worldSize",
        description=(
            "How many ranks the job has: a job reported to with a world size accepts "
            'that many workers, one per rank (docs/api.md "Distributed jobs").'
        ),
    )
    local_rank: Annotated[int, Field(ge=0, le=MAX_WORLD_SIZE - 1, strict=True)] | None = Field(
        None, alias="localRank", description="This worker's rank on its node."
    )
    node: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), NoNul] | None = Field(
        None, description="The node (machine) this worker runs on; default its workerId."
    )
    node_price_per_hour: Annotated[float, Field(ge=0, le=1e9)] | None = Field(
        None,
        alias="nodePricePerHour",
        description=(
            "This node's own price per hour, in the job's currency. One worker per node "
            "sends it (the Reporter's local rank 0); the job's cost is then the sum over "
            "nodes of each node's reported time times its price."
        ),
    )

    last_call_at: datetime | None = Field(
        None,
        alias="lastCallAt",
        description=(
            "When the training code last called the reporter (update, log, log_metrics, "
            "track), on the worker's clock, as opposed to the reporter's own background "
            "samples. A job whose worker sends it can be judged hung: reports arrive but "
            'the training code makes no call for longer than its hang threshold (docs/api.md "Hangs"). '
            "Absent (the seed's workers): never hung."
        ),
    )
    expect_silence_for: Annotated[float, Field(ge=0, le=MAX_EXPECTED_SILENCE)] | None = Field(
        None,
        alias="expectSilenceFor",
        description=(
            "Seconds (0 to 7 days) the training code may make no call after lastCallAt "
            "without the job being hung: a long evaluation or checkpoint says so. Absent or "
            "null: the job's own threshold."
        ),
    )

    @model_validator(mode="after")
    def _rank_in_world(self) -> ProgressUpdate:
        if (self.rank is None) != (self.world_size is None):
            raise ValueError("rank and worldSize go together: give both or neither")
        if self.rank is not None and self.world_size is not None and self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} must be below worldSize {self.world_size}")
        return self

    @field_validator("scalars")
    @classmethod
    def _few_points(
        cls, scalars: ScalarPoint | list[ScalarPoint] | None
    ) -> ScalarPoint | list[ScalarPoint] | None:
        points = [scalars] if isinstance(scalars, ScalarPoint) else scalars or []
        n = sum(len(p.values) for p in points)
        if n > MAX_SCALAR_POINTS:
            raise ValueError(
                f"carries {n} values; at most {MAX_SCALAR_POINTS} per update (send the rest next)"
            )
        return scalars

    def scalar_points(self) -> list[ScalarPoint]:
        """``scalars`` as a list (one object, a list, or none)."""
        if self.scalars is None:
            return []
        return [self.scalars] if isinstance(self.scalars, ScalarPoint) else self.scalars

    def call_ts(self) -> float | None:
        """``lastCallAt`` as the worker's clock, seconds since the epoch, or ``None``."""
        return None if self.last_call_at is None else _epoch(self.last_call_at)

    def call_at(self, now: float) -> float | None:
        """Server time of the training code's last call (``lastCallAt``), or ``None``.

        With a ``timestamp`` the call is placed ``timestamp - lastCallAt`` seconds
        (at least 0) before ``now``, so the worker's clock offset cancels out;
        without one, ``lastCallAt`` itself, never later than ``now``.
        """
        if self.last_call_at is None:
            return None
        called = _epoch(self.last_call_at)
        if self.timestamp is None:
            return min(now, called)
        return now - max(0.0, _epoch(self.timestamp) - called)

    def worker_ts(self, now: float) -> float | None:
        """The worker's timestamp in seconds since the epoch, for ordering updates.

        ``None`` when absent or more than :data:`MAX_CLOCK_SKEW` seconds from
        the server's ``now``: one wild timestamp must not freeze a job by making
        every later update look late.
        """
        if self.timestamp is None:
            return None
        at = _epoch(self.timestamp)
        return at if abs(at - now) <= MAX_CLOCK_SKEW else None


class JobSpec(BaseModel):
    """Body of ``POST /api/jobs`` and ``PUT /api/jobs/{jobId}``.

    All optional: ``id`` (see :func:`valid_job_id`; generated when absent),
    ``name``, ``workerId`` (binds the job), ``pricePerHour`` (>= 0, in
    ``currency`` per hour), ``currency`` (a code, see :func:`currency_code`;
    default ``QUBIC``), ``providerId``, ``worldSize`` (a distributed job's ranks),
    ``budget`` (>= 0, in ``currency``).
    ``config`` (the run's hyperparameters: a JSON object of at most
    :data:`MAX_CONFIG_BYTES`, replaced whole by a later PUT).
    """

    model_config = _Strict

    id: str | None = Field(None, json_schema_extra={"pattern": JOB_ID_PATTERN})
    name: Text | None = None
    worker_id: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), NoNul] | None = Field(
        None, alias="workerId"
    )
    price_per_hour: Annotated[float, Field(ge=0, le=1e9)] | None = Field(None, alias="pricePerHour")
    currency: Annotated[str, AfterValidator(currency_code)] | None = None
    budget: Annotated[float, Field(ge=0, le=1e12)] | None = Field(
        None,
        description=(
            "Most the job should cost, in its currency (0 to 1e12). Alerts (source "
            "budget) when the estimated total cost first exceeds it, when 80 % of it is "
            'spent and when all of it is (docs/api.md "Budgets").'
        ),
    )
    provider_id: Text | None = Field(None, alias="providerId")
    world_size: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE, strict=True)] | None = Field(
        None,
        alias="worldSize",
        description=(
            "A distributed job: how many ranks (workers) report to it. Such a job is "
            "not bound by workerId; each rank binds its own place (docs/api.md "
            '"Distributed jobs").'
        ),
    )
    config: dict[str, Any] | None = Field(
        None,
        description=(
            "The run's configuration (hyperparameters, training arguments): a JSON "
            "object of at most 64 KiB as compact UTF-8 JSON, with finite numbers, "
            "integers of at most 64 bits and at most 64 levels of nesting (objects "
            "and arrays, the config object itself counting as 1). Stored "
            "and returned as sent; a later PUT with a config replaces it whole."
        ),
    )

    @field_validator("config")
    @classmethod
    def _config(cls, config: dict[str, Any] | None) -> dict[str, Any] | None:
        if config is not None:
            check_config(config)
        return config

    @field_validator("id")
    @classmethod
    def _job_id(cls, job_id: str | None) -> str | None:
        if job_id is not None and not valid_job_id(job_id):
            raise ValueError(
                "must be 1-128 characters of letters, digits and . _ : @ -, "
                "starting with a letter or digit"
            )
        return job_id


class CompleteRequest(SentLater):
    """Body of ``POST /api/jobs/{jobId}/complete``: ``workerId`` (required),
    ``status`` (completed, failed or cancelled; default completed), ``result``
    (any JSON), ``error`` (text, for failures), and ``timestamp`` (when the job
    ended, on the worker's clock) with ``sentAt`` (:class:`SentLater`)."""

    model_config = _Strict

    worker_id: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), NoNul] = Field(
        alias="workerId"
    )
    status: Literal["completed", "failed", "cancelled"] = "completed"
    result: Any = None
    error: Annotated[str, Field(max_length=MAX_MESSAGE_BYTES), NoNul] | None = None

    @field_validator("result")
    @classmethod
    def _portable(cls, result: Any) -> Any:
        _check_portable(result, depth=0)
        return result


MAX_RESULT_DEPTH = 64
"""Deepest nesting of a job's ``result`` and ``config``: objects and arrays, one
inside the other, the outermost (the config object itself) counting as 1; a
scalar adds no level. ``{"a": {"b": 1}}`` is 2 levels. The server
(:class:`JobSpec`, :class:`CompleteRequest`) and the Reporter check it with
the same function."""


def config_bytes(config: Any) -> int:
    """Bytes of ``config`` as compact UTF-8 JSON, the measure of :data:`MAX_CONFIG_BYTES`."""
    return len(json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode())


def check_config(config: Any) -> None:
    """Refuse what cannot be a job's ``config``.

    Raises
    ------
    ValueError
        ``config`` is not an object with string keys, holds values other
        clients cannot read back (NaN, infinities, integers beyond 64 bits,
        nesting deeper than :data:`MAX_RESULT_DEPTH`, non-JSON types), or is
        over :data:`MAX_CONFIG_BYTES` as compact UTF-8 JSON.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a JSON object, got {type(config).__name__}")
    _check_portable(config, depth=0)
    try:
        size = config_bytes(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config must be JSON: {exc}") from None
    if size > MAX_CONFIG_BYTES:
        raise ValueError(
            f"config is {size} bytes as compact JSON; at most {MAX_CONFIG_BYTES} (64 KiB)"
        )


_INT64 = 2**63


def _check_portable(value: Any, depth: int) -> None:
    """Refuse JSON that other clients cannot read back: NaN and infinities,
    integers beyond 64 bits (JavaScript already rounds past 2**53) and nesting
    deeper than :data:`MAX_RESULT_DEPTH` levels. ``depth`` is the number of
    objects and arrays around ``value``; an object or array adds one level for
    itself, a scalar none."""
    if isinstance(value, (dict, list)):
        depth += 1
        if depth > MAX_RESULT_DEPTH:
            raise ValueError(
                f"nested deeper than {MAX_RESULT_DEPTH} levels (objects and arrays, "
                "the outermost counting as 1)"
            )
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(
                "integers must fit in 64 bits (-2**63 to 2**63-1); send large numbers as strings"
            )
    elif isinstance(value, dict):
        for item in value.values():
            _check_portable(item, depth)
    elif isinstance(value, list):
        for item in value:
            _check_portable(item, depth)


def parse_body(model: type[_Model], body: bytes) -> _Model:
    """Validate a JSON request body against ``model``.

    Parameters
    ----------
    model:
        One of the request types of this module.
    body:
        The raw request bytes (UTF-8 JSON). NaN and Infinity tokens, invalid
        UTF-8 and lone surrogates are refused.

    Returns
    -------
    The validated model instance; a number sent as negative zero (``-0.0``) is
    0.0 in it, anywhere (JavaScript writes -0 as ``0`` too).

    Raises
    ------
    jobwatch.errors.ValidationError
        ``code="invalid_json"`` when the body is not JSON, else
        ``code="validation_error"`` with one detail per bad field, named by its
        JSON path (``metrics.gpuUtilization``, ``logLines[2].level``).
    """
    try:
        if _NON_FINITE.search(body):  # rare: a string may hold these words too
            pydantic_core.from_json(body, allow_inf_nan=False)
        parsed = model.model_validate_json(body)
    except ValueError as exc:  # from_json's error, not a field error
        if isinstance(exc, pydantic.ValidationError):
            raise _body_error(exc, model) from None
        raise ValidationError(
            f"request body is not valid JSON: {exc} (NaN and Infinity are not JSON numbers)",
            code="invalid_json",
        ) from None
    if may_hold_negative_zero(body):
        positive_zero(parsed)  # in place
    return parsed


def _body_error(exc: pydantic.ValidationError, model: type[BaseModel]) -> ValidationError:
    """The :class:`ValidationError` for pydantic's errors on a request body."""
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ValidationError(
            f"request body is not valid JSON: {errors[0]['msg']}", code="invalid_json"
        )
    if any(e["type"] == "model_type" and not e["loc"] for e in errors):
        return ValidationError("request body must be a JSON object")
    details = error_details(errors, model.__pydantic_core_schema__)
    return ValidationError(
        f"{len(details)} invalid field{'s' if len(details) != 1 else ''} in request body",
        details=details,
    )


# -- query strings and WebSocket messages ----------------------------------

_Query = ConfigDict(strict=False, allow_inf_nan=False, extra="ignore", populate_by_name=True)
MAX_ID = 2**62
"""Largest offset, id or seq accepted (databases store 64-bit integers)."""
MAX_TIME_RANGE = 30 * 24 * 3600.0
"""Longest metrics window, in seconds (30 days)."""


class MetricsQuery(BaseModel):
    """``GET /metrics`` parameters: ``timeRange`` seconds (> 0, at most 30 days,
    default 60) and ``maxPoints`` (2 to 10,000, optional)."""

    model_config = _Query

    time_range: Annotated[float, Field(gt=0, le=MAX_TIME_RANGE)] = Field(60.0, alias="timeRange")
    max_points: Annotated[int, Field(ge=2, le=10_000)] | None = Field(None, alias="maxPoints")


class ScalarsQuery(BaseModel):
    """``GET /scalars`` parameters: ``names`` (comma-separated; default all),
    ``timeRange`` seconds (> 0, at most 30 days; default the whole job) and
    ``maxPoints`` per name (2 to 10,000, optional)."""

    model_config = _Query

    names: str | None = None
    time_range: Annotated[float, Field(gt=0, le=MAX_TIME_RANGE)] | None = Field(
        None, alias="timeRange"
    )
    max_points: Annotated[int, Field(ge=2, le=10_000)] | None = Field(None, alias="maxPoints")

    @field_validator("names")
    @classmethod
    def _known_names(cls, names: str | None) -> str | None:
        if names is None:
            return None
        parts = names.split(",")
        if len(parts) > MAX_SCALAR_NAMES:
            raise ValueError(f"at most {MAX_SCALAR_NAMES} names")
        for name in parts:
            _scalar_name(name)
        return names

    def name_list(self) -> list[str] | None:
        """The requested names, or ``None`` for all."""
        return None if self.names is None else self.names.split(",")


class Page(BaseModel):
    """``limit`` (1-1000, default 100) and ``offset`` (>= 0, default 0)."""

    model_config = _Query

    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=MAX_ID)] = 0


class LogsQuery(Page):
    """``GET /logs`` parameters: ``level`` (info, warning or error; any case),
    ``rank`` and ``node`` (the lines of one rank or node of a distributed job)
    plus a page; with ``beforeId``, the page is the ``limit`` lines just before
    that line id (for loading older lines on demand), still oldest first."""

    level: str | None = None
    before_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(None, alias="beforeId")
    rank: Annotated[int, Field(ge=0, le=MAX_WORLD_SIZE - 1)] | None = None
    node: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), NoNul] | None = None

    @field_validator("level")
    @classmethod
    def _known_level(cls, level: str | None) -> str | None:
        if level is None:
            return None
        lowered = level.lower()
        if lowered not in LOG_LEVELS:
            raise ValueError(f"unknown level {level!r}; allowed: {', '.join(LOG_LEVELS)}")
        return lowered


class JobsQuery(Page):
    """``GET /api/jobs`` parameters: ``status`` (one of :data:`JOB_STATUSES`) plus a page."""

    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None


def parse_query(model: type[_Model], args: Mapping[str, str] | Iterable[tuple[str, str]]) -> _Model:
    """Validate query-string parameters (strings) against ``model``.

    Parameters
    ----------
    model:
        One of the query types of this module.
    args:
        The parameters: ``(name, value)`` pairs, a mapping, or a multi-valued
        mapping such as Werkzeug's ``request.args`` (every value counts).
        Parameters ``model`` does not have are ignored.

    Raises
    ------
    jobwatch.errors.ValidationError
        One detail per bad parameter, named as in the URL; a parameter of
        ``model`` given more than once (also once by name and once by alias)
        is bad, whatever its values.
    """
    pairs = query_pairs(args)
    repeated = repeated_parameters(model, pairs)
    if repeated:
        raise ValidationError(
            f"{len(repeated)} invalid query parameter{'s' if len(repeated) != 1 else ''}",
            details=[
                {"field": name, "message": "given more than once; give it at most once"}
                for name in repeated
            ],
        )
    try:
        parsed = model.model_validate(dict(pairs))
    except pydantic.ValidationError as exc:
        raise _as_validation_error(exc, "query parameter", model.__pydantic_core_schema__) from None
    positive_zero(parsed)  # in place
    return parsed


class LogLinesView(BaseModel):
    """The log lines a subscriber of a distributed job wants: one rank's and/or one
    node's (``{}``: every line)."""

    model_config = _Strict

    rank: Annotated[int, Field(ge=0, le=MAX_WORLD_SIZE - 1, strict=True)] | None = None
    node: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), NoNul] | None = None


class SubscribeMessage(BaseModel):
    """``{"type": "subscribe:job", "subscriptionId": jobId, "since"?: seq, "logs"?: {rank?,
    node?}, "progress"?: "all" | "changes"}``; ``logs`` and ``progress`` are an extension
    (docs/api.md "Streaming")."""

    model_config = _Strict

    type: Literal["subscribe:job"]
    subscription_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        alias="subscriptionId"
    )
    since: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None
    logs: LogLinesView | None = Field(
        None,
        description="Only the log lines of this rank and/or node in JOB_LOGS (an event "
        "left without a line is not sent); absent: every line.",
    )
    progress: Literal["all", "changes"] = Field(
        "all",
        description='"changes": a JOB_PROGRESS event only when it carries a GPU sample or '
        "training metrics, changes the status, progress or operation, or a second after "
        "the last one sent (the other ranks of a distributed job repeat rank 0's figures); "
        '"all" (default): every one.',
    )


class UnsubscribeMessage(BaseModel):
    """``{"type": "unsubscribe:job", "subscriptionId": jobId}``."""

    model_config = _Strict

    type: Literal["unsubscribe:job"]
    subscription_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        alias="subscriptionId"
    )


class SubscribeJobsMessage(BaseModel):
    """``{"type": "subscribe:jobs", "status"?: status, "since"?: ms}``: summaries of
    every job (of one status), streamed as ``JOBS_CHANGED`` (an extension)."""

    model_config = _Strict

    type: Literal["subscribe:jobs"]
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None
    since: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None


class UnsubscribeJobsMessage(BaseModel):
    """``{"type": "unsubscribe:jobs"}``."""

    model_config = _Strict

    type: Literal["unsubscribe:jobs"]


AnyClientMessage = (
    SubscribeMessage | UnsubscribeMessage | SubscribeJobsMessage | UnsubscribeJobsMessage
)
ClientMessage = Annotated[AnyClientMessage, Field(discriminator="type")]
_client_message: pydantic.TypeAdapter[AnyClientMessage] = pydantic.TypeAdapter(ClientMessage)
CLIENT_MESSAGE_TYPES = ("subscribe:job", "unsubscribe:job", "subscribe:jobs", "unsubscribe:jobs")


def parse_client_message(raw: str | bytes) -> AnyClientMessage:
    """Validate one WebSocket message from a client.

    Raises
    ------
    jobwatch.errors.ValidationError
        ``invalid_json``, ``unknown_type`` (with the allowed types in the
        message) or ``validation_error``.
    """
    try:
        if _NON_FINITE.search(raw.encode() if isinstance(raw, str) else raw):
            pydantic_core.from_json(raw, allow_inf_nan=False)
        return _client_message.validate_json(raw)
    except ValueError as exc:
        if not isinstance(exc, pydantic.ValidationError):
            raise ValidationError(
                f"message is not valid JSON: {exc} (NaN and Infinity are not JSON numbers)",
                code="invalid_json",
            ) from None
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            raise ValidationError(
                f"message is not valid JSON: {first['msg']}", code="invalid_json"
            ) from None
        if first["type"] in ("union_tag_invalid", "union_tag_not_found", "model_attributes_type"):
            raise ValidationError(
                f"unknown message type; allowed: {', '.join(CLIENT_MESSAGE_TYPES)}",
                code="unknown_type",
            ) from None
        raise _as_validation_error(exc, "message field", _client_message.core_schema) from None


def _as_validation_error(
    exc: pydantic.ValidationError, what: str, schema: CoreSchema
) -> ValidationError:
    details = error_details(exc.errors(include_url=False), schema)
    return ValidationError(
        f"{len(details)} invalid {what}{'s' if len(details) != 1 else ''}", details=details
    )
