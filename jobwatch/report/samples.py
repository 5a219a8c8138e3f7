"""Metrics samples cleaned to the contract: a value the server would refuse becomes ``None``.

One bad value (NVML's unsigned sentinel 4294967295, a total memory of 0, NaN,
a string) must cost that value, not the sample and not the run. The rules are
the contract's own, read from :mod:`jobwatch.contract.requests`'s models rather than
copied: :class:`~jobwatch.contract.requests.GpuSample` for one GPU (ranges, types, used
memory at most the total) and :class:`~jobwatch.contract.requests.Metrics` for the flat
fields. Both :func:`jobwatch.report.gpu.sample` and the reporter's sender clean with
these functions. No I/O here.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pydantic

from jobwatch.contract.metrics import GPU_FIELDS, METRIC_FIELDS

__all__ = ["METRIC_FIELDS", "clean_flat", "clean_gpu", "clean_metrics", "prepare"]

_IDENTITY_FIELDS = ("index", "uuid", "name")


class _Rules(NamedTuple):
    gpu: type[pydantic.BaseModel]
    flat: type[pydantic.BaseModel]
    refused: type[pydantic.ValidationError]
    max_gpus: int


@functools.cache
def _rules() -> _Rules:
    """The contract's models; pydantic loads here, at the first use, not at import."""
    import pydantic

    from jobwatch.contract.requests import GpuSample, Metrics

    rules = Metrics.model_fields["gpus"].metadata
    max_gpus = next(rule.max_length for rule in rules if hasattr(rule, "max_length"))
    return _Rules(GpuSample, Metrics, pydantic.ValidationError, int(max_gpus))


def prepare() -> None:
    """Load what cleaning needs (pydantic and the contract's models) now, in the
    calling thread. A reporter calls it before its sender thread starts: that
    thread must import nothing, since a fork while it holds an import lock
    leaves the lock held in the child."""
    _rules()


def clean_gpu(gpu: Mapping[str, Any]) -> dict[str, Any]:
    """One GPU's sample with each field valid under the contract, else ``None``.

    Parameters
    ----------
    gpu:
        Any of ``index``, ``uuid``, ``name`` and the GPU metric fields
        (:data:`~jobwatch.contract.metrics.GPU_FIELDS`; units as on the wire:
        %, MB, MB, Celsius, W).

    Returns
    -------
    dict
        Those of these fields that ``gpu`` has; a value
        :class:`~jobwatch.contract.requests.GpuSample` refuses (out of range, not
        finite, of the wrong type, used memory above the total) is ``None``.
        Other keys are dropped. Numbers of other real types (e.g. numpy's) are
        converted to ``int``/``float`` first.
    """
    fields = (*_IDENTITY_FIELDS, *GPU_FIELDS)
    return _valid(_rules().gpu, {key: _plain(key, gpu[key]) for key in fields if key in gpu})


def clean_flat(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The flat metric fields of ``flat`` that it has, each valid under
    :class:`~jobwatch.contract.requests.Metrics`, else ``None``; other keys are dropped."""
    return _valid(
        _rules().flat, {key: _plain(key, flat[key]) for key in METRIC_FIELDS if key in flat}
    )


def clean_metrics(sample: object) -> dict[str, Any] | None:
    """A whole metrics object (as a ``gpu=`` callable returns it) cleaned for the wire.

    Parameters
    ----------
    sample:
        ``None``, or a mapping with any of the flat fields
        (:data:`~jobwatch.contract.metrics.METRIC_FIELDS`: GPU and system
        metrics) and an optional ``gpus`` list of per-GPU mappings.

    Returns
    -------
    dict or None
        ``None`` for ``None``. Otherwise the flat fields it has, cleaned as by
        :func:`clean_flat`, and ``gpus`` where it is a list or tuple: its mapping
        entries (at most the contract's 1024) cleaned as by :func:`clean_gpu`.
        A ``gpus`` of another type and entries that are not mappings are dropped.

    Raises
    ------
    ValueError
        ``sample`` is neither ``None`` nor a mapping.
    """
    if sample is None:
        return None
    if not isinstance(sample, Mapping):
        raise ValueError(f"a metrics sample must be a dict or None, got {type(sample).__name__}")
    cleaned = clean_flat(sample)
    gpus = sample.get("gpus")
    if isinstance(gpus, (list, tuple)):
        each = [clean_gpu(gpu) for gpu in gpus if isinstance(gpu, Mapping)]
        cleaned["gpus"] = each[: _rules().max_gpus]
    return cleaned


def _plain(key: str, value: Any) -> Any:
    """numpy and other real numbers as ``int``/``float``, which the contract's strict types take."""
    if isinstance(value, (bool, int, float)) or not isinstance(value, numbers.Real):
        return value
    if key == "index":
        return int(value) if isinstance(value, numbers.Integral) else value
    return float(value)


def _valid(model: type[pydantic.BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every field ``model`` refuses set to ``None``.

    Nulling a field can only make a rule that reads it (used memory at most the
    total) pass, so each round ends with fewer refusals; one more round checks.
    """
    refused_error = _rules().refused
    for _ in range(len(values) + 1):
        try:
            model.model_validate(values)
        except refused_error as exc:
            refused = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            if not refused.intersection(values):
                break
            values.update(dict.fromkeys(refused.intersection(values)))
        else:
            return values
    return dict.fromkeys(values)
