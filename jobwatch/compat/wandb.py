"""A W&B-shaped front for jobwatch: ``import jobwatch.compat.wandb as wandb``.

A script written for Weights & Biases runs unchanged but for that import line:
``wandb.init(project=, name=, config=, id=, resume=)`` makes a jobwatch job
through a :class:`~jobwatch.Reporter`; ``wandb.log`` sends training metrics,
``wandb.config`` the job's config, ``wandb.summary`` its result,
``wandb.alert`` an alert, and ``wandb.finish`` completes it. The server is
``$JOBWATCH_URL`` (default ``http://127.0.0.1:8765``), as for every Reporter.

What jobwatch has no counterpart for is never dropped silently: the keyword
arguments of ``init`` that only W&B's service reads (``entity``, ``tags``,
``mode``, ...) are ignored with one warning each (logger
``jobwatch.compat.wandb``), and the calls that would lose data (``watch``,
``save``, ``Image``, ``Table``, artifacts, sweeps, ...) raise
:class:`NotImplementedError` saying so. A value of ``log`` that is not a single
number (a histogram, an image, text) is left out with one warning per key.
The shape follows the ``wandb`` package's documented API (``wandb.init``,
``wandb.log``, ``wandb.Run.config``/``summary``, ``wandb.alert``,
``wandb.finish``).
"""

from __future__ import annotations

import enum
import logging
import math
import numbers
import secrets
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from jobwatch.client.rest import Client
from jobwatch.errors import JobNotFound
from jobwatch.report.reporter import Reporter

__all__ = [
    "AlertLevel",
    "Config",
    "Run",
    "Summary",
    "alert",
    "config",
    "finish",
    "init",
    "log",
    "run",
    "summary",
]

_log = logging.getLogger("jobwatch.compat.wandb")

IGNORED_INIT_OPTIONS = frozenset(
    {
        "entity",
        "tags",
        "notes",
        "group",
        "job_type",
        "dir",
        "mode",
        "reinit",
        "settings",
        "save_code",
        "anonymous",
        "magic",
        "sync_tensorboard",
        "monitor_gym",
        "allow_val_change",
        "config_exclude_keys",
        "config_include_keys",
        "fork_from",
        "resume_from",
    }
)
"""``init`` options that only W&B's service reads: each is ignored with a warning."""
RESUME_CHOICES = (None, False, True, "allow", "auto", "never", "must")
"""What ``init``'s ``resume`` takes (W&B's values)."""


class AlertLevel(str, enum.Enum):
    """``wandb.AlertLevel``: an alert's level; ``WARN`` is jobwatch's ``warning``."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


_LEVELS = {"INFO": "info", "WARN": "warning", "WARNING": "warning", "ERROR": "error"}


class Config(MutableMapping[str, Any]):
    """``wandb.config``: the run's hyperparameters, read and set as keys or attributes.

    Every change is sent as the job's ``config`` (:meth:`Reporter.update_config`);
    a value JSON cannot hold is sent as its ``str()``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_reporter", None)

    def _bind(self, reporter: Reporter | None) -> None:
        object.__setattr__(self, "_reporter", reporter)
        if reporter is not None and self._values:
            _send_config(reporter, self._values)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Merge keys in (a mapping, an ``argparse.Namespace`` or keywords), as W&B's.

        W&B's ``allow_val_change`` is taken and ignored: a value may always change.
        """
        kwargs.pop("allow_val_change", None)
        values: dict[str, Any] = {}
        for given in args:
            values.update(given if isinstance(given, Mapping) else vars(given))
        values.update(kwargs)
        self._values.update(values)
        if self._reporter is not None:
            _send_config(self._reporter, values)

    def setdefaults(self, values: Mapping[str, Any]) -> None:
        """Set the keys of ``values`` that the config does not have yet (W&B's)."""
        self.update({k: v for k, v in values.items() if k not in self._values})

    def as_dict(self) -> dict[str, Any]:
        """A copy of the config as a dict."""
        return dict(self._values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        if self._reporter is not None:
            self._reporter.update_config(_plain(self._values), replace=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


class Summary(MutableMapping[str, Any]):
    """``wandb.summary``: the run's final figures, by default the last value logged
    under each key; sent as the job's ``result`` when the run finishes."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set keys (a mapping or keywords)."""
        for given in args:
            self._values.update(given)
        self._values.update(kwargs)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Summary({self._values!r})"


class Run:
    """``wandb.run``: one W&B run, one jobwatch job.

    Attributes
    ----------
    id, name, project:
        The job id, its display name and the project given to ``init``.
    config, summary:
        The run's :class:`Config` and :class:`Summary`.
    reporter:
        The :class:`~jobwatch.Reporter` behind it.
    """

    def __init__(self, reporter: Reporter, name: str | None, project: str | None) -> None:
        self.reporter = reporter
        self.id = reporter.job_id
        self.name = name or reporter.job_id
        self.project = project
        self.config = config
        self.summary = summary
        self._step = 0
        self._pending: dict[str, float] = {}
        self._left_out: set[str] = set()
        self._finished = False

    @property
    def step(self) -> int:
        """The step the next ``log`` goes to (W&B's ``run.step``)."""
        return self._step

    @property
    def url(self) -> str:
        """The job's page on the jobwatch server."""
        return f"{self.reporter.url}/jobs/{self.id}"

    def log(
        self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """``wandb.log``: record ``data``'s numbers at ``step`` (default the run's own
        counter, which each committed call moves on by one, as W&B's).

        ``commit=False`` keeps the values for the same step until a committed
        call. Values that are not single numbers are left out (one warning per
        key); NaN and infinities as :meth:`Reporter.log_metrics` leaves them out.

        Raises
        ------
        ValueError
            ``data`` is not a mapping, or ``step`` is not an integer >= 0 or
            goes below the run's step.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"wandb.log takes a dict, got {type(data).__name__}")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"step must be an integer >= 0, got {step!r}")
            if step < self._step:
                raise ValueError(f"step {step} is below the run's step {self._step}")
            if step > self._step and self._pending:
                self._commit()
            self._step = step
        for key, value in data.items():
            number = _number(value)
            if number is None:
                if key not in self._left_out:
                    self._left_out.add(key)
                    _log.warning(
                        "jobwatch.compat.wandb: %r is a %s, not a number: left out "
                        "(jobwatch charts single numbers only)",
                        key,
                        type(value).__name__,
                    )
                continue
            self._pending[str(key)] = number
            if math.isfinite(number):
                self.summary[str(key)] = number
        if commit is not False:
            self._commit()

    def _commit(self) -> None:
        if self._pending:
            self.reporter.log_metrics(self._pending, step=self._step)
            self._pending = {}
        self._step += 1

    def alert(
        self,
        title: str,
        text: str = "",
        level: AlertLevel | str | None = None,
        wait_duration: Any = None,
    ) -> None:
        """``wandb.alert``: an alert on the job (``level`` INFO, WARN or ERROR; default
        WARN). ``wait_duration`` (W&B's rate limit) is ignored: jobwatch bounds
        alerts itself."""
        name = level.value if isinstance(level, AlertLevel) else (level or "WARN")
        mapped = _LEVELS.get(str(name).upper())
        if mapped is None:
            raise ValueError(f"level must be INFO, WARN or ERROR, got {level!r}")
        self.reporter.alert(title, text or None, mapped)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """``wandb.finish``: complete the job with the summary as its result
        (``exit_code`` other than 0: fail it with that code). Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self._pending:
            self._commit()
        if exit_code:
            self.reporter.fail(f"exit code {exit_code}")
        else:
            self.reporter.complete(result=_plain(dict(self.summary)))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        global run
        if exc is not None and not self._finished:
            self._finished = True
            self.reporter.fail(exc)
        else:
            self.finish()
        if run is self:
            run = None


config = Config()
"""``wandb.config`` of the current run (keys set before ``init`` are sent by it)."""
summary = Summary()
"""``wandb.summary`` of the current run."""
run: Run | None = None
"""``wandb.run``: the current run, ``None`` before ``init`` and after ``finish``."""


def init(
    project: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | Any = None,
    id: str | None = None,
    resume: bool | str | None = None,
    *,
    job_type: str | None = None,
    **options: Any,
) -> Run:
    """``wandb.init``: start a run, a jobwatch job (ended by :func:`finish`).

    Parameters
    ----------
    project:
        The first part of a new job id, ``<project>-<YYYYmmdd-HHMMSS>-<6 hex>``
        (default ``wandb``).
    name:
        The job's display name.
    config:
        The run's hyperparameters (a mapping or an ``argparse.Namespace``).
    id:
        The job id (W&B's run id); default a new one.
    resume:
        W&B's: ``None``/``False``/``"allow"``/``"auto"``/``True`` go on with
        the job ``id`` where it exists (jobwatch jobs are created idempotently),
        ``"must"`` requires it to exist, ``"never"`` requires it not to.
    job_type, options:
        ``init``'s options that only W&B's service reads (``entity``, ``tags``,
        ``mode``, ...): ignored, with a warning each.

    Raises
    ------
    ValueError
        ``resume`` is not one of W&B's values, ``"must"`` without the job or
        ``"never"`` with it, or an argument of the Reporter is invalid.
    NotImplementedError
        An option W&B has that this module does not know.
    """
    global run
    unknown = sorted(set(options) - IGNORED_INIT_OPTIONS)
    if unknown:
        raise NotImplementedError(
            f"jobwatch.compat.wandb.init does not support {', '.join(unknown)}"
        )
    for option in sorted({*options, *(["job_type"] if job_type else [])}):
        _log.warning("jobwatch.compat.wandb: init(%s=...) is not supported; ignored", option)
    if resume not in RESUME_CHOICES:
        raise ValueError(f"resume must be one of {RESUME_CHOICES}, got {resume!r}")
    if run is not None:
        run.finish()  # W&B finishes the previous run of the process too
    job_id = id or f"{project or 'wandb'}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    if resume in ("must", "never"):
        with Client() as client:
            try:
                client.get_job(job_id)
                exists = True
            except JobNotFound:
                exists = False
        if exists != (resume == "must"):
            raise ValueError(
                f"resume={resume!r}: job {job_id!r} "
                + ("does not exist" if resume == "must" else "exists already")
            )
    summary.clear()
    globals()["config"]._values.clear()
    if config is not None:
        globals()["config"]._values.update(config if isinstance(config, Mapping) else vars(config))
    reporter = Reporter(job_id, name=name)
    globals()["config"]._bind(reporter)
    run = Run(reporter, name, project)
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``wandb.log`` of the current run (see :meth:`Run.log`).

    Raises
    ------
    RuntimeError
        No run: call :func:`init` first (as W&B does).
    """
    _current("log").log(data, step=step, commit=commit)


def alert(
    title: str, text: str = "", level: AlertLevel | str | None = None, wait_duration: Any = None
) -> None:
    """``wandb.alert`` of the current run (see :meth:`Run.alert`)."""
    _current("alert").alert(title, text, level, wait_duration)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """``wandb.finish``: finish the current run, if any (see :meth:`Run.finish`)."""
    global run
    if run is not None:
        run.finish(exit_code, quiet)
        run = None


def login(*args: Any, **kwargs: Any) -> bool:
    """``wandb.login``: jobwatch needs no W&B account; warns and returns ``True``
    (a server's token is ``$JOBWATCH_TOKEN``)."""
    _log.warning("jobwatch.compat.wandb: login() is not needed (jobwatch reads $JOBWATCH_TOKEN)")
    return True


def _unsupported(name: str, why: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"jobwatch.compat.wandb does not support wandb.{name}: {why}")

    call.__name__ = name
    call.__doc__ = f"``wandb.{name}``: not supported ({why}); raises NotImplementedError."
    return call


_NO_MEDIA = "jobwatch charts single numbers; log scalars instead"
_NO_FILES = "jobwatch keeps no files or artifacts"
watch = _unsupported("watch", "log gradients or parameter norms as numbers with wandb.log")
unwatch = _unsupported("unwatch", "wandb.watch is not supported either")
save = _unsupported("save", _NO_FILES)
restore = _unsupported("restore", _NO_FILES)
log_artifact = _unsupported("log_artifact", _NO_FILES)
use_artifact = _unsupported("use_artifact", _NO_FILES)
log_model = _unsupported("log_model", _NO_FILES)
Artifact = _unsupported("Artifact", _NO_FILES)
Image = _unsupported("Image", _NO_MEDIA)
Video = _unsupported("Video", _NO_MEDIA)
Audio = _unsupported("Audio", _NO_MEDIA)
Table = _unsupported("Table", _NO_MEDIA)
Histogram = _unsupported("Histogram", _NO_MEDIA)
Html = _unsupported("Html", _NO_MEDIA)
Object3D = _unsupported("Object3D", _NO_MEDIA)
plot = _unsupported("plot", _NO_MEDIA)
define_metric = _unsupported("define_metric", "every logged number is charted by its step")
sweep = _unsupported("sweep", "jobwatch runs no sweeps; start each run with init(config=...)")
agent = _unsupported("agent", "jobwatch runs no sweeps; start each run with init(config=...)")
Api = _unsupported("Api", "read jobs with jobwatch.Client")


def __getattr__(name: str) -> Any:
    raise AttributeError(
        f"jobwatch.compat.wandb does not support wandb.{name} "
        "(supported: init, log, config, summary, alert, finish, run, AlertLevel)"
    )


def _current(what: str) -> Run:
    if run is None:
        raise RuntimeError(f"You must call wandb.init() before wandb.{what}()")
    return run


def _number(value: Any) -> float | None:
    """``value`` as a float if it is one number (NumPy's, a 0-d tensor too), else ``None``."""
    if isinstance(value, (bool, str, bytes)):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:  # NumPy's 0-d arrays, torch's
        try:
            got = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return float(got) if isinstance(got, numbers.Real) and not isinstance(got, bool) else None
    return None


def _send_config(reporter: Reporter, values: Mapping[str, Any]) -> None:
    """Merge ``values`` into the job's config; one over 64 KiB is left out with a
    warning (W&B takes large configs, so a script must not stop for it)."""
    try:
        reporter.update_config(_plain(dict(values)))
    except ValueError as exc:
        _log.warning("jobwatch.compat.wandb: config left out: %s", exc)


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: NaN and infinities as ``None``, others as ``str()``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
