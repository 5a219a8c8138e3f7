"""The metrics of a sample, one table: adding a metric is one :class:`Metric` in :data:`METRICS`.

Each entry says everything the rest of jobwatch needs to know about one
metric: its wire name (``gpuUtilization``), its Python attribute and SQL
column (``gpu_utilization``), its unit and valid range, its scope, where the
worker reads it, and how Prometheus exports it. Two scopes:

- ``"gpu"``: a figure of one GPU, read through NVML (or nvidia-smi); a sample
  carries it per GPU (``gpus``) and as a flat field combining the GPUs
  (``aggregate``).
- ``"system"``: a figure of the worker's machine (CPU, memory, disk, network)
  or of the reporting process and its children, read with psutil; a sample
  carries it as a flat field only: it is per node, not per GPU.

The contract's validation (:mod:`jobwatch.contract.requests`), the sampler's
cleaning (:mod:`jobwatch.report.samples`, :mod:`jobwatch.report.gpu`,
:mod:`jobwatch.report.system`), the SQL schema and its roll-ups, the wire
encoding, the store, the Prometheus export, the ``--alert`` rules, the
monitor's state and the charts' lists all read this table;
``tests/contract/test_metrics_table.py`` checks that they agree with it.

Pure data: no I/O and no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GPU_FIELDS",
    "GPU_METRICS",
    "MAX_DISK_MB",
    "MAX_HOST_MEMORY_MB",
    "MAX_MEMORY_MB",
    "MAX_RATE",
    "METRICS",
    "METRIC_FIELDS",
    "SYSTEM_FIELDS",
    "SYSTEM_METRICS",
    "Metric",
    "NvmlQuery",
    "PsutilQuery",
    "combine",
    "metric",
    "wire_fields",
]

MAX_MEMORY_MB = 10_000_000.0
"""Upper bound for GPU memory fields (about 9.5 TiB); rejects NVML's unsigned sentinels."""
MAX_HOST_MEMORY_MB = 1_000_000_000.0
"""Upper bound for a machine's memory fields (about 954 TiB, some 20 times the
largest single machines sold); rejects unsigned sentinels (2**64 - 1 bytes is
about 1.8e13 MB)."""
MAX_DISK_MB = 1_000_000_000_000.0
"""Upper bound for a filesystem's size and use (about 0.9 EiB: a parallel
filesystem mounted on a training node can hold hundreds of PB)."""
MAX_RATE = 1_000_000_000_000.0
"""Upper bound for a disk or network rate in bytes per second (1 TB/s, about
eight 800 Gbit/s network links); a counter that wrapped or was reset gives
``None`` in the sampler, never a rate beyond this."""
MIB = 1024 * 1024
"""Bytes in the wire's MB (MiB, as nvidia-smi reports)."""

Aggregate = Literal["mean", "sum", "max"]
"""How the per-GPU values of a metric combine into the flat field (over the
GPUs that have a value)."""
Scope = Literal["gpu", "system"]
"""What a metric is a figure of: one GPU, or the worker's machine and process."""


@dataclass(frozen=True)
class NvmlQuery:
    """Where NVML reads a metric: ``nvml.<function>(handle, *args)``, then ``.<attribute>``.

    ``args`` are names of NVML constants (``"NVML_TEMPERATURE_GPU"``). The raw
    value is divided by ``divisor`` (to the wire unit) and rounded to
    ``digits`` decimals where these are given; otherwise it is kept as NVML
    returns it. Metrics that share a ``function`` and ``args`` share one call
    per device and sample.
    """

    function: str
    attribute: str | None = None
    args: tuple[str, ...] = ()
    divisor: float | None = None
    digits: int | None = None


@dataclass(frozen=True)
class PsutilQuery:
    """Where psutil reads a system metric: ``psutil.<function>(*args)``, then ``.<attribute>``.

    ``function`` is a psutil function (``"virtual_memory"``), or
    ``"process_tree.<method>"``: the :class:`psutil.Process` method called on
    the reporting process and on each of its children (recursively), the
    values summed. ``args`` are names of values the sampler supplies:
    ``"workdir"``, the reporter's working directory when it started;
    ``keywords`` are keyword arguments passed as they are. With
    ``rate`` the value is a counter that only grows (bytes read since boot):
    the sample carries its increase per second since the previous sample, and
    ``None`` in the first sample or after the counter went back. The value (or
    rate) is divided by ``divisor`` (to the wire unit) and rounded to
    ``digits`` decimals where these are given. Metrics that share a
    ``function``, ``args`` and ``keywords`` share one call per sample.
    """

    function: str
    attribute: str | None = None
    args: tuple[str, ...] = ()
    keywords: tuple[tuple[str, bool], ...] = ()
    rate: bool = False
    divisor: float | None = None
    digits: int | None = None


@dataclass(frozen=True)
class Metric:
    """One metric: a number, or ``None`` where a worker cannot read it.

    Attributes
    ----------
    wire:
        Its name on the wire (camelCase, as the contract spells it).
    column:
        Its Python attribute and SQL column in ``samples`` (snake_case).
    unit:
        Unit on the wire: ``"%"``, ``"MB"`` (MiB), ``"°C"``, ``"W"``, ``"B/s"``
        (bytes per second).
    minimum, maximum:
        Valid range, inclusive (``minimum`` exclusive where
        ``exclusive_minimum``); a value outside is refused with 400 by the
        server and dropped (``None``) by the sampler.
    label:
        Words for a person (Prometheus ``# HELP``, chart legends).
    prometheus:
        The gauge exported by ``/api/prometheus``, in base units: one per GPU
        for a GPU metric, one per job for a system metric.
    scope:
        ``"gpu"`` (per GPU, also in each ``gpus`` entry) or ``"system"``
        (the worker's node, a flat field only).
    prometheus_factor:
        Multiplier from the wire unit to the gauge's base unit (MB to bytes).
    aggregate:
        A GPU metric: how several GPUs' values make the flat field:
        ``"mean"``, ``"sum"`` or ``"max"``.
    smi:
        A GPU metric: the ``nvidia-smi --query-gpu`` field that reads it
        (with ``nounits``, in the wire unit).
    nvml:
        A GPU metric: where NVML reads it (:class:`NvmlQuery`).
    psutil:
        A system metric: where psutil reads it (:class:`PsutilQuery`).
    chart:
        A system metric: the chart that draws it (``"cpu"``, ``"memory"``,
        ``"io"``), with the other metrics of that name; ``None``: shown as
        text only. The metrics of one chart share a unit.
    at_most:
        Wire name of a metric this one must not exceed in the same sample
        (used memory at most the total).
    alert:
        Whether an ``--alert`` rule may test it (a metric that never changes
        over a job is no use to one).

    Raises
    ------
    ValueError
        At construction: a GPU metric without ``aggregate``, ``smi`` and
        ``nvml``, or a system metric without ``psutil`` or with any of them.
    """

    wire: str
    column: str
    unit: str
    minimum: float
    maximum: float
    label: str
    prometheus: str
    scope: Scope = "gpu"
    prometheus_factor: float = 1.0
    exclusive_minimum: bool = False
    aggregate: Aggregate | None = None
    smi: str | None = None
    nvml: NvmlQuery | None = None
    psutil: PsutilQuery | None = None
    chart: str | None = None
    at_most: str | None = None
    alert: bool = True

    def __post_init__(self) -> None:
        gpu_parts = (self.aggregate, self.smi, self.nvml)
        if self.scope == "gpu" and (None in gpu_parts or self.psutil or self.chart):
            raise ValueError(f"GPU metric {self.wire}: needs aggregate, smi and nvml, no psutil")
        if self.scope == "system" and (self.psutil is None or gpu_parts != (None, None, None)):
            raise ValueError(f"system metric {self.wire}: needs psutil, no aggregate, smi, nvml")


_NOWRAP = (("nowrap", False),)

METRICS: tuple[Metric, ...] = (
    Metric(
        wire="gpuUtilization",
        column="gpu_utilization",
        unit="%",
        minimum=0,
        maximum=100,
        aggregate="mean",
        label="GPU utilization (%)",
        prometheus="jobwatch_gpu_utilization_percent",
        smi="utilization.gpu",
        nvml=NvmlQuery("nvmlDeviceGetUtilizationRates", "gpu"),  # percent
    ),
    Metric(
        wire="gpuMemoryUsed",
        column="gpu_memory_used",
        unit="MB",
        minimum=0,
        maximum=MAX_MEMORY_MB,
        aggregate="sum",
        label="GPU memory in use",
        prometheus="jobwatch_gpu_memory_used_bytes",
        prometheus_factor=MIB,
        smi="memory.used",
        nvml=NvmlQuery("nvmlDeviceGetMemoryInfo", "used", divisor=MIB, digits=1),  # bytes
        at_most="gpuMemoryTotal",
    ),
    Metric(
        wire="gpuMemoryTotal",
        column="gpu_memory_total",
        unit="MB",
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_MEMORY_MB,
        aggregate="sum",
        label="GPU memory in all",
        prometheus="jobwatch_gpu_memory_total_bytes",
        prometheus_factor=MIB,
        smi="memory.total",
        nvml=NvmlQuery("nvmlDeviceGetMemoryInfo", "total", divisor=MIB, digits=1),  # bytes
        alert=False,
    ),
    Metric(
        wire="gpuTemperature",
        column="gpu_temperature",
        unit="°C",
        minimum=-40,
        maximum=150,
        aggregate="max",
        label="GPU temperature",
        prometheus="jobwatch_gpu_temperature_celsius",
        smi="temperature.gpu",
        nvml=NvmlQuery(
            "nvmlDeviceGetTemperature", args=("NVML_TEMPERATURE_GPU",)
        ),  # degrees Celsius
    ),
    Metric(
        wire="powerUsage",
        column="power_usage",
        unit="W",
        minimum=0,
        maximum=5000,
        aggregate="sum",
        label="GPU power draw",
        prometheus="jobwatch_gpu_power_watts",
        smi="power.draw",
        nvml=NvmlQuery("nvmlDeviceGetPowerUsage", divisor=1000),  # milliwatts
    ),
    Metric(
        wire="cpuUtilization",
        column="cpu_utilization",
        unit="%",
        minimum=0,
        maximum=100,
        scope="system",
        label="CPU utilization (%)",
        prometheus="jobwatch_cpu_utilization_percent",
        # all CPUs of the machine since the previous sample (psutil keeps the
        # previous reading per calling thread)
        psutil=PsutilQuery("cpu_percent", digits=1),
        chart="cpu",
    ),
    Metric(
        wire="memoryUsed",
        column="memory_used",
        unit="MB",
        minimum=0,
        maximum=MAX_HOST_MEMORY_MB,
        scope="system",
        label="memory in use",
        prometheus="jobwatch_memory_used_bytes",
        prometheus_factor=MIB,
        # total minus available, as free(1) counts it (bytes)
        psutil=PsutilQuery("virtual_memory", "used", divisor=MIB, digits=1),
        chart="memory",
        at_most="memoryTotal",
    ),
    Metric(
        wire="memoryTotal",
        column="memory_total",
        unit="MB",
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_HOST_MEMORY_MB,
        scope="system",
        label="memory in all",
        prometheus="jobwatch_memory_total_bytes",
        prometheus_factor=MIB,
        psutil=PsutilQuery("virtual_memory", "total", divisor=MIB, digits=1),  # bytes
        chart="memory",
        alert=False,
    ),
    Metric(
        wire="processMemory",
        column="process_memory",
        unit="MB",
        minimum=0,
        maximum=MAX_HOST_MEMORY_MB,
        scope="system",
        label="process memory (RSS)",
        prometheus="jobwatch_process_memory_bytes",
        prometheus_factor=MIB,
        # resident set of the reporting process and its children (DataLoader
        # workers) summed: pages they share count once per process (bytes)
        psutil=PsutilQuery("process_tree.memory_info", "rss", divisor=MIB, digits=1),
        chart="memory",
    ),
    Metric(
        wire="diskUsed",
        column="disk_used",
        unit="MB",
        minimum=0,
        maximum=MAX_DISK_MB,
        scope="system",
        label="disk in use",
        prometheus="jobwatch_disk_used_bytes",
        prometheus_factor=MIB,
        # the filesystem of the working directory (bytes)
        psutil=PsutilQuery("disk_usage", "used", ("workdir",), divisor=MIB, digits=1),
        at_most="diskTotal",
    ),
    Metric(
        wire="diskTotal",
        column="disk_total",
        unit="MB",
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_DISK_MB,
        scope="system",
        label="disk size",
        prometheus="jobwatch_disk_total_bytes",
        prometheus_factor=MIB,
        psutil=PsutilQuery("disk_usage", "total", ("workdir",), divisor=MIB, digits=1),
        alert=False,
    ),
    Metric(
        wire="diskRead",
        column="disk_read",
        unit="B/s",
        minimum=0,
        maximum=MAX_RATE,
        scope="system",
        label="disk read",
        prometheus="jobwatch_disk_read_bytes_per_second",
        # every disk of the machine (partitions not counted twice); a counter that
        # went back (a wrap, a reset) gives one None, so psutil's own wrap
        # bookkeeping (a cache shared by the process) is not needed
        psutil=PsutilQuery("disk_io_counters", "read_bytes", keywords=_NOWRAP, rate=True, digits=0),
        chart="io",
    ),
    Metric(
        wire="diskWrite",
        column="disk_write",
        unit="B/s",
        minimum=0,
        maximum=MAX_RATE,
        scope="system",
        label="disk write",
        prometheus="jobwatch_disk_write_bytes_per_second",
        psutil=PsutilQuery(
            "disk_io_counters", "write_bytes", keywords=_NOWRAP, rate=True, digits=0
        ),
        chart="io",
    ),
    Metric(
        wire="networkIn",
        column="network_in",
        unit="B/s",
        minimum=0,
        maximum=MAX_RATE,
        scope="system",
        label="network received",
        prometheus="jobwatch_network_receive_bytes_per_second",
        # every interface of the machine, loopback included
        psutil=PsutilQuery("net_io_counters", "bytes_recv", keywords=_NOWRAP, rate=True, digits=0),
        chart="io",
    ),
    Metric(
        wire="networkOut",
        column="network_out",
        unit="B/s",
        minimum=0,
        maximum=MAX_RATE,
        scope="system",
        label="network sent",
        prometheus="jobwatch_network_transmit_bytes_per_second",
        psutil=PsutilQuery("net_io_counters", "bytes_sent", keywords=_NOWRAP, rate=True, digits=0),
        chart="io",
    ),
)
"""Every metric, in wire order (the order of the flat fields in a sample): the
GPU metrics, then the system metrics."""

GPU_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.scope == "gpu")
"""The GPU metrics, in wire order: the fields of one GPU's sample."""
SYSTEM_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.scope == "system")
"""The system metrics, in wire order: flat fields only."""
METRIC_FIELDS: tuple[str, ...] = tuple(m.wire for m in METRICS)
"""Every metric's wire name, in wire order: a sample's flat fields."""
GPU_FIELDS: tuple[str, ...] = tuple(m.wire for m in GPU_METRICS)
"""The GPU metrics' wire names, in wire order."""
SYSTEM_FIELDS: tuple[str, ...] = tuple(m.wire for m in SYSTEM_METRICS)
"""The system metrics' wire names, in wire order."""

_BY_WIRE = {m.wire: m for m in METRICS}


def metric(wire: str) -> Metric:
    """The table entry of the metric named ``wire`` on the wire.

    Raises
    ------
    KeyError
        No metric has that name.
    """
    return _BY_WIRE[wire]


def combine(entry: Metric, values: Sequence[float]) -> float | None:
    """``values`` (one per GPU that has one, in the metric's unit) combined as
    ``entry.aggregate`` says; ``None`` for no values."""
    if not values:
        return None
    if entry.aggregate == "mean":
        return sum(values) / len(values)
    if entry.aggregate == "max":
        return max(values)
    return sum(values)


def wire_fields(values: Mapping[str, float | None]) -> dict[str, float | None]:
    """A sample's flat fields as the wire shows them, from ``values`` (wire name to
    value; a missing name counts as ``None``), in wire order.

    Every GPU metric is there (``None`` where missing), as the contract lists
    them; the system metrics only when the sample has at least one of them, so
    that a sample of a worker that sends none (the seed's, an older reporter)
    is as large as before.
    """
    out = {m.wire: values.get(m.wire) for m in GPU_METRICS}
    system = {m.wire: values.get(m.wire) for m in SYSTEM_METRICS}
    if any(value is not None for value in system.values()):
        out.update(system)
    return out
