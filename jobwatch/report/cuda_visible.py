"""Which GPUs a CUDA process uses: ``CUDA_VISIBLE_DEVICES`` read the way CUDA reads it.

The rules are NVIDIA's, from the CUDA Programming Guide, "CUDA Environment
Variables" (https://docs.nvidia.com/cuda/cuda-programming-guide/05-appendices/environment-variables.html;
formerly https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#env-vars):

- unset: every GPU is visible; set but empty: none is;
- a comma-separated sequence of identifiers, enumerated in the order given;
- an integer index is the GPU's ordinal "as determined by nvidia-smi",
  which numbers GPUs in PCI bus order;
- "If an invalid index is encountered, only devices with indices that appear
  before the invalid index in the list are visible" (``0,2,-1,1`` is GPUs 0
  and 2); an identifier that names no GPU is invalid in the same way;
- a GPU UUID as ``nvidia-smi -L`` prints it (``GPU-8932f937-...``), or "enough
  digits from the beginning of the GPU UUID to uniquely identify that GPU";
- a MIG device as ``MIG-<UUID>`` (driver R470 and later) or
  ``MIG-<GPU-UUID>/<GPU instance ID>/<compute instance ID>`` (before R470).

``CUDA_DEVICE_ORDER``: ``PCI_BUS_ID`` "orders devices by PCI bus ID in
ascending order"; the default, ``FASTEST_FIRST``, enumerates them "in fastest
to slowest order using a simple heuristic" that NVIDIA does not specify. So
integer indices are read in PCI bus order, which is CUDA's order under
``PCI_BUS_ID`` and, GPUs of one model being equally fast, under
``FASTEST_FIRST`` too; with several models under ``FASTEST_FIRST`` CUDA's
numbering cannot be known, which :attr:`Visibility.order_unknown` says.

An index of a GPU in MIG mode, or its GPU UUID, selects all its MIG slices;
an identifier listed twice counts once. No I/O here: the caller passes the
variables' values and the devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Device", "Visibility", "visible"]


@dataclass(frozen=True)
class Device:
    """What the rules need to know of one device (a GPU, or a MIG slice of one).

    ``index`` is nvidia-smi's index of the physical GPU (a slice: its parent's);
    ``pci_bus`` the physical GPU's (domain, bus, device) or ``None`` where
    unknown; ``instance_ids`` a MIG slice's (GPU instance ID, compute instance ID).
    """

    index: int | None
    uuid: str | None
    name: str | None = None
    parent_uuid: str | None = None
    pci_bus: tuple[int, int, int] | None = None
    instance_ids: tuple[int, int] | None = None

    @property
    def gpu_uuid(self) -> str | None:
        """The UUID of the physical GPU this device is or is a slice of."""
        return self.parent_uuid if self.parent_uuid else self.uuid


@dataclass(frozen=True)
class Visibility:
    """The result of :func:`visible`.

    ``positions``: the visible devices as positions in the list given, in
    CUDA's enumeration order. ``order_unknown``: integer indices were read
    where CUDA may number the GPUs otherwise (see the module docstring); the
    names of the models are in ``models``.
    """

    positions: list[int]
    order_unknown: bool = False
    models: tuple[str, ...] = ()


def visible(devices: Sequence[Device], value: str | None, order: str | None) -> Visibility:
    """Apply ``CUDA_VISIBLE_DEVICES`` = ``value`` and ``CUDA_DEVICE_ORDER`` = ``order``.

    Parameters
    ----------
    devices:
        Every device of the machine, as NVML (or nvidia-smi) lists them.
    value, order:
        The variables' values, ``None`` where unset.

    Returns
    -------
    Visibility
        See :class:`Visibility`. Never raises: an identifier CUDA would refuse
        ends the list there, as in CUDA.
    """
    if value is None:
        return Visibility(list(range(len(devices))))
    gpus = _gpus_in_pci_order(devices)
    chosen: list[int] = []
    by_index = False
    for raw in value.split(","):
        entry = raw.strip().lower()
        match = _match(entry, devices, gpus)
        if match is None:
            break
        by_index = by_index or entry.isdigit()
        chosen += [position for position in match if position not in chosen]
    models = tuple(sorted({d.name for d in devices if d.name and not d.parent_uuid}))
    unknown = by_index and order != "PCI_BUS_ID" and len(models) > 1
    return Visibility(chosen, unknown, models)


def _gpus_in_pci_order(devices: Sequence[Device]) -> list[str | int | None]:
    """The physical GPUs (by UUID, else index) in PCI bus order, else in nvidia-smi's order."""
    firsts: dict[str | int | None, Device] = {}
    for device in devices:
        firsts.setdefault(_gpu_key(device), device)
    gpus = list(firsts.values())
    if all(gpu.pci_bus is not None for gpu in gpus):
        gpus.sort(key=lambda gpu: gpu.pci_bus or (0, 0, 0))
    else:
        gpus.sort(key=lambda gpu: -1 if gpu.index is None else gpu.index)
    return [_gpu_key(gpu) for gpu in gpus]


def _gpu_key(device: Device) -> str | int | None:
    return device.gpu_uuid.lower() if device.gpu_uuid else device.index


def _match(
    entry: str, devices: Sequence[Device], gpus: Sequence[str | int | None]
) -> list[int] | None:
    """The positions of the devices ``entry`` names, or ``None`` where it is invalid."""
    if entry.isascii() and entry.isdigit():
        if int(entry) >= len(gpus):
            return None
        key = gpus[int(entry)]
        return [i for i, d in enumerate(devices) if _gpu_key(d) == key]
    if entry.startswith("mig-gpu-") and entry.count("/") == 2:
        return _match_legacy_mig(entry, devices)
    if entry.startswith("gpu-"):
        keys = {_gpu_key(d) for d in devices if (d.gpu_uuid or "").lower().startswith(entry)}
        if len(keys) != 1:
            return None
        return [i for i, d in enumerate(devices) if _gpu_key(d) in keys]
    if entry.startswith("mig-"):
        named = [i for i, d in enumerate(devices) if (d.uuid or "").lower().startswith(entry)]
        return named if len(named) == 1 else None
    return None


def _match_legacy_mig(entry: str, devices: Sequence[Device]) -> list[int] | None:
    """``mig-gpu-<uuid>/<gpu instance>/<compute instance>``, the format before driver R470."""
    gpu_prefix, gpu_instance, compute_instance = entry[len("mig-") :].split("/")
    ids_text = gpu_instance + compute_instance
    if not (gpu_instance and compute_instance and ids_text.isascii() and ids_text.isdigit()):
        return None
    parents = {d.parent_uuid.lower() for d in devices if d.parent_uuid}
    named = [uuid for uuid in parents if uuid.startswith(gpu_prefix)]
    if len(named) != 1:
        return None
    ids = (int(gpu_instance), int(compute_instance))
    found = [
        i
        for i, d in enumerate(devices)
        if (d.parent_uuid or "").lower() == named[0] and d.instance_ids == ids
    ]
    return found or None
