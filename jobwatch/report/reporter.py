"""Reporter: what training code calls to report progress, metrics (GPU and system) and log lines.

Calls made in a training loop only record into an :class:`~jobwatch.report.outbox.Outbox`
and return; the :class:`~jobwatch.report.sender.Sender` thread talks to the server.
Server trouble never raises into the training loop (it is logged, logger
``jobwatch.report.reporter``); bad arguments raise :class:`ValueError` at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

from jobwatch.client.own_io import is_own
from jobwatch.contract.basics import (
    ALERT_LEVELS,
    CURRENCY_RULE,
    LOG_LEVELS,
    MAX_ALERTS,
    MAX_BODY_BYTES,
    MAX_SCALAR_NAMES,
    MAX_STEP,
    MAX_TEXT,
    SCALAR_NAME_RULE,
    currency_code,
    valid_job_id,
    valid_scalar_name,
)
from jobwatch.report import launcher, sigterm
from jobwatch.report import samples as _samples
from jobwatch.report import sender as _sender
from jobwatch.report.env_defaults import currency_from_env, price_from_env
from jobwatch.report.outbox import BudgetState, Completion, Outbox, ReporterJob
from jobwatch.report.sender import Sender
from jobwatch.report.spool import DEFAULT_SPOOL_BYTES, default_root

__all__ = ["Reporter"]

_log = logging.getLogger("jobwatch.report.reporter")
T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
"""Seconds :meth:`Reporter.complete`, :meth:`~Reporter.fail` and :meth:`~Reporter.close` wait."""
MAX_WAIT = 1e6
"""Longest ``interval`` or ``timeout`` accepted, in seconds (about 11 days)."""

GpuOption: TypeAlias = "bool | Literal['auto'] | Callable[[], Mapping[str, Any] | None]"
"""What ``gpu=`` takes: ``"auto"``/``True`` (NVML), ``False``, or a metrics callable."""


class Reporter:
    """Report one job's progress, GPU metrics and log lines to a jobwatch server.

    Parameters
    ----------
    job_id:
        The job to report to; created on first contact (``PUT /api/jobs/{id}``)
        if it does not exist. 1-128 letters, digits and ``. _ : @ -``.
    url:
        Base URL of the server; default ``$JOBWATCH_URL`` or ``http://127.0.0.1:8765``.
    worker_id:
        Who reports; default this machine's hostname (``hostname/rank`` for a
        rank of a distributed job), so a worker restarted on the same machine can
        go on reporting (a job binds to its first worker).
    price_per_hour:
        Price of the machine in ``currency`` per hour (>= 0), for cost estimates;
        default ``$JOBWATCH_PRICE_PER_HOUR`` (:mod:`jobwatch.report.env_defaults`).
    rank, world_size, local_rank:
        This process's place in a distributed job; default what the launcher
        set (``torchrun``, SLURM, Open MPI, MPICH: :mod:`jobwatch.report.launcher`),
        nothing for a single process. Each rank is a worker of the one job:
        rank 0 reports progress, the operation and training metrics; every rank
        sends its log lines (tagged with rank and node); each node's GPUs are
        sampled once (by its local rank 0, or by each rank when
        ``CUDA_VISIBLE_DEVICES`` gives each rank one device); only rank 0
        completes the job.
    node:
        This node's name in a distributed job; default the hostname.
    node_price_per_hour:
        This node's own price per hour (>= 0), sent by its local rank 0: the
        job's cost is then the sum over nodes of each node's reported time times
        its price (a marketplace rents nodes one by one).
    gpu:
        ``"auto"`` or ``True``: send :func:`jobwatch.report.gpu.sample` with each update
        (nothing on a machine without an NVIDIA GPU); ``False``: no GPU metrics; or a
        callable returning the contract's metrics dict (or ``None``).
    system:
        Send the system metrics with each update (:mod:`jobwatch.report.system`,
        psutil): CPU utilization, the machine's memory and this process's with
        its children (DataLoader workers), the working directory's disk, and
        disk and network rates; on machines with or without a GPU. In a
        distributed job only each node's local rank 0 sends them. Values a
        ``gpu`` callable returns take precedence over the sampled ones.
    interval:
        Seconds between requests (> 0); updates in between are coalesced.
    token:
        Bearer token for the server, or ``None``.
    name, currency:
        The job's display name and the currency of its price (default
        ``$JOBWATCH_CURRENCY``, else the server's default currency, QUBIC unless
        its operator set another).
    max_log_lines:
        Log lines kept while the server cannot take them; beyond, the oldest are
        dropped and a warning line saying how many is sent in their place. One
        batch of up to 1000 lines being sent is held besides.
    timeout:
        Seconds to wait for each HTTP answer.
    budget:
        The most the job should cost, in ``currency`` (0 to 1e12): the server
        alerts when the projected total first exceeds it, at 80 % and when it
        is spent (docs/python.md "Budgets"); :attr:`budget_state` follows it.
    on_over_budget:
        Called once, with the :class:`~jobwatch.report.outbox.BudgetState`,
        when the server first answers that the budget is spent; it runs on the
        reporter's thread (keep it short; what it raises is logged).
    spool:
        Keep what the server has not acknowledged on local disk, so that a
        crash or an outage loses nothing (:mod:`jobwatch.report.spool`):
        ``True`` under :func:`jobwatch.report.spool.default_root`
        (``$JOBWATCH_SPOOL_DIR`` or the user state directory), a path for
        another root, ``False`` for memory only.
    spool_bytes:
        Bytes of requests kept while the server does not take them (default
        64 MiB, on disk and in memory); beyond, the oldest are dropped and the
        job is told how many of each kind.
    capture_output:
        Tee what the process prints into the job's log
        (:mod:`jobwatch.report.capture`): each line written to ``sys.stdout``
        becomes an ``info`` line, to ``sys.stderr`` a ``warning`` line, while
        still printed where it went; ``\r`` frames (tqdm) stay in the line,
        which the log view shows as the last frame. Off by default here; on
        in :func:`jobwatch.track` and the framework integrations. Stopped
        (streams put back, a partial line sent) when the reporter closes.
    config:
        The run's configuration (hyperparameters, training arguments): a
        mapping that JSON can hold (keys become strings as :func:`json.dumps`
        makes them), at most 64 KiB as compact JSON. Sent with the job's
        ``PUT`` and shown by the monitor, the job page and
        :func:`jobwatch.compare`; :meth:`update_config` changes it later. In a
        distributed job only rank 0's config is sent.

    Raises
    ------
    ValueError
        An argument is invalid. The server is not contacted here: an
        unreachable server never raises.

    Notes
    -----
    As a context manager it calls :meth:`complete` on normal exit and
    :meth:`fail` with the exception on error (which then propagates). At
    interpreter exit, an unclosed reporter gets a few seconds (in all, see
    :data:`jobwatch.report.sender.EXIT_TIMEOUT`) to deliver what it holds; the job
    is not completed then. SIGTERM fails the job (``"terminated by SIGTERM"``)
    within :data:`jobwatch.report.sigterm.SIGTERM_TIMEOUT` seconds, then the
    process dies by the signal as it would have; a SIGTERM handler of the
    program's own is left alone (:mod:`jobwatch.report.sigterm`). Delivery is at least once: a request whose answer
    was lost (the server died after storing it) is sent again.
    """

    def __init__(
        self,
        job_id: str,
        *,
        url: str | None = None,
        worker_id: str | None = None,
        price_per_hour: float | None = None,
        gpu: GpuOption = "auto",
        system: bool = True,
        interval: float = 1.0,
        token: str | None = None,
        name: str | None = None,
        currency: str | None = None,
        max_log_lines: int = 10_000,
        timeout: float = 10.0,
        rank: int | None = None,
        world_size: int | None = None,
        local_rank: int | None = None,
        node: str | None = None,
        node_price_per_hour: float | None = None,
        spool: str | os.PathLike[str] | bool = True,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        budget: float | None = None,
        on_over_budget: Callable[[BudgetState], object] | None = None,
        config: Mapping[str, Any] | None = None,
        capture_output: bool = False,
    ) -> None:
        if not isinstance(job_id, str) or not valid_job_id(job_id):
            raise ValueError(
                "job_id must be 1-128 letters, digits and . _ : @ -, starting with a letter "
                f"or digit; got {job_id!r}"
            )
        place = launcher.placement(rank=rank, world_size=world_size, local_rank=local_rank)
        node = launcher.node_name() if node is None else node
        _check_text("node", node, 1, MAX_TEXT)
        worker_id = place.worker_id(node) if worker_id is None else worker_id
        _check_text("worker_id", worker_id, 1, MAX_TEXT)
        if node_price_per_hour is not None and not _is_number(node_price_per_hour, 0.0, 1e9):
            raise ValueError(
                f"node_price_per_hour must be a number from 0 to 1e9, got {node_price_per_hour!r}"
            )
        _check_text("name", name, 0, MAX_TEXT)
        currency = _checked_currency(currency if currency is not None else currency_from_env())
        if price_per_hour is None:
            price_per_hour = price_from_env()
        if budget is not None and not _is_number(budget, 0.0, 1e12):
            raise ValueError(f"budget must be a number from 0 to 1e12, got {budget!r}")
        if on_over_budget is not None and not callable(on_over_budget):
            raise ValueError(f"on_over_budget must be callable, got {on_over_budget!r}")
        if price_per_hour is not None and not _is_number(price_per_hour, 0.0, 1e9):
            raise ValueError(
                f"price_per_hour must be a number from 0 to 1e9, got {price_per_hour!r}"
            )
        if not _is_number(interval, 0.0, MAX_WAIT) or interval == 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if (
            isinstance(max_log_lines, bool)
            or not isinstance(max_log_lines, int)
            or max_log_lines < 1
        ):
            raise ValueError(f"max_log_lines must be an integer >= 1, got {max_log_lines!r}")
        _check_timeout(timeout)
        first_config = None if config is None else _checked_config(config, "config")
        if isinstance(spool_bytes, bool) or not isinstance(spool_bytes, int) or spool_bytes < 1:
            raise ValueError(f"spool_bytes must be an integer >= 1, got {spool_bytes!r}")
        if spool is True:
            spool_root: Path | None = default_root()
        elif spool is False:
            spool_root = None
        elif isinstance(spool, (str, os.PathLike)):
            spool_root = Path(spool)
        else:
            raise ValueError(f"spool must be True, False or a path, got {spool!r}")
        self.job_id = job_id
        self.worker_id = worker_id
        from jobwatch.client.rest import Client  # requests loads here, not at ``import jobwatch``

        client = Client(url, token=token, timeout=timeout)  # ValueError for a bad url or timeout
        self.url = client.url
        self._outbox = Outbox(max_log_lines)
        self._closed = False
        self._warned_closed = False
        self._finish_lock = threading.Lock()
        self._scalar_names: set[str] = set()
        self._next_step = 0
        self._warned_nonfinite = False
        self._warned_alerts = False
        self.placement = place
        rank_fields: dict[str, Any] | None = None
        if place.distributed:
            rank_fields = {
                "rank": place.rank,
                "worldSize": place.world_size,
                "localRank": place.local_rank,
                "node": node,
            }
            if node_price_per_hour is not None and place.is_local_leader:
                rank_fields["nodePricePerHour"] = float(node_price_per_hour)
        job = ReporterJob(
            job_id,
            worker_id,
            name,
            price_per_hour,
            currency,
            place.world_size,
            rank_fields,
            None if budget is None else float(budget),
        )
        if not isinstance(system, bool):
            raise ValueError(f"system must be True or False, got {system!r}")
        metrics = _metrics_source(gpu)
        if metrics is not None and gpu == "auto" and not launcher.samples_gpus(place):
            metrics = None  # another rank of this node samples its GPUs
        if system and place.is_local_leader:  # once per node, as its GPUs are
            from jobwatch.report.system import SystemSampler  # psutil loads here

            metrics = _with_system(metrics, SystemSampler())
        if metrics is not None:
            _samples.prepare()  # here, not in the sender thread, which must import nothing
        self._config: dict[str, Any] = {}  # set before the sender starts: its spool keeps it
        if first_config is not None and (place.rank or 0) == 0:
            self._config = first_config
            self._outbox.set_config(first_config)
        self._sender = Sender(
            client,
            job,
            self._outbox,
            metrics,
            float(interval),
            spool_root=spool_root,
            spool_bytes=spool_bytes,
            on_over_budget=on_over_budget,
        )
        self._capture = None
        if capture_output:
            from jobwatch.report.capture import OutputCapture

            self._capture = OutputCapture(self._forward, self)
        self._finalizer = _finalizer(self)
        _reporters.add(self)
        sigterm.install(_fail_at_sigterm)

    def _after_fork_in_child(self) -> None:
        """Called in a forked child: the parent's sender thread and any lock another
        parent thread held are not usable here, so take fresh ones."""
        self._finalizer.detach()  # it would finish the parent's sender
        self._finish_lock = threading.Lock()
        self._outbox = Outbox(self._outbox.max_log_lines)
        self._sender = self._sender.forked(self._outbox)
        self._finalizer = _finalizer(self)

    @property
    def config(self) -> dict[str, Any]:
        """A copy of the job's config as this reporter last set it (``{}`` for none)."""
        copied: dict[str, Any] = json.loads(json.dumps(self._config))
        return copied

    def update_config(self, values: Mapping[str, Any], *, replace: bool = False) -> None:
        """Change the job's config; returns at once (the PUT goes from the sender thread
        before its next request; :meth:`flush` waits for it too).

        Parameters
        ----------
        values:
            ``{name: value}`` merged over the config's top-level keys (as W&B's
            ``wandb.config.update``), or the whole config with ``replace``.
            Values must be what JSON holds (finite numbers, strings, booleans,
            ``None``, lists, dicts); the result must be at most 64 KiB as compact
            JSON (:data:`~jobwatch.contract.basics.MAX_CONFIG_BYTES`).
        replace:
            Make ``values`` the whole config.

        Raises
        ------
        ValueError
            ``values`` is not a mapping, holds something JSON cannot, or the
            config would be over 64 KiB; nothing changes then. In a distributed
            job only rank 0 sets the config (other ranks' calls are checked,
            then ignored). After :meth:`close` the call is ignored.
        """
        if self._closed:
            self._warn_closed()
            return
        if not isinstance(values, Mapping):
            raise ValueError(f"config must be a mapping, got {type(values).__name__}")
        merged = dict(values) if replace else {**self._config, **values}
        config = _checked_config(merged, "config")
        if (self.placement.rank or 0) != 0:
            return  # the job's config is rank 0's
        self._config = config
        self._outbox.set_config(config)

    def set_price(self, price_per_hour: float) -> None:
        """The job's new price per hour (in its currency), e.g. a spot instance repriced;
        returns at once (the PUT goes from the sender thread before its next request;
        :meth:`flush` waits for it too).

        The server counts each price for the time it held, from when it receives it
        (docs/api.md "Estimates"): the job's cost integrates its price over time.
        In a distributed job only rank 0 sets the job's price (a node's own price
        is ``node_price_per_hour``); other ranks' calls are checked, then ignored.
        After :meth:`close` the call is ignored.

        Raises
        ------
        ValueError
            ``price_per_hour`` is not a number from 0 to 1e9.
        """
        if not _is_number(price_per_hour, 0.0, 1e9):
            raise ValueError(
                f"price_per_hour must be a number from 0 to 1e9, got {price_per_hour!r}"
            )
        if self._closed:
            self._warn_closed()
            return
        if (self.placement.rank or 0) != 0:
            return  # the job's price is rank 0's
        self._outbox.set_price(float(price_per_hour))

    def update(
        self, progress: float, operation: str | None = None, *, allow_backwards: bool = False
    ) -> None:
        """Record the newest progress; returns at once (no I/O, no logging).

        Parameters
        ----------
        progress:
            Percent done, 0 to 100. A reporter that attached to a job already
            running (another process moved it, e.g. before a restart from a
            checkpoint) never sends less than the job had then, so a resumed
            run does not move it backwards.
        operation:
            What the job is doing, e.g. ``"epoch 3/10"``; ``None`` keeps the last one.
            Sent cut to 1024 characters; NUL characters become U+FFFD.
        allow_backwards:
            Send ``progress`` even when it is below what the job had when this
            reporter attached (a run started over on purpose).

        Raises
        ------
        ValueError
            ``progress`` is not a number from 0 to 100, or ``operation`` not a string.
            After :meth:`close` nothing raises: the call is ignored (warned once).
        """
        if self._closed:
            self._warn_closed()
            return
        try:
            valid = 0.0 <= progress <= 100.0
        except TypeError:
            valid = False
        if not valid or type(progress) is bool:  # the server refuses booleans too
            raise ValueError(f"progress must be a number from 0 to 100 (percent), got {progress!r}")
        if operation is not None and not isinstance(operation, str):
            raise ValueError(f"operation must be a string or None, got {type(operation).__name__}")
        self._outbox.record(float(progress), operation, allow_backwards)

    def log(self, message: object, level: str = "info") -> None:
        """Queue one log line (timestamped now); it travels with the next update.

        Parameters
        ----------
        message:
            The text (anything else is turned into ``str``); over 16 KiB of
            UTF-8 it is cut with a marker. NUL characters, which the server
            refuses (PostgreSQL cannot store them), become U+FFFD.
        level:
            ``"info"``, ``"warning"`` or ``"error"`` (any case).

        Raises
        ------
        ValueError
            ``level`` is not one of those. After :meth:`close` the call is ignored.
        """
        if self._closed:
            self._warn_closed()
            return
        lowered = level.lower() if isinstance(level, str) else None
        if lowered not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}; got {level!r}")
        self._outbox.add_log(lowered, str(message), time.time())

    def log_metrics(
        self, values: Mapping[str, float], step: int | None = None, *, rank: int | None = None
    ) -> None:
        """Record training metrics (loss, accuracy, ...) for one step; returns at
        once, like :meth:`update` (no I/O): they travel with the next request.

        Parameters
        ----------
        values:
            ``{name: number}``: names such as ``"loss"`` or ``"val/accuracy"``
            (1-64 characters of letters, digits and ``_ - . / :``; at most 100
            names per job); values are anything ``float()`` takes (Python and
            NumPy numbers, 0-d tensors). A NaN or infinite value (a diverged
            loss) is left out, with one warning per reporter: JSON cannot carry
            it.
        step:
            The training step (or epoch) the values belong to, an integer >= 0;
            default one more than the last step given (0 at first), like W&B's
            own counter.
        rank:
            In a distributed job, the rank whose values are kept: each rank may
            call this and only that rank's values are sent (default 0, so the
            job's charts hold one series, not one value per rank mixed). Ignored
            in a single process.

        Raises
        ------
        ValueError
            ``values`` is not a mapping, a name is not allowed, the job would get
            more than 100 names, a value is not a number (booleans neither), or
            ``step`` is not an integer from 0 to 2**62 (:data:`MAX_STEP`). After
            :meth:`close` the call is ignored.
        """
        if self._closed:
            self._warn_closed()
            return
        if not isinstance(values, Mapping):
            raise ValueError(
                f"values must be a mapping of name to number, got {type(values).__name__}"
            )
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 0):
            raise ValueError(f"rank must be an int >= 0, got {rank!r}")
        if self.placement.rank is not None and self.placement.rank != (rank or 0):
            return  # another rank's values are the job's
        if step is None:
            step = self._next_step
        elif isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
            raise ValueError(f"step must be an integer from 0 to 2**62, got {step!r}")
        clean: dict[str, float] = {}
        known = self._scalar_names
        for name, value in values.items():
            if name not in known:
                self._new_scalar_name(name)
            number = value if type(value) is float else _metric_value(name, value)
            if math.isfinite(number):
                clean[name] = number
            elif not self._warned_nonfinite:
                self._warned_nonfinite = True
                _log.warning(
                    "jobwatch: metric %r is %s at step %d; non-finite values are left out",
                    name,
                    number,
                    step,
                )
        self._next_step = step + 1
        if clean:
            self._outbox.add_scalars(step, clean)

    def alert(self, title: str, text: str | None = None, level: str = "warning") -> None:
        """Raise an alert on the job (shown as a banner in the monitor, counted in
        the jobs table, posted to the server's webhook); returns at once.

        Parameters
        ----------
        title:
            What happened, 1-200 characters: ``"loss is NaN"``.
        text:
            More detail, at most 4,096 characters (longer is cut).
        level:
            ``"info"``, ``"warning"`` (default) or ``"error"``.

        Raises
        ------
        ValueError
            ``title`` is empty or not a string, ``text`` not a string, or ``level``
            not one of those. Past 100 alerts waiting to be sent, more are
            dropped with one warning; after :meth:`close` the call is ignored.
        """
        if self._closed:
            self._warn_closed()
            return
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"title must be a non-empty string, got {title!r}")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"text must be a string or None, got {type(text).__name__}")
        lowered = level.lower() if isinstance(level, str) else None
        if lowered not in ALERT_LEVELS:
            raise ValueError(f"level must be one of {', '.join(ALERT_LEVELS)}; got {level!r}")
        alert = {"title": title[:200].replace("\x00", "\ufffd"), "level": lowered}
        if text is not None:
            alert["text"] = text[:4096].replace("\x00", "\ufffd")
        if not self._outbox.add_alert(alert, MAX_ALERTS) and not self._warned_alerts:
            self._warned_alerts = True
            _log.warning("jobwatch: more than %d alerts waiting; dropping the newest", MAX_ALERTS)

    @property
    def budget_state(self) -> BudgetState | None:
        """The job's spend against its budget as the server last answered
        (``budget``, ``cost_so_far``, ``estimated_total_cost``, ``currency``,
        ``over_budget``); ``None`` before the first answer."""
        return self._sender.budget_state

    @property
    def over_budget(self) -> bool:
        """Whether the server last answered that the job's budget is spent."""
        state = self._sender.budget_state
        return state is not None and state.over_budget

    def expect_silence(self, seconds: float | None) -> contextlib.AbstractContextManager[None]:
        """Say that the training code may make no call for up to ``seconds`` from now
        (a long evaluation, a checkpoint), so the server does not judge the job
        hung meanwhile; ``None`` or 0 takes it back. Returns at once.

        The server judges a job hung when its reports keep arriving but the
        training code has made no call (:meth:`update`, :meth:`log`,
        :meth:`log_metrics`, :meth:`track`) for longer than its hang threshold
        (``jobwatch serve --hang-after``, default 300 s, or ten of its usual
        intervals between calls): docs/python.md "Hung jobs". This raises the
        threshold to ``seconds`` after the last call until taken back. Used as a
        context manager, it is taken back on leaving the block::

            with report.expect_silence(3600):
                evaluate(model)  # may take an hour without a call

        Raises
        ------
        ValueError
            ``seconds`` is not a number from 0 to 604,800 (a week).
        """
        if seconds is not None and not _is_number(seconds, 0.0, 7 * 86400.0):
            raise ValueError(f"seconds must be a number from 0 to 604800 (a week), got {seconds!r}")
        self._set_silence(float(seconds) if seconds else None)
        return _SilenceTaken(self)

    def _set_silence(self, seconds: float | None) -> None:
        if self._closed:
            return
        with self._outbox.lock:
            self._outbox.silence = seconds
        self._outbox.record(None, None)  # a call, and news for the server

    def _new_scalar_name(self, name: object) -> None:
        if not isinstance(name, str) or not valid_scalar_name(name):
            raise ValueError(f"metric name {name!r} is not allowed; names are {SCALAR_NAME_RULE}")
        if len(self._scalar_names) >= MAX_SCALAR_NAMES:
            raise ValueError(
                f"metric {name!r} would be name {MAX_SCALAR_NAMES + 1}; "
                f"a job takes at most {MAX_SCALAR_NAMES} metric names"
            )
        self._scalar_names.add(name)

    def track(
        self,
        iterable: Iterable[T],
        total: float | None = None,
        description: str | None = None,
        initial: int = 0,
        metrics: Mapping[str, float] | Callable[[], Mapping[str, float] | None] | None = None,
        *,
        stop_over_budget: bool = False,
    ) -> Iterator[T]:
        """Yield the items of ``iterable``, reporting progress after each (like tqdm).

        Parameters
        ----------
        iterable:
            The items to go through.
        total:
            How many items the whole run has; default ``initial + len(iterable)``
            where the iterable has a length (unlike tqdm, whose default leaves
            ``initial`` out). Progress is ``100 * done / total`` %, at most 100.
            Without a total, progress is left as it was and only the operation
            counts.
        description:
            Prefix of the operation, which reads ``"description 3/10"``
            (``"description 3/?"`` without a total).
        initial:
            Items done before this loop, as tqdm's ``initial``: a run resumed from
            a checkpoint after 4 of 10 epochs passes ``initial=4`` and shows 40 %
            and ``"4/10"`` at once, then counts on from there. With a total,
            ``initial > 0`` declares the resume to the server (``resumedFrom``):
            the job's time remaining then waits until progress moves, as the
            items done before were not done in the time the job has run.
        metrics:
            Training metrics logged after each item with the item's count as
            step (:meth:`log_metrics`): a dict the loop body updates (``stats =
            {}``, ``for b in report.track(loader, metrics=stats): stats["loss"]
            = ...``) or a function returning one; an empty one logs nothing.
        stop_over_budget:
            End the loop cleanly before the next item once the server answers
            that the job's budget is spent (:attr:`over_budget`), and mark the
            job ``cancelled`` with the reason (``"over budget: 50.20 of 50.00
            QUBIC spent"``). The answer comes with the reporter's next request,
            so the loop may run up to an ``interval`` longer.

        Raises
        ------
        ValueError
            ``iterable`` is not iterable, ``total`` is negative or not a number,
            ``initial`` is not an integer >= 0 or exceeds ``total``,
            ``description`` not a string, or ``metrics`` neither a mapping nor
            callable (raised here, before iterating).
        """
        total = track_total(iterable, total, initial, description, metrics)
        prefix = f"{description} " if description else ""
        if initial > 0 and total is not None:  # before the record, which the sender sees
            self._outbox.resumed_from = 100.0 if total == 0 else min(100.0, 100.0 * initial / total)
        self._count(initial, total, prefix)  # at once, as tqdm shows its bar on creation
        return self._track(iterable, total, prefix, initial, metrics, stop_over_budget)

    def _track(
        self,
        iterable: Iterable[T],
        total: float | None,
        prefix: str,
        initial: int,
        metrics: Mapping[str, float] | Callable[[], Mapping[str, float] | None] | None,
        stop_over_budget: bool = False,
    ) -> Iterator[T]:
        for done, item in enumerate(iterable, initial + 1):
            if stop_over_budget and self.over_budget:
                self._cancel_over_budget()
                return
            yield item
            self._count(done, total, prefix)
            if metrics is not None:
                values = metrics() if callable(metrics) else metrics
                if values:
                    self.log_metrics(values, step=done)

    def _cancel_over_budget(self) -> None:
        """Cancel the job because its budget is spent, saying so."""
        state = self._sender.budget_state
        reason = "over budget"
        if state is not None and state.budget is not None and state.cost_so_far is not None:
            reason += f": {state.cost_so_far:.2f} of {state.budget:.2f} {state.currency} spent"
        self.log(f"jobwatch: stopped the loop, {reason}", "warning")
        self._finish(Completion("cancelled", error=reason), DEFAULT_TIMEOUT)

    def _count(self, done: int, total: float | None, prefix: str) -> None:
        if self._closed:
            self._warn_closed()
        elif total is None:
            self._outbox.record(None, f"{prefix}{done}/?")
        else:
            progress = 100.0 if total == 0 else min(100.0, 100.0 * done / total)
            self._outbox.record(progress, f"{prefix}{done}/{total:g}")

    def logging_handler(self, level: int | str = logging.NOTSET) -> logging.Handler:
        """A :class:`logging.Handler` that forwards records as log lines.

        DEBUG and INFO become ``info``, WARNING ``warning``, ERROR and CRITICAL
        ``error``; the text is the handler's formatted record (with the
        traceback when there is one) and the timestamp the record's. Attach it
        with ``logging.getLogger().addHandler(...)``.

        Records that jobwatch's own work causes are never forwarded, so that
        they cannot feed back (each shipped line would cause more): any record
        emitted by a reporter's sender thread (this reporter's or another's),
        and records of the ``urllib3``, ``requests``, ``websocket`` and
        ``jobwatch`` loggers emitted by a thread while it is inside a jobwatch
        :class:`~jobwatch.client.rest.Client` call or a subscription's ``next()``.
        With ``logging.logThreads`` off, records of those four loggers are
        never forwarded.

        Parameters
        ----------
        level:
            The handler's threshold (default: everything that reaches it).
        """
        return _ReporterHandler(self, level)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far has been sent.

        Parameters
        ----------
        timeout:
            Seconds to wait at most; ``None`` waits as long as it takes (while
            the server is down that may be forever).

        Returns
        -------
        bool
            ``True`` when all was delivered (or dropped as the server refused
            it), ``False`` on timeout or once the reporter has stopped.

        Raises
        ------
        ValueError
            ``timeout`` is negative or over :data:`MAX_WAIT`.
        """
        if timeout is not None:
            _check_timeout(timeout)
        return self._sender.flush(timeout)

    def complete(self, result: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deliver what is pending, mark the job ``completed`` (progress 100), and close.

        Parameters
        ----------
        result:
            Any JSON value to store with the job (finite numbers only).
        timeout:
            Seconds to wait at most for the server, retries included.

        Returns
        -------
        bool
            Whether the server recorded the completion in time. ``False`` also
            after :meth:`close` (the call is then ignored) or when the job had
            finished already.

        Raises
        ------
        ValueError
            ``result`` is not portable JSON (string keys, finite numbers, 64-bit
            integers, at most 64 levels of objects and arrays, the outermost
            counting as 1) or over 512 KiB, or ``timeout`` is negative or over
            :data:`MAX_WAIT`.
        """
        from jobwatch.contract.basics import check_keys
        from jobwatch.contract.requests import CompleteRequest

        try:
            check_keys(result, "result")
            text = json.dumps(result, allow_nan=False)
            CompleteRequest.model_validate({"workerId": self.worker_id, "result": json.loads(text)})
        except (TypeError, ValueError, RecursionError) as exc:  # pydantic's is a ValueError
            raise ValueError(f"result must be portable JSON: {exc}") from exc
        if len(text) > MAX_BODY_BYTES // 2:
            raise ValueError(
                f"result must be under {MAX_BODY_BYTES // 2} bytes as JSON, got {len(text)}"
            )
        return self._finish(Completion("completed", result=result), timeout)

    def fail(self, error: BaseException | str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deliver what is pending, mark the job ``failed`` with ``error``'s text, and close.

        An exception is stored as ``"Type: message"`` and its traceback is sent
        as an ``error`` log line first.

        Parameters
        ----------
        error:
            The exception or a message (cut to 16 KiB).
        timeout:
            Seconds to wait at most for the server, retries included.

        Returns
        -------
        bool
            Whether the server recorded the failure in time (see :meth:`complete`).

        Raises
        ------
        ValueError
            ``error`` is neither an exception nor a string, or ``timeout`` is
            negative or over :data:`MAX_WAIT`.
        """
        if isinstance(error, BaseException):
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        elif isinstance(error, str):
            text = detail = error
        else:
            raise ValueError(f"error must be an exception or a string, got {type(error).__name__}")
        if not self._closed:
            self._outbox.add_log("error", detail.rstrip(), time.time())
        return self._finish(Completion("failed", error=text), timeout)

    def close(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deliver what is pending (waiting at most ``timeout`` seconds), then stop the thread.

        The job stays as it is (not completed). Idempotent; later calls return
        ``False`` at once. A request still in flight at the timeout ends by
        itself within the reporter's HTTP ``timeout`` and sends nothing more.

        Returns
        -------
        bool
            Whether everything recorded was delivered.

        Raises
        ------
        ValueError
            ``timeout`` is negative or over :data:`MAX_WAIT`.
        """
        return self._finish(None, timeout)

    def _finish(self, completion: Completion | None, timeout: float) -> bool:
        _check_timeout(timeout)
        if not self._close_for(completion):
            return False
        return self._sender.finish(completion, timeout)

    def _close_for(self, completion: Completion | None) -> bool:
        """Mark this reporter closed; ``False`` if it was already (warned when
        ``completion`` would have been lost)."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.stop()  # before closing: the partial line goes with the rest
        with self._finish_lock:
            closed, self._closed = self._closed, True
        if closed and completion is not None:
            self._warn_closed()
        return not closed

    def _terminated(self, deadline: float) -> None:
        """SIGTERM: ask the sender to fail the job by ``deadline`` (monotonic s),
        without waiting (:func:`_fail_at_sigterm` waits for all reporters at once)."""
        if self._closed:
            return
        self._forward("error", f"jobwatch: {sigterm.TERMINATED}", time.time())
        completion = Completion("failed", error=sigterm.TERMINATED)
        if self._close_for(completion):
            self._sender.start()
            self._sender.request_finish(completion, deadline, at_exit=True)

    def _warn_closed(self) -> None:
        if not self._warned_closed:
            self._warned_closed = True
            _log.warning("jobwatch: reporter for job %r is closed; ignoring calls", self.job_id)

    def _forward(self, level: str, message: str, created: float) -> None:
        if not self._closed:
            self._outbox.add_log(level, message, created)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        """Complete the job; fail it with the exception that left the block (which
        then goes on); cancel it on Ctrl-C (``KeyboardInterrupt``). ``sys.exit()``
        follows the shell's rule: status 0 or none completes the job, any other
        fails it (``"exit status 3"``, or the message given to ``sys.exit``)."""
        if self._closed:
            return
        if isinstance(exc, SystemExit):
            if exc.code is None or exc.code == 0:
                self.complete()
            elif isinstance(exc.code, int):
                self.fail(f"exit status {exc.code}")
            else:
                self.fail(str(exc.code))
        elif exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self._finish(
                Completion("cancelled", error="interrupted (KeyboardInterrupt)"), DEFAULT_TIMEOUT
            )
        else:
            self.fail(exc)

    def __repr__(self) -> str:
        return f"Reporter(job_id={self.job_id!r}, url={self.url!r}, worker_id={self.worker_id!r})"


class _ReporterHandler(logging.Handler):
    """Forwards log records to a :class:`Reporter` as log lines."""

    def __init__(self, reporter: Reporter, level: int | str) -> None:
        super().__init__(level)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        if is_own(record):  # shipping it would make more of it: see jobwatch.client.own_io
            return
        levelno = record.levelno
        level = (
            "error"
            if levelno >= logging.ERROR
            else "warning"
            if levelno >= logging.WARNING
            else "info"
        )
        try:
            self._reporter._forward(level, self.format(record), record.created)
        except Exception:
            self.handleError(record)


class _SilenceTaken(contextlib.AbstractContextManager[None]):
    """What :meth:`Reporter.expect_silence` returns: leaving the block takes the
    expected silence back."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def __exit__(self, *exc: object) -> None:
        self._reporter._set_silence(None)


def _metrics_source(gpu: GpuOption) -> Callable[[], Mapping[str, Any] | None] | None:
    if gpu is False:
        return None
    if gpu is True or (isinstance(gpu, str) and gpu == "auto"):
        from jobwatch.report import gpu as _gpu  # NVML's wrapper loads with a reporter that samples

        return _gpu.sample
    if callable(gpu):
        return gpu
    raise ValueError(f"gpu must be 'auto', True, False or a callable, got {gpu!r}")


def _with_system(
    gpu: Callable[[], Mapping[str, Any] | None] | None, system: Callable[[], Mapping[str, Any]]
) -> Callable[[], Mapping[str, Any] | None]:
    """A metrics source: the system sample, with what ``gpu`` returns (if any) over it."""

    def sample() -> Mapping[str, Any] | None:
        gpus = gpu() if gpu is not None else None
        if gpus is not None and not isinstance(gpus, Mapping):
            return gpus  # the sender refuses it with its own warning
        return {**system(), **(gpus or {})}

    return sample


def _finalizer(reporter: Reporter) -> weakref.finalize[Any, Any]:
    finalizer = weakref.finalize(reporter, _abandoned, reporter._sender)
    finalizer.atexit = False  # the sender's own exit hook delivers at exit
    return finalizer


_reporters: weakref.WeakSet[Reporter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reporter in list(_reporters):
        reporter._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX; PyTorch DataLoader workers and multiprocessing fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _fail_at_sigterm(deadline: float) -> None:
    """The process got SIGTERM: fail every open reporter's job (in a distributed
    job, only rank 0's reporter fails it; the others deliver and stop) and have
    every sender deliver by ``deadline`` (monotonic s)."""
    for reporter in list(_reporters):
        reporter._terminated(deadline)
    _sender.deliver_by(deadline)


def _abandoned(sender: Sender) -> None:
    """A reporter was garbage-collected unclosed: deliver what it holds, then stop."""
    sender.request_finish(None, time.monotonic() + DEFAULT_TIMEOUT)


def track_total(
    iterable: Iterable[Any],
    total: float | None,
    initial: int,
    description: str | None,
    metrics: object,
) -> float | None:
    """Check :meth:`Reporter.track`'s arguments (see there) and return the run's
    total: ``total``, else ``initial + len(iterable)``, else ``None``.

    Raises
    ------
    ValueError
        As :meth:`Reporter.track` says; :func:`jobwatch.track` calls this before it
        makes a reporter, so that nothing starts.
    """
    if metrics is not None and not (isinstance(metrics, Mapping) or callable(metrics)):
        raise ValueError(
            f"metrics must be a mapping or a function returning one, got {type(metrics).__name__}"
        )
    kind = type(iterable)  # not iter(): a DataLoader's would start its workers
    if not (hasattr(kind, "__iter__") or hasattr(kind, "__getitem__")):
        raise ValueError(f"iterable must be iterable, got {kind.__name__}")
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 0:
        raise ValueError(f"initial must be an integer >= 0 (items done), got {initial!r}")
    if description is not None and not isinstance(description, str):
        raise ValueError(f"description must be a string, got {type(description).__name__}")
    if total is None:
        try:
            return initial + len(iterable)  # type: ignore[arg-type]
        except TypeError:
            return None
    if not _is_number(total, 0.0, math.inf):
        raise ValueError(f"total must be a number >= 0, got {total!r}")
    if initial > total:
        raise ValueError(f"initial ({initial}) must not exceed total ({total:g})")
    return total


def _metric_value(name: str, value: object) -> float:
    """``value`` as a float (NumPy numbers and 0-d tensors too); booleans and text refused."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"metric {name!r} must be a number, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"metric {name!r} must be a number, got {value!r}") from None
    except OverflowError:  # an int past float's range (10**400)
        raise ValueError(
            f"metric {name!r} is too large for a float (at most about 1.8e308)"
        ) from None


def _is_number(value: object, low: float, high: float) -> bool:
    """A real number (not a bool, not NaN) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return low <= value <= high and not math.isnan(value)


def _check_timeout(timeout: object) -> None:
    if not _is_number(timeout, 0.0, MAX_WAIT):
        raise ValueError(
            f"timeout must be a number of seconds from 0 to {MAX_WAIT:g}, got {timeout!r}"
        )


def _checked_currency(value: object) -> str | None:
    """``value`` as the server stores it (see :func:`~jobwatch.contract.requests.currency_code`)."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return currency_code(value)
    raise ValueError(f"currency {CURRENCY_RULE}; got {value!r}")


def _checked_config(config: object, what: str) -> dict[str, Any]:
    """``config`` as the JSON object the server will store, or ``ValueError``."""
    from jobwatch.contract.basics import check_keys
    from jobwatch.contract.requests import check_config

    if not isinstance(config, Mapping):
        raise ValueError(f"{what} must be a mapping, got {type(config).__name__}")
    try:
        check_keys(config, what)
        plain: dict[str, Any] = json.loads(json.dumps(dict(config), allow_nan=False))
        check_config(plain)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(
            f"{what} must be a JSON object (string keys, at most 64 KiB): {exc}"
        ) from None
    return plain


def _check_text(what: str, value: object, shortest: int, longest: int) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not shortest <= len(value) <= longest or "\x00" in value:
        raise ValueError(
            f"{what} must be a string of {shortest}-{longest} characters without NUL, got {value!r}"
        )
