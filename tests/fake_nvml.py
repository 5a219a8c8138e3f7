"""A stand-in for nvidia-ml-py's ``pynvml`` module, for tests on machines without a GPU.

It has the names, argument orders and return shapes of the real module for the
calls ``jobwatch.report.gpu`` makes (checked against nvidia-ml-py 13.x): memory info
has ``total``/``free``/``used`` in bytes, utilization ``gpu``/``memory`` in
percent, power is in milliwatts, MIG mode is ``[current, pending]``, and every
failure is an ``NVMLError`` subclass. Handles are the :class:`FakeGpu` objects.

Install one with ``monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([...]))``.
"""

# pynvml's own names (camelCase functions, NVMLError_* classes) are the point of this file.
# ruff: noqa: N801, N802, N815

from __future__ import annotations

import threading
import time
import types
from collections import Counter
from dataclasses import dataclass, field

GIB = 1024**3

NVML_TEMPERATURE_GPU = 0
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_UNKNOWN = 999


class NVMLError(Exception):
    """Root of NVML's errors; ``value`` is the NVML return code, as in pynvml."""

    value = NVML_ERROR_UNKNOWN

    def __init__(self, value: int | None = None) -> None:
        if value is not None:
            self.value = value
        super().__init__(self.value)


class NVMLError_Uninitialized(NVMLError):
    value = NVML_ERROR_UNINITIALIZED


class NVMLError_InvalidArgument(NVMLError):
    value = NVML_ERROR_INVALID_ARGUMENT


class NVMLError_NotSupported(NVMLError):
    value = NVML_ERROR_NOT_SUPPORTED


class NVMLError_NotFound(NVMLError):
    value = NVML_ERROR_NOT_FOUND


class NVMLError_LibraryNotFound(NVMLError):
    value = NVML_ERROR_LIBRARY_NOT_FOUND


class c_nvmlMemory_t:
    """Like pynvml's ctypes structure: bytes."""

    def __init__(self, total: int, free: int, used: int) -> None:
        self.total, self.free, self.used = total, free, used


class nvmlPciInfo_t:
    """Like pynvml's ctypes structure: ``busId`` is ``bytes`` such as ``b"00000000:07:00.0"``."""

    def __init__(self, domain: int, bus: int, device: int) -> None:
        self.domain, self.bus, self.device = domain, bus, device
        self.busId = f"{domain:08X}:{bus:02X}:{device:02X}.0".encode()


class c_nvmlUtilization_t:
    """Like pynvml's ctypes structure: percent over the last sample period."""

    def __init__(self, gpu: int, memory: int) -> None:
        self.gpu, self.memory = gpu, memory


@dataclass(eq=False)
class FakeGpu:
    """One device (or MIG slice). ``errors`` maps a pynvml function name to the error it raises."""

    uuid: str | bytes
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    utilization: int = 0  # percent
    memory_used: int = 0  # bytes
    memory_total: int = 80 * GIB  # bytes
    temperature: int = 40  # Celsius
    power: int = 100_000  # milliwatts
    mig_mode: list[int] | None = None  # [current, pending]; None: MIG not supported
    mig: list[FakeGpu | None] = field(default_factory=list)  # slots; None is an empty slot
    errors: dict[str, BaseException] = field(default_factory=dict)
    pci_bus: tuple[int, int, int] | None = None  # (domain, bus, device); None: NotSupported
    instance_ids: tuple[int, int] | None = None  # a MIG slice's (GPU instance, compute instance)


def mig_slice(
    uuid: str,
    name: str,
    used_gib: float,
    total_gib: float,
    instance_ids: tuple[int, int] | None = None,
) -> FakeGpu:
    """A MIG slice as NVML shows one: memory works, utilization/temperature/power do not."""
    return FakeGpu(
        uuid=uuid,
        name=name,
        memory_used=int(used_gib * GIB),
        memory_total=int(total_gib * GIB),
        instance_ids=instance_ids,
        errors={
            function: NVMLError_NotSupported()
            for function in (
                "nvmlDeviceGetUtilizationRates",
                "nvmlDeviceGetTemperature",
                "nvmlDeviceGetPowerUsage",
            )
        },
    )


class FakeNvml(types.ModuleType):
    """The fake ``pynvml`` module over a list of :class:`FakeGpu`.

    ``calls`` counts every call by function name. ``init_error`` is raised by
    ``nvmlInit``; ``init_delay`` (seconds) widens the window for races.
    """

    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE
    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_InvalidArgument = NVMLError_InvalidArgument
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    c_nvmlMemory_t = c_nvmlMemory_t
    c_nvmlUtilization_t = c_nvmlUtilization_t
    nvmlPciInfo_t = nvmlPciInfo_t

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        init_error: BaseException | None = None,
        init_delay: float = 0.0,
    ) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.init_delay = init_delay
        self.calls: Counter[str] = Counter()
        self.refcount = 0
        self._lock = threading.Lock()

    def _enter(self, function: str, handle: FakeGpu | None = None) -> None:
        with self._lock:
            self.calls[function] += 1
            if self.refcount == 0:
                raise NVMLError_Uninitialized()
        if handle is not None and function in handle.errors:
            raise handle.errors[function]

    def nvmlInit(self) -> None:
        with self._lock:
            self.calls["nvmlInit"] += 1
        time.sleep(self.init_delay)
        if self.init_error is not None:
            raise self.init_error
        with self._lock:
            self.refcount += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        with self._lock:
            self.refcount -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        return self.gpus[index]

    def nvmlDeviceGetIndex(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetIndex", handle)
        if handle not in self.gpus:
            raise NVMLError_InvalidArgument()  # a MIG handle has no index of its own
        return self.gpus.index(handle)

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str | bytes:
        self._enter("nvmlDeviceGetUUID", handle)
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str | bytes:
        self._enter("nvmlDeviceGetName", handle)
        return handle.name

    def nvmlDeviceGetMemoryInfo(
        self, handle: FakeGpu, version: int | None = None
    ) -> c_nvmlMemory_t:
        self._enter("nvmlDeviceGetMemoryInfo", handle)
        free = max(handle.memory_total - handle.memory_used, 0)
        return c_nvmlMemory_t(total=handle.memory_total, free=free, used=handle.memory_used)

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> c_nvmlUtilization_t:
        self._enter("nvmlDeviceGetUtilizationRates", handle)
        return c_nvmlUtilization_t(gpu=handle.utilization, memory=0)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError_InvalidArgument()
        return handle.temperature

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetPowerUsage", handle)
        return handle.power

    def nvmlDeviceGetPciInfo(self, handle: FakeGpu) -> nvmlPciInfo_t:
        self._enter("nvmlDeviceGetPciInfo", handle)
        if handle.pci_bus is None:
            raise NVMLError_NotSupported()
        return nvmlPciInfo_t(*handle.pci_bus)

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", handle)
        if handle.instance_ids is None:
            raise NVMLError_InvalidArgument()  # not a MIG device
        return handle.instance_ids[0]

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetComputeInstanceId", handle)
        if handle.instance_ids is None:
            raise NVMLError_InvalidArgument()
        return handle.instance_ids[1]

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", handle)
        if handle.mig_mode is None:
            raise NVMLError_NotSupported()
        return list(handle.mig_mode)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)
        if handle.mig_mode is None:
            raise NVMLError_NotSupported()
        return len(handle.mig)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeGpu:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if not 0 <= index < len(handle.mig):
            raise NVMLError_InvalidArgument()
        slot = handle.mig[index]
        if slot is None:
            raise NVMLError_NotFound()
        return slot
