"""``GET /api/prometheus``: running jobs and the server itself for a Prometheus scraper.

Job figures are read from the store at each scrape (a custom collector, as
prometheus_client's docs advise for values that live elsewhere): progress,
time remaining, cost and the latest sample (GPU and system metrics) of every
running job. The
server's own figures are kept in this process: requests by endpoint and
status, the time to handle a progress update, open WebSocket subscribers and
the bytes queued for them. Under ``--workers N`` each process counts its own
requests and subscribers; the job figures are the same in every process.

A scrape's size is bounded whatever the jobs hold: at most :data:`MAX_JOBS`
running jobs, at most :data:`MAX_GPUS_PER_JOB` per-GPU series per job (the GPUs
beyond share one series, ``gpu="rest"``, combined as the flat field is: mean
utilization, summed memory and power, hottest temperature), and job names and
worker ids cut to :data:`LABEL_BYTES`. Concurrent scrapes share one build (the
first builds, the others wait for it and get the same text), so scrapers cannot
multiply the work. A tenant's token sees its own running jobs and nothing of
the server's own figures; the admin token (and the read token of a
single-tenant server) sees everything.

Names and units follow Prometheus' conventions
(https://prometheus.io/docs/practices/naming/): base units (seconds, bytes,
watts, celsius), ``_total`` for counters. Memory and disk are reported in
bytes (the wire's MB are MiB, times 1,048,576); disk and network rates in
bytes per second (gauges of the rate the worker measured over its last
interval, since the worker keeps no counter the server could read).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from jobwatch.contract.gpu_identity import gpu_ids
from jobwatch.contract.metrics import GPU_METRICS, SYSTEM_METRICS, combine
from jobwatch.server.core.rules import job_estimates
from jobwatch.server.core.tenancy import Scope, list_scope
from jobwatch.server.core.text import bounded_text
from jobwatch.server.events.turns import let_others_run
from jobwatch.server.storage import queries
from jobwatch.server.web.access import current_principal
from jobwatch.server.web.services import Services

bp = Blueprint("prometheus", __name__, url_prefix="/api")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus reads; our names (plain ASCII)
are written the same in it and in prometheus_client's newer 1.0.0."""
MAX_JOBS = 1000
"""Most running jobs exported per scrape (newest first), to bound a scrape's cost."""
MAX_GPUS_PER_JOB = 16
"""Per-GPU series per job; the GPUs beyond share one series labelled ``gpu="rest"``."""
LABEL_BYTES = 128
"""Most UTF-8 bytes of a ``job_name`` or ``worker`` label (cut on a character, ending in ``…``)."""
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Histogram buckets (s) for a progress update: from a cached SQLite commit to a slow disk."""
_JOB_LABELS = ("job_id", "job_name", "worker")
_GPU_LABELS = (*_JOB_LABELS, "gpu", "uuid")


class JobCollector(Collector):
    """Yields the running jobs' gauges, read from ``services.store`` at each scrape.

    Per job (labels ``job_id``, ``job_name``, ``worker``): ``jobwatch_job_progress_percent``,
    ``jobwatch_job_time_remaining_seconds``, ``jobwatch_job_elapsed_seconds`` and
    ``jobwatch_job_cost`` (label ``currency``); unknown figures are left out, not 0.
    Per GPU of the job's latest sample (labels ``gpu``: the GPU's index, or ``all``
    for a sample without per-GPU values; ``uuid``: its UUID, a MIG slice's MIG
    UUID, or empty): the five ``jobwatch_gpu_*`` gauges, for the first
    :data:`MAX_GPUS_PER_JOB` GPUs and one ``gpu="rest"`` series for the others.
    No two GPUs share a label set (see :func:`_gpu_samples`). Per job, from the
    same sample, the gauges of the system metrics it carries
    (``jobwatch_cpu_utilization_percent``, ``jobwatch_memory_used_bytes``, ...:
    :data:`~jobwatch.contract.metrics.SYSTEM_METRICS`).
    Plus ``jobwatch_websocket_subscribers`` and ``jobwatch_websocket_queued_bytes``.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    def describe(self) -> Iterator[Metric]:
        """The gauges without values, read from nothing: what the registry asks at
        registration, when a server process starts (maybe while its database is away)."""
        return self._gauges(read=False)

    def collect(self) -> Iterator[Metric]:
        """The gauges as of now: one store read for the running jobs (at most
        :data:`MAX_JOBS`), then one per job, with the loop let go between jobs."""
        return self._gauges(read=True)

    def _gauges(self, *, read: bool) -> Iterator[Metric]:
        now = self.services.clock()
        progress = GaugeMetricFamily(
            "jobwatch_job_progress_percent", "Progress of a running job (%)", labels=_JOB_LABELS
        )
        remaining = GaugeMetricFamily(
            "jobwatch_job_time_remaining_seconds",
            "Estimated time until a running job finishes",
            labels=_JOB_LABELS,
        )
        elapsed = GaugeMetricFamily(
            "jobwatch_job_elapsed_seconds", "Time since a job started", labels=_JOB_LABELS
        )
        cost = GaugeMetricFamily(
            "jobwatch_job_cost",
            "Cost so far of a running job, in its currency",
            labels=(*_JOB_LABELS, "currency"),
        )
        gpu = {
            m.wire: GaugeMetricFamily(m.prometheus, m.label, labels=_GPU_LABELS)
            for m in GPU_METRICS
        }
        system = {
            m.wire: GaugeMetricFamily(m.prometheus, m.label, labels=_JOB_LABELS)
            for m in SYSTEM_METRICS
        }
        jobs: list[Any] = []
        scope = _scope() if read else None
        if scope is not None:
            tenant = None if scope.everything else scope.tenant
            with self.services.store.read() as conn:
                jobs, _ = queries.list_jobs(conn, "running", MAX_JOBS, 0, tenant=tenant)
        for place, job in enumerate(jobs):
            if place:
                let_others_run()
            with self.services.store.read() as conn:  # a read (and a decode) per job
                latest = queries.latest_sample(conn, job["id"])
            labels = [
                job["id"],
                bounded_text(job["name"] or "", LABEL_BYTES) or "",
                bounded_text(job["worker_id"] or "", LABEL_BYTES) or "",
            ]
            estimates = job_estimates(job, now)
            progress.add_metric(labels, job["progress"])
            _add(remaining, labels, estimates.time_remaining)
            _add(elapsed, labels, estimates.elapsed)
            _add(cost, [*labels, job["currency"]], estimates.cost_so_far)
            for gpu_labels, values in _gpu_samples(latest):
                for m in GPU_METRICS:
                    value = values.get(m.wire)
                    scaled = None if value is None else value * m.prometheus_factor
                    _add(gpu[m.wire], [*labels, *gpu_labels], scaled)
            for m in SYSTEM_METRICS:
                value = None if latest is None else latest[m.column]
                _add(system[m.wire], labels, None if value is None else value * m.prometheus_factor)
        yield from (progress, remaining, elapsed, cost, *gpu.values(), *system.values())
        if scope is None or scope.everything:  # the process's own figures are the operator's
            yield from self._sockets()

    def _sockets(self) -> Iterator[Metric]:
        sessions = list(self.services.sessions)
        yield GaugeMetricFamily(
            "jobwatch_websocket_subscribers",
            "Open WebSocket connections of this process",
            value=len(sessions),
        )
        yield GaugeMetricFamily(
            "jobwatch_websocket_queued_bytes",
            "Bytes queued unsent to this process's WebSocket subscribers",
            value=sum(s.queued_bytes() for s in sessions),
        )


def _scope() -> Scope:
    """The jobs the scrape's token may see (every job outside a request)."""
    if not has_request_context():
        return Scope(everything=True)
    return list_scope(current_principal())


def _add(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)


def _gpu_samples(sample: dict[str, Any] | None) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """((gpu, uuid) labels, wire fields) of each GPU in a stored sample; the flat
    figures as ``("all", "")`` when the sample has no per-GPU values.

    ``gpu`` is the index (the place in the list without one) and ``uuid`` the
    UUID or ``""``. Prometheus takes two samples with one label set in one scrape
    as one series and keeps only one of them, so a pair met again (GPUs that
    report one index and no UUID) gets ``#2``, ``#3``... after its ``gpu``.
    """
    if sample is None:
        return []
    if not sample.get("gpus"):
        flat = {m.wire: sample[m.column] for m in GPU_METRICS}
        return [(("all", ""), flat)]
    out: list[tuple[tuple[str, str], dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    # Only the first GPUs get series of their own, and an entry's identity depends
    # on the entries before it alone: the others are read only to be combined.
    shown = sample["gpus"][:MAX_GPUS_PER_JOB]
    for gpu_id, values in zip(gpu_ids(shown), shown, strict=True):
        base = str(gpu_id.number)
        pair, n = (base, gpu_id.uuid or ""), 1
        while pair in seen:
            n += 1
            pair = (f"{base}#{n}", pair[1])
        seen.add(pair)
        out.append((pair, values))
    rest = sample["gpus"][MAX_GPUS_PER_JOB:]
    if rest:
        combined = {}
        for m in GPU_METRICS:
            said = [v.get(m.wire) for v in rest]
            combined[m.wire] = combine(m, [value for value in said if value is not None])
        out.append((("rest", ""), combined))
    return out


class ServerMetrics:
    """This app's own registry: the job collector, request counts and ingest latency.

    ``jobwatch_http_requests_total`` (labels ``method``, ``endpoint``: the Flask
    endpoint name or ``unknown``, ``status``) and ``jobwatch_progress_ingest_seconds``
    (a histogram of the time from reading a progress request to its committed answer).
    """

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(JobCollector(services))
        self.requests = Counter(
            "jobwatch_http_requests",
            "HTTP requests answered, by endpoint and status",
            ("method", "endpoint", "status"),
            registry=self.registry,
        )
        self.ingest = Histogram(
            "jobwatch_progress_ingest_seconds",
            "Time to handle a progress update, until its answer (committed)",
            buckets=INGEST_BUCKETS,
            registry=self.registry,
        )

        self._done = threading.Condition()
        self._building: set[Scope] = set()
        self._generation: dict[Scope, int] = {}
        self._latest: dict[Scope, bytes] = {}

    def exposition(self, scope: Scope) -> bytes:
        """The registry in Prometheus' text format (version 0.0.4), as ``scope`` sees
        it (the build runs in the caller's request, whose token the collector reads).

        One build at a time per scope: a scrape that arrives while another of the
        same scope builds waits for the next build to finish and returns its text,
        so any number of concurrent scrapes cost at most two builds each, and a
        build is never handed to a scrape of another scope.
        """
        with self._done:
            wanted = self._generation.get(scope, 0) + 1  # a build that starts after this call
        while True:
            with self._done:
                mine = scope not in self._building
                if mine:
                    self._building.add(scope)
            if mine:
                try:
                    text = generate_latest(self.registry)
                finally:
                    with self._done:
                        self._building.discard(scope)
                with self._done:
                    self._generation[scope] = self._generation.get(scope, 0) + 1
                    self._latest[scope] = text
                    self._done.notify_all()
                return text
            with self._done:
                self._done.wait(1.0)
                if self._generation.get(scope, 0) > wanted:
                    return self._latest[scope]


def install(app: Flask) -> None:
    """Count ``app``'s requests and serve ``/api/prometheus`` (read access, like every GET)."""
    metrics = ServerMetrics(app.extensions["jobwatch"])
    app.extensions["jobwatch.prometheus"] = metrics
    app.before_request(_start_timer)
    app.after_request(_count)
    app.register_blueprint(bp)


def _start_timer() -> None:
    g.jobwatch_started = time.perf_counter()


def _count(response: Response) -> Response:
    metrics: ServerMetrics = current_app.extensions["jobwatch.prometheus"]
    endpoint = request.endpoint or "unknown"
    metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
    started = g.get("jobwatch_started")
    if endpoint == "api.progress" and started is not None:
        metrics.ingest.observe(time.perf_counter() - started)
    return response


@bp.get("/prometheus")
def prometheus() -> Response:
    """The text exposition of :class:`ServerMetrics`."""
    metrics: ServerMetrics = current_app.extensions["jobwatch.prometheus"]
    scope = _scope()  # a token that lists nothing is refused before the scrape
    text = metrics.exposition(scope)
    return Response(text, mimetype=None, content_type=CONTENT_TYPE)
