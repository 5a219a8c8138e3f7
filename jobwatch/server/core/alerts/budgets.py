"""Budgets, without I/O: alerts as a job's cost nears and passes what it may cost.

A job may carry a ``budget`` (in its currency). Each of these alerts
(``source`` ``budget``) is given once per budget, on the first progress update
that finds it holding (a job that reports GPU samples is checked every
reporter interval; the watchdog checks the rest):

- *projected*: the estimated total cost (``estimatedTotalCost``, the cost so
  far plus the time remaining at the current rate) first exceeds the budget,
  ``"projected 61.20 of 50.00 QUBIC at the current rate"`` (warning);
- *80 %*: the cost so far reaches :data:`WARN_SHARE` of it (warning);
- *spent*: the cost so far reaches the budget (error).

Setting another budget (``PUT``) gives them afresh.
"""

from __future__ import annotations

from jobwatch.server.core.alerts.alert_rules import Alert
from jobwatch.server.core.job_row import JobChanges, ListedJob

__all__ = ["PROJECTED", "SPENT", "WARNED", "WARN_SHARE", "budget_alerts", "budget_reply"]

WARN_SHARE = 0.8
"""Share of the budget spent at which the job is warned once."""
PROJECTED = 1
"""``budget_alerts`` bit: the projected total exceeded the budget."""
WARNED = 2
"""``budget_alerts`` bit: :data:`WARN_SHARE` of the budget was spent."""
SPENT = 4
"""``budget_alerts`` bit: the budget was spent."""


def budget_alerts(
    job: ListedJob, cost_so_far: float | None, estimated_total: float | None
) -> tuple[JobChanges, list[Alert]]:
    """The budget alerts ``job`` gets now, given its cost so far and estimated total
    (currency; ``None``: unknown), and the ``budget_alerts`` change that records
    them; nothing without a budget or when each was given already."""
    budget = job["budget"]
    if budget is None:
        return {}, []
    given = job["budget_alerts"]
    currency = job["currency"]
    alerts: list[Alert] = []
    bits = given
    of = f"of {budget:.2f} {currency}"
    if not bits & PROJECTED and estimated_total is not None and estimated_total > budget:
        bits |= PROJECTED
        alerts.append(
            Alert(
                "warning",
                "over budget at the current rate",
                f"projected {estimated_total:.2f} {of} at the current rate",
                "budget",
            )
        )
    spent = cost_so_far or 0.0
    if not bits & WARNED and cost_so_far is not None and spent >= WARN_SHARE * budget:
        bits |= WARNED
        alerts.append(
            Alert(
                "warning",
                f"{WARN_SHARE:.0%} of the budget spent",
                f"{spent:.2f} {of} spent",
                "budget",
            )
        )
    if not bits & SPENT and cost_so_far is not None and spent >= budget:
        bits |= SPENT
        alerts.append(Alert("error", "budget spent", f"{spent:.2f} {of} spent", "budget"))
    return ({"budget_alerts": bits} if bits != given else {}), alerts


def budget_reply(job: ListedJob, cost_so_far: float | None) -> dict[str, object]:
    """The reply's budget fields: ``budget`` (or ``None``) and ``overBudget`` (the
    cost so far has reached it)."""
    budget = job["budget"]
    over = budget is not None and cost_so_far is not None and cost_so_far >= budget
    return {"budget": budget, "overBudget": over}
