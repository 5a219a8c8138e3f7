"""The job, one table: adding a job field is one :class:`JobField` in :data:`JOB_FIELDS`.

Each entry is one column of the server's ``jobs`` table and, where it has a
wire name, one field of the contract's job object. It says everything the rest
of jobwatch needs to know about it: its SQL column and type, its Python type
as the server holds it, whether it may be null, its wire name and how a stored
value becomes a wire value, its valid range on the wire, and words for the
documents. The SQL schema (:mod:`jobwatch.server.storage.schema`), the wire
encoding (:func:`jobwatch.server.core.serialize.job_to_wire`), the OpenAPI
answer model (:mod:`jobwatch.server.web.answers`), the viewers' state
(:mod:`jobwatch.view.state`) and the job page's model (``job_state.js``, which
imports the list the server renders from this table at
``/assets/job_fields.js``) all read it; the typed row
(:class:`jobwatch.server.core.job_row.JobRow`, a ``TypedDict`` for mypy) is
spelled out and ``tests/contract/test_job_fields.py`` keeps it equal to the table.

Pure data: no I/O and no imports beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from jobwatch.contract.basics import JOB_STATUSES, MAX_WORLD_SIZE

__all__ = [
    "JOB_FIELDS",
    "LISTED_COLUMNS",
    "VIEWED_FIELDS",
    "WIRE_FIELDS",
    "JobField",
    "SqlType",
    "WireForm",
    "job_field",
]

SqlType = Literal["text", "float", "integer", "bigint", "json"]
"""A column's SQL type: ``text`` (``String(length)`` where a length is given),
``float`` (double precision), ``integer``, ``bigint``, or ``json`` (text
holding JSON, decoded on read)."""

WireForm = Literal["value", "time", "flag"]
"""How a stored value becomes its wire value: as it is (``value``), seconds
since the epoch as an ISO 8601 UTC timestamp (``time``), or an integer 0/1 as
a JSON boolean (``flag``)."""


@dataclass(frozen=True)
class JobField:
    """One column of ``jobs``, and the job object's field that shows it (if any).

    Attributes
    ----------
    column:
        The SQL column and the key of the server's job row (snake_case).
    python:
        Its Python type in the server's row, without ``None`` (JSON columns
        decoded): ``str``, ``float``, ``int``, ``dict[str, Any]`` or ``Any``.
    sql:
        Its SQL type (:data:`SqlType`).
    description:
        Words for a person: the SQL column's ``doc`` and the OpenAPI field's
        description.
    wire:
        Its name in the job object (camelCase, as the contract spells it);
        ``None`` for what only the server keeps (rate estimate, counters).
    nullable:
        Whether the value may be ``None`` (SQL NULL, JSON ``null``).
    length:
        Most characters of a ``text`` column (``String(length)``); ``None``:
        unbounded ``Text``.
    server_default:
        SQL default of a column added after the first release (so that an
        older database gains it with ``ALTER TABLE ... ADD COLUMN``).
    primary_key:
        Whether it is the table's key (the job id).
    listed:
        Whether a listing of jobs reads it (large values that only one job's
        reads need are left out).
    form:
        How the stored value becomes its wire value (:data:`WireForm`).
    choices:
        The only values it takes on the wire (the statuses), if so limited.
    minimum, maximum:
        Its valid range on the wire, inclusive, where it has one.
    initial:
        Its value in a new job where the rules set none (a counter's 0).
    viewed:
        Whether the viewers' job model (:class:`jobwatch.view.state.MonitorState`
        and the job page's ``JobState``) holds it from the first snapshot on
        (``None`` until known).
    """

    column: str
    python: Any
    sql: SqlType
    description: str
    wire: str | None = None
    nullable: bool = False
    length: int | None = None
    server_default: str | None = None
    primary_key: bool = False
    listed: bool = True
    form: WireForm = "value"
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    initial: Any = None
    viewed: bool = True


JOB_FIELDS: tuple[JobField, ...] = (
    JobField(
        "id",
        str,
        "text",
        "the job's id (1-128 characters)",
        wire="id",
        length=128,
        primary_key=True,
    ),
    JobField("name", str, "text", "a name for people", wire="name", nullable=True),
    JobField(
        "status",
        str,
        "text",
        "pending, running, completed, failed or cancelled",
        wire="status",
        length=16,
        choices=JOB_STATUSES,
    ),
    JobField("progress", float, "float", "percent", wire="progress", minimum=0, maximum=100),
    JobField(
        "current_operation",
        str,
        "text",
        "what the job is doing now, in its own words",
        wire="currentOperation",
        nullable=True,
    ),
    JobField(
        "worker_id",
        str,
        "text",
        "the worker the job is bound to (by its first update)",
        wire="workerId",
        nullable=True,
    ),
    JobField(
        "price_per_hour",
        float,
        "float",
        "currency per hour",
        wire="pricePerHour",
        nullable=True,
    ),
    JobField(
        "currency", str, "text", "the currency of prices and costs", wire="currency", length=16
    ),
    JobField(
        "provider_id", str, "text", "who provides the machine", wire="providerId", nullable=True
    ),
    JobField(
        "created_at", float, "float", "when the job was created", wire="createdAt", form="time"
    ),
    JobField(
        "started_at",
        float,
        "float",
        "its first progress update",
        wire="startedAt",
        nullable=True,
        form="time",
    ),
    JobField("updated_at", float, "float", "its last change", wire="updatedAt", form="time"),
    JobField(
        "completed_at",
        float,
        "float",
        "when it completed, failed or was cancelled",
        wire="completedAt",
        nullable=True,
        form="time",
    ),
    JobField(
        "progress_at", float, "float", "server time of the last progress change", nullable=True
    ),
    JobField("worker_ts", float, "float", "worker clock of the last applied update", nullable=True),
    JobField(
        "result",
        Any,
        "json",
        "any JSON the worker sent on completion",
        wire="result",
        nullable=True,
    ),
    JobField("error", str, "text", "why it failed", wire="error", nullable=True),
    JobField(
        "seq", int, "bigint", "number of the job's latest event", wire="seq", minimum=0, initial=0
    ),
    # tqdm-style smoothed rate (see protocol.RateState)
    JobField(
        "ema_dp",
        float,
        "float",
        "smoothed progress step (percent) of the rate estimate",
        initial=0.0,
    ),
    JobField("ema_dt", float, "float", "smoothed time step (s) of the rate estimate", initial=0.0),
    JobField("ema_calls", int, "integer", "steps the rate estimate has seen", initial=0),
    JobField(
        "pause_streak",
        int,
        "integer",
        "1 right after a gap counted as a pause (see rules.is_pause), else 0",
        server_default="0",
        initial=0,
    ),
    JobField(
        "resumed_from",
        float,
        "float",
        "percent a worker declared it resumed from (resumedFrom); None: from scratch",
        nullable=True,
    ),
    JobField(
        "latest_scalars",
        dict[str, Any],
        "json",
        "JSON {name: {step, timestamp, value}}: newest values",
        nullable=True,
    ),
    JobField(
        "update_interval",
        float,
        "float",
        "usual seconds between updates (EMA), for stalls",
        nullable=True,
    ),
    JobField(
        "stalled",
        int,
        "integer",
        "no update for longer than the stall threshold",
        wire="stalled",
        server_default="0",
        form="flag",
        initial=0,
    ),
    JobField(
        "n_alerts",
        int,
        "bigint",
        "how many alerts the job has",
        wire="alerts",
        server_default="0",
        minimum=0,
        initial=0,
    ),
    JobField(
        "alert_state",
        dict[str, Any],
        "json",
        "JSON {rule: {since, fired}} of the --alert rules",
        nullable=True,
    ),
    # the newest JOB_PROGRESS event, kept for `since` replay
    JobField("progress_seq", int, "bigint", "seq of the newest JOB_PROGRESS event", nullable=True),
    JobField(
        "progress_event",
        dict[str, Any],
        "json",
        "JSON: the newest JOB_PROGRESS event, for `since` replay",
        nullable=True,
        listed=False,
    ),
    JobField("completed_seq", int, "bigint", "seq of the JOB_COMPLETED event", nullable=True),
    # log line counts, so /logs totals cost nothing however long the job
    JobField("n_info", int, "bigint", "info log lines", initial=0),
    JobField("n_warning", int, "bigint", "warning log lines", initial=0),
    JobField("n_error", int, "bigint", "error log lines", initial=0),
    JobField("log_bytes", int, "bigint", "UTF-8 bytes of logs", server_default="0", initial=0),
    JobField(
        "data_bytes",
        int,
        "bigint",
        "bytes of per-GPU sample JSON and training-metric points (quotas.data_bytes)",
        server_default="0",
        initial=0,
    ),
    JobField(
        "world_size",
        int,
        "integer",
        "ranks of a distributed job (one worker each); null: one worker, the seed's binding",
        wire="worldSize",
        nullable=True,
        minimum=1,
        maximum=MAX_WORLD_SIZE,
    ),
    JobField(
        "n_workers",
        int,
        "integer",
        "workers reporting: a distributed job's ranks that have not left, else 0 or 1",
        wire="workers",
        server_default="0",
        minimum=0,
        initial=0,
    ),
    JobField(
        "n_nodes",
        int,
        "integer",
        "the distinct nodes (machines) of those workers",
        wire="nodes",
        server_default="0",
        minimum=0,
        initial=0,
    ),
    JobField(
        "node_cost",
        float,
        "float",
        "cost accrued by the nodes that report their own price (nodePricePerHour)",
        nullable=True,
    ),
    JobField(
        "node_rate",
        float,
        "float",
        "the running nodes' own prices per hour, summed; null: no node reports one",
        nullable=True,
    ),
    JobField(
        "budget",
        float,
        "float",
        "most the job should cost, in its currency; alerts at projected overrun, 80 % and 100 %",
        wire="budget",
        nullable=True,
        minimum=0,
    ),
    JobField(
        "budget_alerts",
        int,
        "integer",
        "budget alerts given: 1 projected over, 2 80 % spent, 4 spent (bits)",
        server_default="0",
        initial=0,
    ),
    JobField(
        "last_call_at",
        float,
        "float",
        "server time of the training code's last call (lastCallAt); null: never said, never hung",
        nullable=True,
    ),
    JobField(
        "last_call_ts",
        float,
        "float",
        "the worker's clock of that call: a later value is a new call, an equal one a repeat",
        nullable=True,
    ),
    JobField(
        "call_interval",
        float,
        "float",
        "usual seconds between the training code's calls (EMA), for hangs",
        nullable=True,
    ),
    JobField(
        "expect_silence",
        float,
        "float",
        "seconds the training code said it may make no call after its last (expectSilenceFor)",
        nullable=True,
    ),
    JobField(
        "hung",
        int,
        "integer",
        "reports arrive but the training code made no call for longer than the hang threshold",
        wire="hung",
        server_default="0",
        form="flag",
        initial=0,
    ),
    JobField(
        "hung_at",
        float,
        "float",
        "while hung: server time of the training code's last sign of life",
        nullable=True,
    ),
    JobField(
        "hung_seconds",
        float,
        "float",
        "seconds the job was hung, summed over its past hangs",
        server_default="0",
        initial=0.0,
    ),
    JobField(
        "hung_cost",
        float,
        "float",
        "what the job's past hangs cost, in its currency",
        server_default="0",
        initial=0.0,
    ),
    JobField(
        "stalled_seconds",
        float,
        "float",
        "seconds the job was stalled (silent), summed over its past stalls",
        server_default="0",
        initial=0.0,
    ),
    JobField(
        "stalled_cost",
        float,
        "float",
        "what the job's past stalls cost, in its currency",
        server_default="0",
        initial=0.0,
    ),
    JobField(
        "tenant",
        str,
        "text",
        "the tenant the job belongs to (server.core.tenancy); NULL: the operator's",
        nullable=True,
        length=32,
    ),
    JobField(
        "config",
        dict[str, Any],
        "json",
        "the run's configuration (hyperparameters): a JSON object of at most 64 KiB, as sent",
        wire="config",
        nullable=True,
    ),
    JobField(
        "price_cost",
        float,
        "float",
        "what the job cost at its earlier prices, up to price_from (server.core.pricing)",
        server_default="0",
        initial=0.0,
    ),
    JobField(
        "price_from",
        float,
        "float",
        "server time from which the current price applies; null: from startedAt",
        nullable=True,
    ),
)
"""Every column of ``jobs``, in table order; the wire fields among them in the
job object's order."""

WIRE_FIELDS: tuple[JobField, ...] = tuple(f for f in JOB_FIELDS if f.wire is not None)
"""The fields of the job object, in wire order."""

VIEWED_FIELDS: tuple[str, ...] = tuple(str(f.wire) for f in WIRE_FIELDS if f.viewed)
"""Wire names of the fields the viewers' job model holds (:attr:`JobField.viewed`)."""

LISTED_COLUMNS: tuple[str, ...] = tuple(f.column for f in JOB_FIELDS if f.listed)
"""Columns a listing of jobs reads."""

_BY_COLUMN = {f.column: f for f in JOB_FIELDS}


def job_field(column: str) -> JobField:
    """The table entry of the column named ``column``.

    Raises
    ------
    KeyError
        No job field has that column.
    """
    return _BY_COLUMN[column]
