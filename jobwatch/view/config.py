"""A job's ``config`` (its hyperparameters) as the viewers show it: flat ``key: value``
rows, nested objects joined by dots (``optimizer.lr``), as W&B's run table and
MLflow's params show nested configs. No I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_SHOWN_VALUE", "config_rows", "flat_config", "format_value"]

MAX_SHOWN_VALUE = 200
"""Most characters of one value shown (longer ones end with ``…``)."""


def flat_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` with nested objects flattened: ``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``.

    Lists stay values. An empty nested object stays as ``{}`` under its key.
    ``None`` (a job without config) gives ``{}``.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            out[prefix] = value

    for key, value in (config or {}).items():
        walk(str(key), value)
    return out


def format_value(value: Any) -> str:
    """One config value as text: strings as they are, the rest as JSON (``true``,
    ``null``, ``[1, 2]``), cut to :data:`MAX_SHOWN_VALUE` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + "…"


def config_rows(config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(key, value text)`` for each flattened key, sorted by key."""
    return sorted((key, format_value(value)) for key, value in flat_config(config).items())
