"""Two rules of reading a request that pydantic does not know: negative zero is
zero, and a query parameter is given at most once.

Both are applied by :func:`jobwatch.contract.requests.parse_body` and
:func:`~jobwatch.contract.requests.parse_query`, the one door of every
request into the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["may_hold_negative_zero", "positive_zero", "query_pairs", "repeated_parameters"]

_NEGATIVE_ZERO_HINT = re.compile(rb"-0(?![0-9.]*[1-9])|[eE]-[0-9]{3}")
"""A JSON number that may be negative zero: ``-0``, ``-0.0``, ``-0e5``, or an
exponent of -100 or less (``-1e-400`` underflows to -0.0). Also found in some
other text (``-00:00`` in a time zone): it only asks for :func:`positive_zero`."""


def may_hold_negative_zero(body: bytes) -> bool:
    """Whether a JSON body may hold a number that parses to -0.0 (a cheap scan:
    most bodies hold none, and walking them is then not needed)."""
    return _NEGATIVE_ZERO_HINT.search(body) is not None


def positive_zero(value: Any) -> Any:
    """``value`` with every -0.0 in it made 0.0, in place for models, lists and
    dicts (a float is returned). JavaScript writes -0 as ``0``
    (``JSON.stringify(-0)``), so the server neither stores nor echoes it."""
    if isinstance(value, float):
        return 0.0 if value == 0.0 else value  # -0.0 == 0.0; 0.0 is the positive one
    if isinstance(value, BaseModel):
        fields = value.__dict__
        for name, item in fields.items():
            fields[name] = positive_zero(item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = positive_zero(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = positive_zero(item)
    return value


def query_pairs(args: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every ``(name, value)`` of a query string: from pairs, from a plain mapping,
    or from a multi-valued one such as Werkzeug's ``request.args`` (its every
    value, not only the first, which is all its ``items()`` gives)."""
    getlist = getattr(args, "getlist", None)
    if isinstance(args, Mapping) and getlist is not None:
        return [(name, value) for name in args for value in getlist(name)]
    if isinstance(args, Mapping):
        return list(args.items())
    return list(args)


def repeated_parameters(model: type[BaseModel], pairs: list[tuple[str, str]]) -> list[str]:
    """The parameters of ``model`` that ``pairs`` give more than once (by its name
    or its alias alike), by their name in the URL, in the order of the model's
    fields. Parameters the model does not have are not counted (cache busters)."""
    wire = {}
    for name, field in model.model_fields.items():
        wire[name] = field.alias or name
        if field.alias:
            wire[field.alias] = field.alias
    counts: dict[str, int] = {}
    for name, _ in pairs:
        if name in wire:
            counts[wire[name]] = counts.get(wire[name], 0) + 1
    order = [field.alias or name for name, field in model.model_fields.items()]
    return [name for name in order if counts.get(name, 0) > 1]
