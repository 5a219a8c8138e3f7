"""Which GPU a per-GPU sample is: its key (for series) and its label (for people).

A GPU is keyed by its ``uuid`` (a MIG slice by its MIG UUID), by its ``index``
only when it has no UUID, and by its place in the sample's list when it has
neither. The index is not an identity: a MIG GPU's slices all report their
parent's index, and two GPUs of one job on two hosts, or renumbered by
``CUDA_VISIBLE_DEVICES``, report the same one. Keyed by index they would merge
into one line, and in Prometheus into one series that keeps one value per
scrape and drops the others.

Labels read ``GPU 0`` while no other GPU shown has index 0. GPUs that share an
index get what tells them apart: the MIG profile of their name (NVML names a
slice ``"NVIDIA A100-SXM4-40GB MIG 1g.5gb"``), else or also the first 8 hex
digits of their UUID (the whole UUID where those are shared), else their place
among the GPUs sharing the index (``#1``, ``#2``). The job page's
``gpu_labels.js`` follows the same rules. No I/O here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuId", "gpu_ids", "gpu_labels", "gpu_order"]

_MIG_PROFILE = re.compile(r"\bMIG\s+(\d+g\.\d+gb)\b", re.IGNORECASE)
"""A MIG profile in an NVML device name, e.g. ``1g.5gb`` in ``"NVIDIA A100 MIG 1g.5gb"``."""
_SHORT_UUID = 8
"""Hex digits of a UUID shown in a label, as ``nvidia-smi -L`` users read them."""


@dataclass(frozen=True)
class GpuId:
    """One GPU of a sample: ``key`` (unique within the sample) and what the sample said.

    ``number`` is the index, or the GPU's place in the sample's list when it has no
    index: the number its label shows.
    """

    key: str
    number: int
    uuid: str | None
    name: str | None


def gpu_ids(gpus: Sequence[Mapping[str, Any]]) -> list[GpuId]:
    """The identity of each entry of a sample's ``gpus`` list, in its order.

    Parameters
    ----------
    gpus:
        Per-GPU wire objects; ``index`` (int), ``uuid`` and ``name`` (str) are read
        when they have those types, anything else counts as absent.

    Returns
    -------
    list of GpuId
        One per entry. The key is the UUID, else ``index:<index>``, else
        ``position:<place>``; a key met again in the same sample (a bad report)
        gets ``#2``, ``#3``... so that no two entries share one.
    """
    # A job's samples name the same GPUs again and again: identities are made once.
    said = tuple((gpu.get("index"), gpu.get("uuid"), gpu.get("name")) for gpu in gpus)
    try:
        return list(_identities(said))
    except TypeError:  # an unhashable value (a list for an index): not cached
        return list(_identities.__wrapped__(said))


@functools.lru_cache(maxsize=256)
def _identities(said: tuple[tuple[Any, Any, Any], ...]) -> tuple[GpuId, ...]:
    """:func:`gpu_ids` of the ``(index, uuid, name)`` of each entry."""
    ids: list[GpuId] = []
    seen: dict[str, int] = {}
    for position, (raw_index, raw_uuid, name) in enumerate(said):
        index = (
            raw_index if isinstance(raw_index, int) and not isinstance(raw_index, bool) else None
        )
        uuid = _text(raw_uuid)
        number = position if index is None else index
        key = uuid or (f"position:{position}" if index is None else f"index:{index}")
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key = f"{key}#{seen[key]}"
        ids.append(GpuId(key, number, uuid, _text(name)))
    return tuple(ids)


def gpu_order(gpu: GpuId) -> tuple[int, str]:
    """Sort key: by number (``GPU 2`` before ``GPU 10``), then by key."""
    return gpu.number, gpu.key


def gpu_labels(gpus: Iterable[GpuId]) -> dict[str, str]:
    """A label for each GPU shown together, by key; no two labels are the same.

    Parameters
    ----------
    gpus:
        The GPUs of the lines drawn together (one :class:`GpuId` per key; a later
        one with a key met before is ignored).

    Returns
    -------
    dict
        Key to label, in :func:`gpu_order`: ``GPU <number>``, with what tells GPUs
        apart in brackets when several share the number (see the module's text).
    """
    unique: dict[str, GpuId] = {}
    for gpu in gpus:
        unique.setdefault(gpu.key, gpu)
    return dict(_labels(tuple(unique.values())))


@functools.lru_cache(maxsize=256)
def _labels(gpus: tuple[GpuId, ...]) -> tuple[tuple[str, str], ...]:
    """:func:`gpu_labels` of GPUs of distinct keys, as pairs; a chart redraws with the
    same GPUs again and again."""
    ordered = sorted(gpus, key=gpu_order)
    groups: dict[int, list[GpuId]] = {}
    for gpu in ordered:
        groups.setdefault(gpu.number, []).append(gpu)
    labels: dict[str, str] = {}
    for number, group in groups.items():
        if len(group) == 1:
            labels[group[0].key] = f"GPU {number}"
            continue
        profiles = [_mig_profile(gpu.name) for gpu in group]
        profiles_differ = None not in profiles and len(set(profiles)) == len(profiles)
        shorts = [_short_uuid(gpu.uuid) for gpu in group]
        shorts_differ = len(set(shorts)) == len(shorts)
        for place, (gpu, profile, short) in enumerate(zip(group, profiles, shorts, strict=True)):
            parts = [f"MIG {profile}"] if profile else []
            if not profiles_differ:
                if gpu.uuid is None or short is None:
                    parts.append(f"#{place + 1}")
                else:
                    parts.append(short if shorts_differ else gpu.uuid)
            labels[gpu.key] = f"GPU {number} ({', '.join(parts)})"
    return tuple(_distinct(labels).items())


def _distinct(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` with a repeated label (e.g. two GPUs of one UUID) given `` #2``, `` #3``..."""
    seen: dict[str, int] = {}
    taken = set(labels.values())
    out: dict[str, str] = {}
    for key, label in labels.items():
        seen[label] = seen.get(label, 0) + 1
        shown = label
        if seen[label] > 1:
            n = seen[label]
            while f"{label} #{n}" in taken:
                n += 1
            shown = f"{label} #{n}"
            taken.add(shown)
        out[key] = shown
    return out


def _mig_profile(name: str | None) -> str | None:
    found = _MIG_PROFILE.search(name or "")
    return found.group(1) if found else None


def _short_uuid(uuid: str | None) -> str | None:
    """``GPU-1a2b3c4d`` of ``GPU-1a2b3c4d-...``: the prefix and the first 8 hex digits."""
    if uuid is None:
        return None
    prefix, dash, rest = uuid.partition("-")
    return f"{prefix}{dash}{rest[:_SHORT_UUID]}" if dash else uuid[:_SHORT_UUID]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
