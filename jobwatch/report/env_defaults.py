"""The reporter's defaults from the environment: ``JOBWATCH_PRICE_PER_HOUR`` and
``JOBWATCH_CURRENCY``, read in this one place by :class:`~jobwatch.Reporter`,
:func:`jobwatch.track` and the framework callbacks, so a machine's price is
set once (in the image, the job script's environment) and never typed again.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from jobwatch.contract.basics import ascii_float

__all__ = ["currency_from_env", "price_from_env"]

PRICE_VARIABLE = "JOBWATCH_PRICE_PER_HOUR"
"""The machine's price per hour, a number from 0 to 1e9."""
CURRENCY_VARIABLE = "JOBWATCH_CURRENCY"
"""The price's currency code (default QUBIC, the server's default currency)."""


def price_from_env(env: Mapping[str, str] | None = None) -> float | None:
    """``$JOBWATCH_PRICE_PER_HOUR`` as a number, or ``None`` when unset or empty.

    Raises
    ------
    ValueError
        It is set but not a number from 0 to 1e9; the message names the variable.
    """
    text = (os.environ if env is None else env).get(PRICE_VARIABLE, "").strip()
    if not text:
        return None
    try:
        price = ascii_float(text)
    except ValueError:
        price = math.nan
    if not 0 <= price <= 1e9:  # NaN fails too
        raise ValueError(f"${PRICE_VARIABLE} must be a number from 0 to 1e9, got {text!r}")
    return price


def currency_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``$JOBWATCH_CURRENCY``, or ``None`` when unset or empty (checked by the Reporter
    as ``currency=`` is)."""
    text = (os.environ if env is None else env).get(CURRENCY_VARIABLE, "").strip()
    return text or None
