"""A job's budget as every viewer shows it: the budget, the projected spend, and
whether either is over.

The rules are the server's (:mod:`jobwatch.server.core.alerts.budgets`): a job is
*projected over* while its estimated total cost (``estimatedTotalCost``, the
cost so far plus the time remaining at the current price) exceeds its
budget, and *over budget* once its cost so far reaches it. The notebook's
monitor and snapshot, ``jobwatch watch``, ``jobwatch top`` and the fleet text
use these functions; the fleet table widget and the server's pages use their
JavaScript twins in ``jobwatch/notebook/static/jobstable.js``
(``budgetState``, ``projectionText``; ``tests/view/test_fleet_rules.py``
checks the two agree). All text here is plain: callers escape it for HTML or
clean it for a terminal like any job text.
"""

from __future__ import annotations

import math

from jobwatch.view.formatting import DASH, format_cost
from jobwatch.view.state import MonitorState
from jobwatch.view.terminal_safe import clean

__all__ = [
    "BUDGET_COLOURS",
    "BUDGET_STYLES",
    "OVER",
    "PROJECTED_OVER",
    "WITHIN",
    "budget_state",
    "budget_suffix",
    "budget_words",
    "projection_text",
]

WITHIN = "within"
"""The cost so far is under the budget and the projected total is not above it."""
PROJECTED_OVER = "projected"
"""The projected total exceeds the budget (the server's "over budget at the current rate")."""
OVER = "spent"
"""The cost so far has reached the budget (the server's ``overBudget``)."""
BUDGET_COLOURS = {PROJECTED_OVER: "#b45309", OVER: "#b91c1c"}
"""HTML colour of each state that is over (amber, red: both 4.5:1 or more on white)."""
BUDGET_STYLES = {PROJECTED_OVER: "bold yellow", OVER: "bold red"}
"""Rich style of each state that is over, for terminals."""
_WORDS = {PROJECTED_OVER: "projected over budget", OVER: "over budget"}


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def budget_state(budget: object, cost: object, projected: object) -> str | None:
    """:data:`OVER`, :data:`PROJECTED_OVER` or :data:`WITHIN` for a job with a budget
    (all in its currency; unknown figures are ``None``), or ``None`` without one
    (or with a budget that is no finite number)."""
    limit = _finite(budget)
    if limit is None:
        return None
    spent, total = _finite(cost), _finite(projected)
    if spent is not None and spent >= limit:
        return OVER
    if total is not None and total > limit:
        return PROJECTED_OVER
    return WITHIN


def projection_text(projected: object, budget: object, currency: str) -> str:
    """``"est. 61.20 / budget 50.00 QUBIC"``: the projected spend and the budget,
    either left out when unknown (``"est. 61.20 QUBIC"``, ``"budget 50.00 QUBIC"``);
    a dash with neither."""
    total, limit = _finite(projected), _finite(budget)
    if total is None and limit is None:
        return DASH
    if limit is None:
        return f"est. {format_cost(total, currency)}"
    if total is None:
        return f"budget {format_cost(limit, currency)}"
    return f"est. {format_cost(total, '')} / budget {format_cost(limit, currency)}"


def budget_words(budget: object, currency: str, state: str | None) -> str:
    """``"budget 50.00 QUBIC"``, then ``": projected over budget"`` or ``": over
    budget"`` when so; ``""`` without a budget."""
    limit = _finite(budget)
    if limit is None or state is None:
        return ""
    words = _WORDS.get(state)
    return f"budget {format_cost(limit, currency)}" + (f": {words}" if words else "")


def budget_suffix(state: MonitorState) -> str:
    """``" · budget 50.00 QUBIC: over budget"`` for a monitored job with a budget (plain
    text, its currency cleaned for a terminal), ``""`` without one."""
    budget = state.job.get("budget")
    over = budget_state(budget, state.cost_so_far, state.estimated_total_cost)
    words = budget_words(budget, clean(state.currency, single_line=True), over)
    return f" · {words}" if words else ""
