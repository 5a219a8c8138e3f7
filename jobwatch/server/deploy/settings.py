"""The server's settings: one table (:data:`SETTINGS`) and one typed object
(:class:`ServerSettings`), built from ``jobwatch serve``'s flags, from
``JOBWATCH_*`` environment variables or from :func:`jobwatch.serve`'s
arguments, checked in one place and turned into
:func:`~jobwatch.server.web.app.create_app`'s config.

Every way of starting the server reads the table: ``jobwatch serve``
(:mod:`jobwatch.cli.commands`, whose flags are generated from it), the WSGI entry point
(:mod:`jobwatch.server.deploy.wsgi`, which the Docker image runs), the gunicorn worker
class (:mod:`jobwatch.server.deploy.gunicorn_worker`, for the connection caps and deadlines)
and the embedded server (:func:`jobwatch.serve`). The settings table of
``docs/server.md`` is generated from it too (``python -m jobwatch.server.deploy.settings``
rewrites it). Each check returns ``None`` or one sentence saying what is wrong
and what is allowed, naming the flag, variable or argument the user wrote, so
the CLI can print it and exit instead of a worker dying in a traceback;
:class:`SettingsError` carries it elsewhere.

Why a dataclass and not pydantic-settings: every message must name the flag,
variable or argument the user wrote (``--token``, ``JOBWATCH_TOKEN``,
``token=``) and say what is allowed, and the comma-separated lists are plain
text, not JSON; the parsing is a few lines per kind of value.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobwatch.contract.basics import CURRENCY_RULE, ascii_float, ascii_int, valid_currency
from jobwatch.errors import SettingsError, ValidationError, first_line
from jobwatch.server.core.alerts.alert_rules import parse_rule
from jobwatch.server.core.alerts.nccl_hang import DEFAULT_POWER, DEFAULT_UTILIZATION
from jobwatch.server.core.alerts.webhooks import parse_target
from jobwatch.server.core.quotas import DEFAULT_MAX_JOB_LOG_BYTES, DEFAULT_MAX_JOBS
from jobwatch.server.storage.files import default_db_path

# security.py (Flask) and urls.py (SQLAlchemy) are imported where used: ``jobwatch``
# builds its parser from this table, and its client commands run without the server extra.

ENV_NAMES = {
    "write_token": "JOBWATCH_TOKEN",
    "read_token": "JOBWATCH_READ_TOKEN",
    "database": "JOBWATCH_DATABASE_URL",
}
"""How messages name the tokens and the database when they come from the environment."""
FLAG_NAMES = {"write_token": "--token", "read_token": "--read-token", "database": "--db"}
"""How messages name the tokens and the database when they come from ``jobwatch serve``'s flags."""
ARGUMENT_NAMES = {"write_token": "token", "read_token": "read_token", "database": "db"}
"""How messages name the tokens and the database when they come from :func:`jobwatch.serve`."""


CLI = "jobwatch serve"
"""Start path: the ``jobwatch serve`` command's flags (and the variables they default to)."""
WSGI = "WSGI"
"""Start path: ``jobwatch.server.deploy.wsgi:app_from_env()`` under gunicorn (the Docker
image and ``server/compose.yaml``), which reads only the variables."""
PYTHON = "jobwatch.serve()"
"""Start path: :func:`jobwatch.serve`'s keyword arguments (a notebook's server)."""
START_PATHS = (CLI, WSGI, PYTHON)
"""Every way of starting a server."""
GUNICORN_ONLY = (CLI, WSGI)
"""Settings of the gunicorn worker class; Werkzeug's server has no connection caps."""


@dataclass(frozen=True)
class Setting:
    """One server setting: its flag, variable, argument, type, default and docs row.

    Attributes
    ----------
    name:
        The :class:`ServerSettings` field.
    flag:
        ``jobwatch serve``'s flag (``aliases`` are other names for it).
    env:
        The ``JOBWATCH_*`` variable.
    kind:
        ``str``, ``int`` or ``float``: one value's type.
    low, high:
        Bounds of a number, inclusive.
    default:
        The value when nothing is given (``None``: the server's own default,
        described by ``default_text``).
    default_text:
        The default as the docs and ``--help`` say it.
    help:
        What the setting does, for ``--help`` and the docs.
    paths:
        The start paths that read it (:data:`START_PATHS`).
    config_key:
        The :func:`~jobwatch.server.web.app.create_app` key (``None``: read by the
        gunicorn worker class, :mod:`jobwatch.server.deploy.gunicorn_worker`).
    many:
        A list: a repeatable flag, a comma-separated variable; flags and the
        variable add up.
    argument:
        :func:`jobwatch.serve`'s keyword (default ``name``).
    metavar:
        How ``--help`` shows the value.
    """

    name: str
    flag: str
    env: str
    kind: type
    default: Any
    default_text: str
    help: str
    paths: tuple[str, ...] = START_PATHS
    config_key: str | None = None
    many: bool = False
    low: float = 0
    high: float = 0
    aliases: tuple[str, ...] = ()
    argument: str = ""
    metavar: str = "N"

    @property
    def keyword(self) -> str:
        """:func:`jobwatch.serve`'s keyword for it."""
        return self.argument or self.name

    def label(self, path: str) -> str:
        """How messages name it on ``path``: the flag, the variable or ``keyword=``."""
        return {CLI: self.flag, WSGI: self.env, PYTHON: f"{self.keyword}="}[path]

    def parse(self, text: str, label: str) -> Any:
        """One value from ``text`` (a flag's or a variable's).

        Raises
        ------
        SettingsError
            The text is not a value of this setting; the message names ``label``.
        """
        if self.kind is str:
            return text
        try:
            value = (ascii_int if self.kind is int else ascii_float)(text)
        except ValueError:
            value = math.nan
        return self.accept(value, label, shown=text)

    def accept(self, value: Any, label: str, *, shown: Any = None) -> Any:
        """``value`` (a Python one, or a parsed one) when it is in range.

        Raises
        ------
        SettingsError
            A wrong type or out of range; the message names ``label``.
        """
        shown = value if shown is None else shown
        if self.kind is str:
            if not isinstance(value, str):
                raise SettingsError(f"{label} must be text, got {shown!r}")
            return value
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind is int and numeric and not float(value).is_integer():
            numeric = False
        if not numeric or not self.low <= value <= self.high:  # NaN fails too
            noun = "a whole number" if self.kind is int else "a number"
            raise SettingsError(
                f"{label} must be {noun} from {self.low:g} to {self.high:g}, got {shown!r}"
            )
        return self.kind(value)

    def from_text(self, text: str | None, label: str) -> Any:
        """The setting's value from a variable's text (unset or empty: the default)."""
        if self.many:
            return tuple(self.parse(item.strip(), label) for item in split_list(text))
        if not text or not text.strip():
            return self.default
        # a token keeps its whitespace, so the check can name it; a number may have some
        return self.parse(text if self.kind is str else text.strip(), label)

    def from_python(self, value: Any) -> Any:
        """The setting's value from :func:`jobwatch.serve`'s keyword argument.

        Raises
        ------
        SettingsError
            A wrong type or out of range; the message names the keyword.
        """
        label = self.label(PYTHON)
        if self.many:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise SettingsError(f"{label} must be a list of text, got {value!r}")
            return tuple(self.accept(item, label) for item in items)
        return self.default if value is None else self.accept(value, label)


_QUOTA_HIGH = 2**62
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database",
        "--database-url",
        "JOBWATCH_DATABASE_URL",
        str,
        None,
        "the user data directory's `jobwatch.db` (`jobwatch.serve()`: `:memory:`)",
        "SQLite file, `:memory:` or `postgresql://user@host/db`",
        config_key="DATABASE",
        aliases=("--db",),
        argument="db",
        metavar="URL",
    ),
    Setting(
        "redis_url",
        "--redis-url",
        "JOBWATCH_REDIS_URL",
        str,
        None,
        "none",
        "`redis://host:6379/0`: share live events with every process on this Redis"
        " (needs PostgreSQL)",
        config_key="REDIS_URL",
        metavar="URL",
    ),
    Setting(
        "redis_channel",
        "--redis-channel",
        "JOBWATCH_REDIS_CHANNEL",
        str,
        None,
        "`jobwatch:events`",
        "the Redis pub/sub channel, one per deployment",
        config_key="REDIS_CHANNEL",
        metavar="NAME",
    ),
    Setting(
        "database_timeout",
        "--database-timeout",
        "JOBWATCH_DATABASE_TIMEOUT",
        float,
        5.0,
        "5",
        "seconds PostgreSQL may take to connect or to answer (its `statement_timeout`;"
        " TCP keepalive probes after as long idle), and a write may wait for its commit;"
        " past it the request answers 503 `store_unavailable`",
        config_key="DATABASE_TIMEOUT",
        low=0.5,
        high=3600,
        metavar="SECONDS",
    ),
    Setting(
        "redis_timeout",
        "--redis-timeout",
        "JOBWATCH_REDIS_TIMEOUT",
        float,
        5.0,
        "5",
        "seconds Redis may take to connect or to answer (TCP keepalive probes after as"
        " long idle); the subscription is checked with a PING this often and replaced"
        " when the answer is late",
        config_key="REDIS_TIMEOUT",
        low=0.5,
        high=3600,
        metavar="SECONDS",
    ),
    Setting(
        "write_token",
        "--token",
        "JOBWATCH_TOKEN",
        str,
        None,
        "none (open)",
        "bearer token every write (and read) needs, at least 16 characters; prefer the"
        " variable: a command line shows in `ps`",
        config_key="WRITE_TOKEN",
        argument="token",
        metavar="TOKEN",
    ),
    Setting(
        "read_token",
        "--read-token",
        "JOBWATCH_READ_TOKEN",
        str,
        None,
        "none",
        "a token that may only read, for viewers (needs the write token)",
        config_key="READ_TOKEN",
        metavar="TOKEN",
    ),
    Setting(
        "cors_origins",
        "--cors-origin",
        "JOBWATCH_CORS_ORIGINS",
        str,
        (),
        "none",
        "browser origins allowed to call the API, e.g. `https://app.example.com`",
        config_key="CORS_ORIGINS",
        many=True,
        metavar="ORIGIN",
    ),
    Setting(
        "allowed_hosts",
        "--allowed-host",
        "JOBWATCH_ALLOWED_HOSTS",
        str,
        (),
        "none",
        "host names a server without a token answers besides `localhost`, `127.0.0.1`"
        " and `[::1]` (`*`: any)",
        config_key="ALLOWED_HOSTS",
        many=True,
        metavar="NAME",
    ),
    Setting(
        "max_jobs",
        "--max-jobs",
        "JOBWATCH_MAX_JOBS",
        int,
        DEFAULT_MAX_JOBS,
        "100,000",
        "quota: most jobs stored; past it a new job answers 507 (0: no limit)",
        config_key="MAX_JOBS",
        high=_QUOTA_HIGH,
    ),
    Setting(
        "max_job_log_bytes",
        "--max-job-log-bytes",
        "JOBWATCH_MAX_JOB_LOG_BYTES",
        int,
        DEFAULT_MAX_JOB_LOG_BYTES,
        "1 GiB",
        "quota: most bytes (UTF-8) of log text one job stores; past it a write answers"
        " 507 (0: no limit)",
        config_key="MAX_JOB_LOG_BYTES",
        high=_QUOTA_HIGH,
    ),
    Setting(
        "max_log_bytes",
        "--max-log-bytes",
        "JOBWATCH_MAX_LOG_BYTES",
        int,
        0,
        "0 (no limit)",
        "quota: most bytes all jobs store (log text, per-GPU samples, training metrics);"
        " past it a write answers 507 (0: no limit)",
        config_key="MAX_LOG_BYTES",
        high=_QUOTA_HIGH,
    ),
    Setting(
        "rate_limit",
        "--rate-limit",
        "JOBWATCH_RATE_LIMIT",
        float,
        0.0,
        "0 (no limit)",
        "most progress updates per second per worker and client address; more answer 429",
        config_key="RATE_LIMIT",
        high=1e6,
    ),
    Setting(
        "pace_above",
        "--pace-above",
        "JOBWATCH_PACE_ABOVE",
        float,
        1000.0,
        "1000",
        "progress updates per second (one server process) above which the server is busy:"
        " its progress answers then carry `minInterval` and the Reporter slows down (0: never)",
        config_key="PACE_ABOVE",
        high=1e7,
    ),
    Setting(
        "pace_interval",
        "--pace-interval",
        "JOBWATCH_PACE_INTERVAL",
        float,
        5.0,
        "5",
        "seconds of `minInterval` while the server is busy: each worker reports at most that often",
        config_key="PACE_INTERVAL",
        low=0.1,
        high=300,
        metavar="SECONDS",
    ),
    Setting(
        "stall_after",
        "--stall-after",
        "JOBWATCH_STALL_AFTER",
        float,
        None,
        "120",
        "seconds without an update after which a running job is stalled (or ten of its"
        " usual update intervals if that is longer)",
        config_key="STALL_AFTER",
        low=1,
        high=30 * 86400,
        metavar="SECONDS",
    ),
    Setting(
        "hang_after",
        "--hang-after",
        "JOBWATCH_HANG_AFTER",
        float,
        None,
        "300",
        "seconds without a call from a reporting job's training code (update, log,"
        " log_metrics, track) after which it is hung (or ten of its usual intervals"
        " between calls, or its `expectSilenceFor`, if longer)",
        config_key="HANG_AFTER",
        low=1,
        high=30 * 86400,
        metavar="SECONDS",
    ),
    Setting(
        "default_currency",
        "--default-currency",
        "JOBWATCH_DEFAULT_CURRENCY",
        str,
        None,
        "`QUBIC`",
        "the currency of a job created without one (a label: nothing is converted);"
        " 1-16 letters and digits, e.g. `USD`",
        config_key="DEFAULT_CURRENCY",
        metavar="CODE",
    ),
    Setting(
        "alert_rules",
        "--alert",
        "JOBWATCH_ALERT_RULES",
        str,
        (),
        "none",
        "alert when a GPU or system metric holds a condition, e.g. `gpuTemperature>85 for 60s`",
        config_key="ALERT_RULES",
        many=True,
        metavar="RULE",
    ),
    Setting(
        "webhook_url",
        "--webhook-url",
        "JOBWATCH_WEBHOOK_URL",
        str,
        None,
        "none",
        "post every alert there as Slack-compatible JSON",
        config_key="WEBHOOK_URL",
        metavar="URL",
    ),
    Setting(
        "webhooks",
        "--webhook",
        "JOBWATCH_WEBHOOKS",
        str,
        (),
        "none",
        "post alerts there too: `[FORMAT+]URL [level>=LEVEL]`, FORMAT one of slack (the"
        " default), discord, ntfy, teams, json; only alerts of LEVEL (info, the default,"
        " warning or error) and above, e.g. `ntfy+https://ntfy.sh/gpu-team level>=error`"
        " (see Where alerts go; in the variable a URL's comma is written `%2C`)",
        config_key="WEBHOOKS",
        many=True,
        metavar="WEBHOOK",
    ),
    Setting(
        "nccl_hang_after",
        "--nccl-hang-after",
        "JOBWATCH_NCCL_HANG_AFTER",
        float,
        None,
        "none (off)",
        "seconds a GPU may show the NCCL-hang signature (utilization at or above"
        " `--nccl-hang-utilization` with power below `--nccl-hang-power` of the job's"
        " typical draw) before its job is hung",
        config_key="NCCL_HANG_AFTER",
        low=1,
        high=30 * 86400,
        metavar="SECONDS",
    ),
    Setting(
        "nccl_hang_utilization",
        "--nccl-hang-utilization",
        "JOBWATCH_NCCL_HANG_UTILIZATION",
        float,
        DEFAULT_UTILIZATION,
        "95",
        "percent: the least GPU utilization of the NCCL-hang signature",
        config_key="NCCL_HANG_UTILIZATION",
        high=100,
        metavar="PERCENT",
    ),
    Setting(
        "nccl_hang_power",
        "--nccl-hang-power",
        "JOBWATCH_NCCL_HANG_POWER",
        float,
        DEFAULT_POWER,
        "50",
        "percent of the job's typical power draw below which the NCCL-hang signature's power is",
        config_key="NCCL_HANG_POWER",
        low=1,
        high=100,
        metavar="PERCENT",
    ),
    Setting(
        "max_connections_per_address",
        "--max-connections-per-address",
        "JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS",
        int,
        256,
        "256",
        "most open connections from one client address; more answer 429 (0: no limit,"
        " behind a proxy that limits them itself)",
        paths=GUNICORN_ONLY,
        high=1_000_000,
    ),
    Setting(
        "max_connections",
        "--max-connections",
        "JOBWATCH_MAX_CONNECTIONS",
        int,
        None,
        "what the open-files limit allows, less 128",
        "most open connections of one worker process; more answer 503",
        paths=GUNICORN_ONLY,
        low=1,
        high=1_000_000,
    ),
    Setting(
        "head_timeout",
        "--head-timeout",
        "JOBWATCH_HEAD_TIMEOUT",
        float,
        None,
        "15",
        "seconds a connection may take to deliver a request head (idle between requests"
        " or trickling one in); then it is closed",
        paths=GUNICORN_ONLY,
        high=1e6,
        metavar="SECONDS",
    ),
    Setting(
        "body_timeout",
        "--body-timeout",
        "JOBWATCH_BODY_TIMEOUT",
        float,
        30.0,
        "30",
        "seconds a request body may take; then it answers 408",
        paths=GUNICORN_ONLY,
        high=1e6,
        metavar="SECONDS",
    ),
)
"""Every setting of every way of starting the server (see the module doc)."""
BY_NAME = {setting.name: setting for setting in SETTINGS}
""":data:`SETTINGS` by :class:`ServerSettings` field."""


@dataclass(frozen=True)
class ServerSettings:
    """What one server (all its worker processes) is configured with.

    One field per row of :data:`SETTINGS`, where each is described. ``None``
    (and an empty tuple) leaves ``create_app``'s default
    (:data:`jobwatch.server.web.app.DEFAULTS`) or the worker class's
    (:mod:`jobwatch.server.deploy.gunicorn_worker`).
    """

    database: str
    redis_url: str | None = None
    redis_channel: str | None = None
    database_timeout: float = 5.0
    redis_timeout: float = 5.0
    write_token: str | None = None
    read_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_jobs: int = DEFAULT_MAX_JOBS
    max_job_log_bytes: int = DEFAULT_MAX_JOB_LOG_BYTES
    max_log_bytes: int = 0
    rate_limit: float = 0.0
    pace_above: float = 1000.0
    pace_interval: float = 5.0
    stall_after: float | None = None
    hang_after: float | None = None
    default_currency: str | None = None
    alert_rules: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhooks: tuple[str, ...] = ()
    nccl_hang_after: float | None = None
    nccl_hang_utilization: float = DEFAULT_UTILIZATION
    nccl_hang_power: float = DEFAULT_POWER
    max_connections_per_address: int = 256
    max_connections: int | None = None
    head_timeout: float | None = None
    body_timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> ServerSettings:
        """Settings from ``JOBWATCH_*`` variables (:data:`SETTINGS`), unchecked.

        Parameters
        ----------
        env:
            The variables (default ``os.environ``).
        given:
            Fields already decided (``jobwatch serve``'s flags); their
            variables are not read.

        Raises
        ------
        SettingsError
            A number is malformed or out of range; the message names the variable.
        """
        env = os.environ if env is None else env
        values = env_values(env, [s.name for s in SETTINGS if s.name not in given])
        if values.get("database", "") is None:
            values["database"] = str(default_db_path())
        return cls(**{**given, **values})

    @classmethod
    def from_args(cls, args: Any, env: Mapping[str, str] | None = None) -> ServerSettings:
        """Settings from ``jobwatch serve``'s parsed flags (:func:`add_arguments`): a
        flag wins over its variable; list flags add to their variable's items.

        Raises
        ------
        SettingsError
            A variable is malformed; the message names it.
        """
        env = os.environ if env is None else env
        given: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(args, setting.name)
            if setting.many:
                given[setting.name] = setting.from_text(env.get(setting.env), setting.env) + tuple(
                    value
                )
            elif value is not None:
                given[setting.name] = value
        return cls.from_env(env, **given)

    @classmethod
    def from_arguments(cls, database: str, **arguments: Any) -> ServerSettings:
        """Settings from :func:`jobwatch.serve`'s keyword arguments (each row's
        ``keyword``), unchecked.

        Raises
        ------
        SettingsError
            A value of the wrong type or out of range; the message names the keyword.
        TypeError
            A keyword that is not a setting of :func:`jobwatch.serve`.
        """
        keywords = {s.keyword: s for s in SETTINGS if PYTHON in s.paths and s.name != "database"}
        unknown = sorted(set(arguments) - set(keywords))
        if unknown:
            raise TypeError(
                f"serve() got an unexpected keyword argument {unknown[0]!r}"
                f" (settings: {', '.join(sorted(keywords))})"
            )
        values = {
            keywords[key].name: keywords[key].from_python(value) for key, value in arguments.items()
        }
        return cls(database=BY_NAME["database"].from_python(database), **values)

    def replace(self, **changes: Any) -> ServerSettings:
        """A copy with ``changes`` (field names as above)."""
        return dataclasses.replace(self, **changes)

    def problem(self, *, workers: int = 1, names: Mapping[str, str] = FLAG_NAMES) -> str | None:
        """Why these settings cannot serve, or ``None``.

        Checks the tokens (a read token needs a write token; length and
        whitespace), the database and Redis URLs and their combination with
        ``workers`` (:func:`settings_problem`), the drivers they need
        (:func:`missing_packages`), the alert rules, the webhooks, and a SQLite
        file (:func:`~jobwatch.server.storage.files.sqlite_file_problem`: a
        folder someone named must exist; only the default one is made).
        ``names`` says how to name the tokens (:data:`FLAG_NAMES`,
        :data:`ENV_NAMES`, :data:`ARGUMENT_NAMES`).
        """
        from jobwatch.server.storage.files import default_db_path, sqlite_file_problem
        from jobwatch.server.web.security import token_problem

        write, read = names["write_token"], names["read_token"]
        if self.read_token and not self.write_token:
            return f"{read} needs {write} too (else writes would be open)"
        return (
            token_problem(write, self.write_token)
            or token_problem(read, self.read_token)
            or alert_problem(self.alert_rules, self.webhook_url)
            or webhook_problem(self.webhooks)
            or currency_problem(self.default_currency)
            or settings_problem(self.database, self.redis_url, workers)
            or missing_packages(self.database, self.redis_url)
            or sqlite_file_problem(
                self.database,
                must_exist=False,
                make_folder=self.database == str(default_db_path()),  # nobody typed it
                name=names.get("database", "--db"),
            )
        )

    def check(self, *, workers: int = 1, names: Mapping[str, str] = ENV_NAMES) -> ServerSettings:
        """These settings, when :meth:`problem` finds nothing.

        Raises
        ------
        SettingsError
            With :meth:`problem`'s sentence.
        """
        problem = self.problem(workers=workers, names=names)
        if problem:
            raise SettingsError(problem)
        return self

    def config(self) -> dict[str, Any]:
        """The settings as :func:`~jobwatch.server.web.app.create_app` takes them: every
        row with a ``config_key`` whose value is not ``None``."""
        values = ((s.config_key, getattr(self, s.name)) for s in SETTINGS if s.config_key)
        return {key: value for key, value in values if value is not None}

    def worker_env(self) -> dict[str, str]:
        """The gunicorn worker class's settings as the variables it reads
        (:func:`env_values`), for ``jobwatch serve`` to hand its worker processes."""
        values = ((s.env, getattr(self, s.name)) for s in SETTINGS if s.config_key is None)
        return {env: str(value) for env, value in values if value is not None}


def env_values(env: Mapping[str, str], names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The values of the settings ``names`` (fields of :class:`ServerSettings`) from
    their variables in ``env``; an unset or empty variable gives the row's default.

    Raises
    ------
    SettingsError
        A variable is malformed or out of range; the message names it.
    """
    return {
        name: BY_NAME[name].from_text(env.get(BY_NAME[name].env), BY_NAME[name].env)
        for name in names
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every row of :data:`SETTINGS` that ``jobwatch serve`` reads;
    each defaults to ``None`` (a list flag to ``[]``): :meth:`ServerSettings.from_args`
    then reads the variable."""
    for setting in SETTINGS:
        if CLI not in setting.paths:
            continue
        more = "; repeatable, adds to the variable's items" if setting.many else ""
        text = f"{setting.help} (default ${setting.env} or {setting.default_text}{more})"
        parser.add_argument(
            setting.flag,
            *setting.aliases,
            dest=setting.name,
            type=_argument_type(setting),
            action="append" if setting.many else "store",
            default=[] if setting.many else None,
            metavar=setting.metavar,
            help=text.replace("`", "").replace("%", "%%"),
        )


def _argument_type(setting: Setting) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return setting.parse(text, setting.flag)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = setting.kind.__name__  # argparse names the type in some errors
    return convert


def docs_table() -> str:
    """The settings table of ``docs/server.md``, generated from :data:`SETTINGS` (Markdown)."""
    rows = [
        "| flag | variable | type | default | read by | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        kind = {str: "text", int: "whole number", float: "number"}[s.kind]
        if s.many:
            kind = f"list of {kind} (variable: comma-separated)"
        elif s.kind is not str:
            kind += f", {_number(s.low)} to {_number(s.high)}" if s.high < _QUOTA_HIGH else ""
            kind += f", >= {_number(s.low)}" if s.high >= _QUOTA_HIGH else ""
        flags = ", ".join(f"`{flag}`" for flag in (s.flag, *s.aliases))
        paths = ", ".join(
            f"`{s.keyword}=`" if path == PYTHON else path.replace(CLI, "`jobwatch serve`")
            for path in s.paths
        )
        rows.append(f"| {flags} | `{s.env}` | {kind} | {s.default_text} | {paths} | {s.help} |")
    return "\n".join(rows) + "\n"


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


DOCS_START = "<!-- settings table: generated by `python -m jobwatch.server.deploy.settings` -->\n"
DOCS_END = "<!-- end of the settings table -->\n"


def write_docs_table(path: str) -> bool:
    """Replace the settings table between :data:`DOCS_START` and :data:`DOCS_END` in
    ``path`` with :func:`docs_table`; ``True`` when the file changed.

    Raises
    ------
    ValueError
        ``path`` has no such markers.
    """
    with open(path, encoding="utf-8") as file:
        text = file.read()
    start, end = text.find(DOCS_START), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no settings-table markers")
    new = text[: start + len(DOCS_START)] + docs_table() + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as file:
            file.write(new)
    return new != text


def config_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``create_app`` settings from ``JOBWATCH_*`` variables (:data:`SETTINGS`).

    Raises
    ------
    SettingsError
        A value is malformed or the combination cannot work (for example a
        Redis URL with a SQLite database); the message names the variable.
    """
    return ServerSettings.from_env(env).check(names=ENV_NAMES).config()


def split_list(text: str | None) -> tuple[str, ...]:
    """``"a,b"`` as ``("a", "b")``; empty items are dropped, ``None`` is ``()``."""
    return tuple(item for item in (text or "").split(",") if item.strip())


def exposure_problem(host: str, token: str | None, remedy: str) -> str | None:
    """Why listening on ``host`` without ``token`` is refused, or ``None`` (loopback,
    or a token); ``remedy`` ends the sentence (how to pass a token)."""
    from jobwatch.server.web.security import is_loopback_host

    if token or is_loopback_host(host):
        return None
    return (
        f"refusing to listen on {host} without a token: anyone who can reach it could "
        f"write to your jobs{remedy}"
    )


def currency_problem(currency: str | None) -> str | None:
    """Why ``--default-currency`` is not a currency code, or ``None``."""
    if currency is None or valid_currency(currency):
        return None
    return f"--default-currency {currency!r}: {CURRENCY_RULE}"


def alert_problem(rules: tuple[str, ...] | list[str], webhook_url: str | None) -> str | None:
    """Why the ``--alert`` rules or ``--webhook-url`` cannot be used, or ``None``."""
    for rule in rules:
        try:
            parse_rule(rule)
        except ValidationError as exc:
            return exc.message
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        return f"--webhook-url must start with http:// or https://, got {webhook_url!r}"
    return None


def webhook_problem(webhooks: tuple[str, ...] | list[str]) -> str | None:
    """Why a ``--webhook`` cannot be used, or ``None`` (the message never shows its URL)."""
    for text in webhooks:
        try:
            parse_target(text, "--webhook")
        except ValidationError as exc:
            return exc.message
    return None


MAX_WORKERS = 64
"""Most server processes one ``jobwatch serve`` starts."""


def settings_problem(database: str, redis_url: str | None, workers: int) -> str | None:
    """Why this combination cannot serve as one deployment, or ``None``.

    Rules: a database URL is SQLite or PostgreSQL; a Redis URL is ``redis://``,
    ``rediss://`` or ``unix://``; Redis only joins processes that share a
    PostgreSQL database; more than one worker needs both.
    """
    from jobwatch.server.deploy.urls import database_url_problem, is_postgres, redis_url_problem

    problem = database_url_problem(database) or (
        redis_url_problem(redis_url) if redis_url is not None else None
    )
    if problem:
        return problem
    if not 1 <= workers <= MAX_WORKERS:
        return f"workers must be from 1 to {MAX_WORKERS}, got {workers}"
    if redis_url and not is_postgres(database):
        return (
            "--redis-url joins server processes that share one database: "
            "give --database-url postgresql://... as well"
        )
    if workers > 1 and not (redis_url and is_postgres(database)):
        return (
            f"--workers {workers} needs a shared database and broker: give "
            "--database-url postgresql://... and --redis-url redis://... "
            "(with SQLite, serve from one process)"
        )
    return None


def missing_packages(database: str, redis_url: str | None) -> str | None:
    """The install hint when the drivers these URLs need are not installed, or ``None``."""
    from jobwatch.server.deploy.urls import is_postgres

    needed = []
    if is_postgres(database):
        needed.append("psycopg")
    if redis_url:
        needed.append("redis")
    import importlib.util

    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f'{" and ".join(missing)} not installed: pip install "jobwatch[scale]"'


def reachability_problem(database: str, redis_url: str | None, timeout: float = 5.0) -> str | None:
    """Connect once to PostgreSQL and Redis (when given); say which cannot be reached, or ``None``."""
    from jobwatch.server.core.redact import redacted
    from jobwatch.server.deploy.urls import is_postgres, libpq_url

    if is_postgres(database):
        import psycopg

        try:
            with psycopg.connect(libpq_url(database), connect_timeout=max(1, int(timeout))):
                pass
        except psycopg.Error as exc:
            return f"cannot reach the database at {redacted(database)}: {first_line(exc)}"
    if redis_url:
        import redis

        client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"cannot reach Redis at {redacted(redis_url)}: {exc}"
        finally:
            client.close()
    return None


if __name__ == "__main__":
    import pathlib

    docs = pathlib.Path(__file__).resolve().parents[3] / "docs" / "server.md"
    print(f"{docs}: {'rewritten' if write_docs_table(str(docs)) else 'up to date'}")
