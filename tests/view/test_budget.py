"""A job's budget as the viewers show it (``jobwatch.view.budget``): the server's rules
for over (cost so far at the budget) and projected over (the estimate above it)."""

from __future__ import annotations

import math

import pytest

from jobwatch.view.budget import (
    OVER,
    PROJECTED_OVER,
    WITHIN,
    budget_state,
    budget_words,
    projection_text,
)


@pytest.mark.parametrize(
    ("budget", "cost", "projected", "state"),
    [
        (None, 10.0, 90.0, None),
        (math.nan, 10.0, 90.0, None),
        (True, 10.0, 90.0, None),
        (50.0, 10.0, 40.0, WITHIN),
        (50.0, 10.0, 50.0, WITHIN),  # the server's alert: projected strictly above
        (50.0, 10.0, 50.01, PROJECTED_OVER),
        (50.0, 10.0, None, WITHIN),
        (50.0, 50.0, 60.0, OVER),  # the server's overBudget: spent at or above
        (50.0, None, 60.0, PROJECTED_OVER),
        (0.0, 0.0, None, OVER),
    ],
)
def test_the_state_follows_the_servers_rules(
    budget: object, cost: object, projected: object, state: str | None
) -> None:
    assert budget_state(budget, cost, projected) == state


def test_the_words_and_the_projection() -> None:
    assert budget_words(50.0, "QUBIC", WITHIN) == "budget 50.00 QUBIC"
    assert (
        budget_words(50.0, "QUBIC", PROJECTED_OVER) == "budget 50.00 QUBIC: projected over budget"
    )
    assert budget_words(50.0, "QUBIC", OVER) == "budget 50.00 QUBIC: over budget"
    assert budget_words(None, "QUBIC", None) == ""
    assert projection_text(61.2, 50.0, "QUBIC") == "est. 61.20 / budget 50.00 QUBIC"
    assert projection_text(61.2, None, "QUBIC") == "est. 61.20 QUBIC"
    assert projection_text(None, 50.0, "USD") == "budget 50.00 USD"
    assert projection_text(None, None, "USD") == "-"
