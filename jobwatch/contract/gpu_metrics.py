"""The GPU metrics, one table: adding a metric is one :class:`GpuMetric` in :data:`GPU_METRICS`.

Each entry says everything the rest of jobwatch needs to know about one
metric: its wire name (``gpuUtilization``), its Python attribute and SQL
column (``gpu_utilization``), its unit and valid range, how the values of
several GPUs combine into the flat field, where NVML and nvidia-smi read it,
and how Prometheus exports it. The contract's validation
(:mod:`jobwatch.contract.requests`), the sampler's cleaning (:mod:`jobwatch.report.samples`,
:mod:`jobwatch.report.gpu`), the SQL schema, the wire encoding, the store, the
Prometheus export, the ``--alert`` rules and the monitor's state all read
this table; ``tests/contract/test_gpu_metrics.py`` checks that they agree with it.

Pure data: no I/O and no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GPU_METRICS",
    "MAX_MEMORY_MB",
    "METRIC_FIELDS",
    "GpuMetric",
    "NvmlQuery",
    "combine",
    "metric",
]

MAX_MEMORY_MB = 10_000_000.0
"""Upper bound for GPU memory fields (about 9.5 TiB); rejects NVML's unsigned sentinels."""
MIB = 1024 * 1024
"""Bytes in the wire's MB (MiB, as nvidia-smi reports)."""

Aggregate = Literal["mean", "sum", "max"]
"""How the per-GPU values of a metric combine into the flat field (over the
GPUs that have a value)."""


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
class GpuMetric:
    """One GPU metric: a number, or ``None`` where a GPU cannot report it.

    Attributes
    ----------
    wire:
        Its name on the wire (camelCase, as the contract spells it).
    column:
        Its Python attribute and SQL column in ``samples`` (snake_case).
    unit:
        Unit on the wire: ``"%"``, ``"MB"`` (MiB), ``"°C"``, ``"W"``.
    minimum, maximum:
        Valid range, inclusive (``minimum`` exclusive where
        ``exclusive_minimum``); a value outside is refused with 400 by the
        server and dropped (``None``) by the sampler.
    aggregate:
        How several GPUs' values make the flat field: ``"mean"``, ``"sum"`` or
        ``"max"``.
    label:
        Words for a person (Prometheus ``# HELP``).
    prometheus:
        The gauge exported by ``/api/metrics`` (one per GPU), in base units.
    prometheus_factor:
        Multiplier from the wire unit to the gauge's base unit (MB to bytes).
    smi:
        The ``nvidia-smi --query-gpu`` field that reads it (with ``nounits``,
        in the wire unit).
    nvml:
        Where NVML reads it (:class:`NvmlQuery`).
    at_most:
        Wire name of a metric this one must not exceed in the same sample
        (used memory at most the total).
    alert:
        Whether an ``--alert`` rule may test it (a metric that never changes
        over a job is no use to one).
    """

    wire: str
    column: str
    unit: str
    minimum: float
    maximum: float
    aggregate: Aggregate
    label: str
    prometheus: str
    smi: str
    nvml: NvmlQuery
    prometheus_factor: float = 1.0
    exclusive_minimum: bool = False
    at_most: str | None = None
    alert: bool = True


GPU_METRICS: tuple[GpuMetric, ...] = (
    GpuMetric(
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
    GpuMetric(
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
    GpuMetric(
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
    GpuMetric(
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
    GpuMetric(
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
)
"""Every GPU metric, in wire order (the order of the flat fields in a sample)."""

METRIC_FIELDS: tuple[str, ...] = tuple(m.wire for m in GPU_METRICS)
"""The metrics' wire names, in wire order."""

_BY_WIRE = {m.wire: m for m in GPU_METRICS}


def metric(wire: str) -> GpuMetric:
    """The table entry of the metric named ``wire`` on the wire.

    Raises
    ------
    KeyError
        No metric has that name.
    """
    return _BY_WIRE[wire]


def combine(entry: GpuMetric, values: Sequence[float]) -> float | None:
    """``values`` (one per GPU that has one, in the metric's unit) combined as
    ``entry.aggregate`` says; ``None`` for no values."""
    if not values:
        return None
    if entry.aggregate == "mean":
        return sum(values) / len(values)
    if entry.aggregate == "max":
        return max(values)
    return sum(values)
