"""GPU metrics for progress updates: NVML through nvidia-ml-py, nvidia-smi as a fallback.

:func:`sample` returns the contract's ``metrics`` object: the five flat fields
(``gpuUtilization`` %, ``gpuMemoryUsed`` and ``gpuMemoryTotal`` MB (MiB),
``gpuTemperature`` Celsius, ``powerUsage`` W) aggregated over the visible GPUs,
plus ``gpus``, one dict per GPU (or MIG slice) with the same fields and
``index``, ``uuid``, ``name``. A field NVML cannot read is ``None``.

Nothing happens at import: NVML is loaded and initialised on the first
:func:`sample`, once, under a lock, and its devices are enumerated then and
cached. A sample costs four NVML calls per device (about 0.1 ms each on real
hardware). nvidia-smi is run only where NVML cannot load; spawning it costs
10-600 ms a sample.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import io
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobwatch.contract.metrics import GPU_FIELDS, GPU_METRICS, NvmlQuery, combine
from jobwatch.report.cuda_visible import Device, visible
from jobwatch.report.samples import clean_flat, clean_gpu

__all__ = ["aggregate", "parse_nvidia_smi_csv", "reset", "sample"]

_log = logging.getLogger(__name__)

_SMI_QUERY = ",".join(("index", "uuid", "name", *(m.smi for m in GPU_METRICS if m.smi)))
_NVML_QUERIES = tuple((m.wire, m.nvml) for m in GPU_METRICS if m.nvml is not None)
"""(wire name, :class:`NvmlQuery`) of each GPU metric (every GPU metric has one)."""
_SMI_TIMEOUT_S = 5.0
_SMI_MISSING = frozenset({"", "N/A", "[N/A]", "[Not Supported]", "[Unknown Error]"})


@dataclass(frozen=True)
class _Device:
    """An NVML device (a GPU, or a MIG slice of one): its handle and what identifies it, read once."""

    handle: Any
    id: Device


@dataclass(frozen=True)
class _Backend:
    """What the first sample found: NVML and its devices, or the nvidia-smi path, or neither."""

    nvml: Any = None
    devices: tuple[_Device, ...] = ()
    smi: str | None = None


_lock = threading.Lock()
_backend: _Backend | None = None
_nvml_errors: tuple[type[BaseException], ...] = ()
_warned_order = False  # the CUDA_DEVICE_ORDER warning was given


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def sample() -> dict[str, Any] | None:
    """Read the visible GPUs once.

    Returns
    -------
    dict or None
        ``{"gpuUtilization", "gpuMemoryUsed", "gpuMemoryTotal", "gpuTemperature",
        "powerUsage", "gpus"}`` as built by :func:`aggregate`; ``None`` where there
        is no NVIDIA GPU (NVML cannot load and nvidia-smi is missing or fails, no
        devices, or ``CUDA_VISIBLE_DEVICES`` hides them all).

    Notes
    -----
    ``CUDA_VISIBLE_DEVICES`` (read on every call) limits the GPUs to those
    CUDA uses, listed in CUDA's order, by NVIDIA's rules (see
    :mod:`jobwatch.report.cuda_visible`): indices count GPUs in PCI bus order, as
    nvidia-smi does; ``GPU-``/``MIG-`` UUIDs or unique prefixes of them are
    honoured; the first entry that names no GPU hides itself and every later
    one (``0,-1,1`` is GPU 0 only); an empty value hides every GPU. Where
    indices are given, ``CUDA_DEVICE_ORDER`` is not ``PCI_BUS_ID`` and the
    GPUs are of several models, CUDA's numbering cannot be known: one warning
    (logger ``jobwatch.report.gpu``) says so and nvidia-smi's numbering is used. A GPU
    in MIG mode is reported as its MIG slices, each with the parent's index.
    Never raises: an unexpected error is logged at debug level and gives ``None``.
    """
    try:
        return aggregate(_read_gpus())
    except Exception:  # the training loop must never see a metrics failure
        _log.debug("GPU sample failed", exc_info=True)
        return None


def aggregate(gpus: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Build the contract's metrics object from per-GPU dicts.

    Parameters
    ----------
    gpus : list of dict
        Per-GPU samples with the five metric fields (a missing key counts as
        ``None``) and any of ``index``, ``uuid``, ``name``.

    Returns
    -------
    dict or None
        ``None`` for an empty list. Otherwise the flat fields, each over the GPUs
        that have a value (``None`` where none has): mean ``gpuUtilization`` (%),
        summed ``gpuMemoryUsed``, ``gpuMemoryTotal`` (MB) and ``powerUsage`` (W),
        hottest ``gpuTemperature`` (Celsius); and ``gpus``, the input cleaned by
        :func:`jobwatch.report.samples.clean_gpu`: a value the contract refuses (out
        of range, not finite, not a number, a used memory above the total) is
        ``None``, and keys other than ``index``, ``uuid``, ``name`` and the
        metrics are dropped. A total the contract refuses (e.g. summed power
        above 5000 W) is ``None`` too.
    """
    if not gpus:
        return None
    cleaned = [{**clean_gpu(gpu), **_missing(gpu)} for gpu in gpus]
    flat = {
        m.wire: combine(m, [gpu[m.wire] for gpu in cleaned if gpu[m.wire] is not None])
        for m in GPU_METRICS
    }
    return {**clean_flat(flat), "gpus": cleaned}


def _missing(gpu: dict[str, Any]) -> dict[str, None]:
    """The metric fields ``gpu`` lacks, as ``None``."""
    return {field: None for field in GPU_FIELDS if field not in gpu}


def parse_nvidia_smi_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=<_SMI_QUERY> --format=csv,noheader,nounits`` output.

    Parameters
    ----------
    text : str
        One row per GPU: index, uuid, name, utilization.gpu (%), memory.used (MiB),
        memory.total (MiB), temperature.gpu (Celsius), power.draw (W).

    Returns
    -------
    list of dict
        Per-GPU dicts with ``index``, ``uuid``, ``name`` and the five metric fields.
        ``[N/A]``, ``[Not Supported]``, ``[Unknown Error]``, ``N/A``, empty,
        unparsable, non-finite and out-of-range cells become ``None``; the rest of
        the row is kept. Rows with another number of columns than the query
        asks for (eight) are skipped. Never raises.
    """
    gpus = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if len(row) != 3 + len(GPU_FIELDS):
            continue
        index, uuid, name, *numbers = (_smi_cell(cell) for cell in row)
        position = _to_number(index)
        valid = isinstance(position, int) and position >= 0
        gpu: dict[str, Any] = {"index": position if valid else None}
        gpu.update(uuid=uuid, name=name)
        gpu.update(zip(GPU_FIELDS, map(_to_number, numbers), strict=True))
        gpus.append(clean_gpu(gpu))
    return gpus


def reset() -> None:
    """Forget the loaded backend so the next :func:`sample` initialises again (for tests).

    Shuts NVML down if it was initialised and drops the exit hook that would
    have; the ``CUDA_DEVICE_ORDER`` warning may be given again.
    """
    global _backend, _warned_order
    with _lock:
        backend, _backend = _backend, None
        _warned_order = False
    if backend is not None and backend.nvml is not None:
        atexit.unregister(_shutdown)
        _shutdown(backend.nvml)


def _read_gpus() -> list[dict[str, Any]]:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None and not value.strip():
        return []  # CUDA sees no GPU: do not even load NVML
    backend = _get_backend()
    if backend.nvml is not None:
        devices = backend.devices
        chosen = _visible([device.id for device in devices], value)
        return [_read_device(backend.nvml, devices[position]) for position in chosen]
    if backend.smi is not None:
        rows = parse_nvidia_smi_csv(_run_smi(backend.smi))
        ids = [Device(row["index"], row["uuid"], row["name"]) for row in rows]
        return [rows[position] for position in _visible(ids, value)]
    return []


def _visible(devices: list[Device], value: str | None) -> list[int]:
    """Positions of the devices CUDA uses, in its order; warns once where it cannot tell."""
    global _warned_order
    seen = visible(devices, value, os.environ.get("CUDA_DEVICE_ORDER"))
    if seen.order_unknown and not _warned_order:
        _warned_order = True
        _log.warning(
            "jobwatch: CUDA_VISIBLE_DEVICES=%s names GPUs by index, but this machine mixes "
            "GPU models (%s) and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA numbers them "
            "fastest first by a heuristic NVIDIA does not document; GPU metrics are those "
            "of nvidia-smi's GPUs %s. Set CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPUs by "
            "UUID (nvidia-smi -L) to report exactly the GPUs CUDA uses.",
            value,
            ", ".join(seen.models),
            value,
        )
    return seen.positions


def _get_backend() -> _Backend:
    global _backend
    backend = _backend
    if backend is None:
        with _lock:
            if _backend is None:
                _backend = _load()
            backend = _backend
    return backend


def _load() -> _Backend:
    global _nvml_errors
    try:
        import pynvml
    except ImportError:
        return _Backend(smi=shutil.which("nvidia-smi"))
    _nvml_errors = (pynvml.NVMLError,)
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # e.g. NVMLError_LibraryNotFound, DriverNotLoaded
        _log.debug("NVML unavailable (%s); falling back to nvidia-smi", exc)
        return _Backend(smi=shutil.which("nvidia-smi"))
    atexit.register(_shutdown, pynvml)
    return _Backend(nvml=pynvml, devices=tuple(_enumerate(pynvml)))


def _shutdown(nvml: Any) -> None:
    with contextlib.suppress(nvml.NVMLError):
        nvml.nvmlShutdown()


def _query(func: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """Call one NVML function; any NVMLError (NotSupported, NotFound, ...) gives ``default``."""
    try:
        return func(*args)
    except _nvml_errors:
        return default


def _enumerate(nvml: Any) -> list[_Device]:
    devices: list[_Device] = []
    for position in range(_query(nvml.nvmlDeviceGetCount, default=0)):
        handle = _query(nvml.nvmlDeviceGetHandleByIndex, position)
        if handle is None:
            continue
        index = _query(nvml.nvmlDeviceGetIndex, handle, default=position)
        uuid, name = _uuid_and_name(nvml, handle)
        gpu = _Device(handle, Device(index, uuid, name, pci_bus=_pci_bus(nvml, handle)))
        mig_mode = _query(nvml.nvmlDeviceGetMigMode, handle)  # [current, pending]
        enabled = mig_mode is not None and mig_mode[0] == nvml.NVML_DEVICE_MIG_ENABLE
        # A MIG GPU without instances keeps its own entry, so it never vanishes.
        slices = _mig_slices(nvml, gpu) if enabled else []
        devices.extend(slices or [gpu])
    return devices


def _mig_slices(nvml: Any, gpu: _Device) -> list[_Device]:
    slices = []
    for slot in range(_query(nvml.nvmlDeviceGetMaxMigDeviceCount, gpu.handle, default=0)):
        handle = _query(nvml.nvmlDeviceGetMigDeviceHandleByIndex, gpu.handle, slot)
        if handle is not None:  # an empty slot answers NotFound
            uuid, name = _uuid_and_name(nvml, handle)
            ids = (
                _query(nvml.nvmlDeviceGetGpuInstanceId, handle),
                _query(nvml.nvmlDeviceGetComputeInstanceId, handle),
            )
            parent = gpu.id
            slices.append(
                _Device(
                    handle,
                    Device(
                        parent.index,
                        uuid,
                        name or parent.name,
                        parent_uuid=parent.uuid,
                        pci_bus=parent.pci_bus,
                        instance_ids=None if None in ids else ids,
                    ),
                )
            )
    return slices


def _pci_bus(nvml: Any, handle: Any) -> tuple[int, int, int] | None:
    """The GPU's PCI (domain, bus, device), by which CUDA can order GPUs."""
    info = _query(nvml.nvmlDeviceGetPciInfo, handle)
    return None if info is None else (info.domain, info.bus, info.device)


def _uuid_and_name(nvml: Any, handle: Any) -> tuple[str | None, str | None]:
    uuid = _text(_query(nvml.nvmlDeviceGetUUID, handle))
    return uuid, _text(_query(nvml.nvmlDeviceGetName, handle))


def _read_device(nvml: Any, device: _Device) -> dict[str, Any]:
    """One device's sample: each metric read where its :class:`NvmlQuery` says,
    one NVML call per distinct query (four per device)."""
    answers: dict[tuple[str, tuple[str, ...]], Any] = {}
    gpu: dict[str, Any] = {"index": device.id.index, "uuid": device.id.uuid, "name": device.id.name}
    for wire, query in _NVML_QUERIES:
        key = (query.function, query.args)
        if key not in answers:
            constants = (getattr(nvml, name) for name in query.args)
            answers[key] = _query(getattr(nvml, query.function), device.handle, *constants)
        gpu[wire] = _nvml_value(query, answers[key])
    return clean_gpu(gpu)


def _nvml_value(query: NvmlQuery, answer: Any) -> Any:
    """The metric in its wire unit from what NVML answered (``None`` stays ``None``)."""
    if answer is None:
        return None
    value = answer if query.attribute is None else getattr(answer, query.attribute)
    if query.divisor is not None:
        value = value / query.divisor
    return value if query.digits is None else round(value, query.digits)


def _run_smi(path: str) -> str:
    command = [path, f"--query-gpu={_SMI_QUERY}", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        _log.debug("nvidia-smi failed: %s", exc)
        return ""
    return done.stdout if done.returncode == 0 else ""


def _smi_cell(cell: str) -> str | None:
    cell = cell.strip()
    return None if cell in _SMI_MISSING or cell.startswith("[") else cell


def _to_number(cell: str | None) -> float | None:
    try:
        number = float(cell or "")
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _text(value: Any) -> str | None:
    """NVML strings: ``str`` from nvidia-ml-py >= 11.515, ``bytes`` from older ones."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
