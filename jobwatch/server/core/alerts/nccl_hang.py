"""The NCCL-hang signature, without I/O: a GPU that spins at full utilization while
drawing far less power than it does when it works.

A collective that one rank never joins leaves the other ranks' NCCL kernels
polling: ``nvidia-smi`` shows their GPUs 100 % utilized, yet they draw little
power, "GPU util is 100 % but the power consumption is pretty low (~70 W)"
(NVIDIA/nccl#968); soperator checks for exactly this, "constant 100 % GPU
consumption" and "very low" power "for N minutes" (nebius/soperator#796). The
optional rule (``jobwatch serve --nccl-hang-after SECONDS``; off unless given)
tells it on every sample:

- The job's *typical draw* is an EMA (weight
  :data:`~jobwatch.server.core.alerts.alert_rules.INTERVAL_SMOOTHING`, 0.3) of the
  flat ``powerUsage`` of its samples in which the GPU works (utilization at
  least :data:`WORKING_UTILIZATION`) and the signature does not hold. Idle
  spells (data loading, evaluation on the CPU, checkpoints) are left out, or
  they would pull it down to the idle draw and a hang right after one would go
  unseen; so are samples without a power reading.
- The signature holds on a sample with utilization at or above
  ``--nccl-hang-utilization`` (default :data:`DEFAULT_UTILIZATION` %) and
  power below ``--nccl-hang-power`` (default :data:`DEFAULT_POWER` %) of the
  typical draw, in an update that moves no progress and brings no call from
  the training code (either shows the job alive).
- Held since a sample at least ``--nccl-hang-after`` seconds ago, the job is
  hung (``hung: true``, from the first sample that showed it) with a warning
  alert, ``source`` ``hung``, title ``"job hung: NCCL-hang signature"``, that
  says the utilization, power, typical draw and what the hang has cost. The
  first sample of that reporter that no longer shows it clears the mark with
  ``"job moving again"`` (info), as a call from the training code does.
- Each rank of a distributed job (each reporter) has its own typical draw
  and clock, so a rank idling outside the collective never hides the ranks
  that spin inside it.

A job never seen working has no typical draw and is never judged: one that
hangs in its first collective is left to the call-based hang
(:mod:`jobwatch.server.core.alerts.hangs`). A phase whose kernels are memory-bound
may look the same; raise ``--nccl-hang-after`` or lower ``--nccl-hang-power``
for such jobs.

The state lives in the job's ``alert_state`` under :data:`STATE_KEY`; like
:mod:`jobwatch.server.core.alerts.hangs`, everything here is a function of the stored
row, the sample and ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobwatch.server.core.alerts import hangs
from jobwatch.server.core.alerts.alert_rules import INTERVAL_SMOOTHING, Alert
from jobwatch.server.core.job_row import JobChanges, JobRow

__all__ = [
    "DEFAULT_POWER",
    "DEFAULT_UTILIZATION",
    "STATE_KEY",
    "TITLE",
    "WORKING_UTILIZATION",
    "NcclHangRule",
    "check",
]

DEFAULT_UTILIZATION = 95.0
"""Percent: the least GPU utilization of the signature (``--nccl-hang-utilization``)."""
DEFAULT_POWER = 50.0
"""Percent of the job's typical draw below which the signature's power is
(``--nccl-hang-power``); NVIDIA/nccl#968 saw about 70 W on GPUs that draw
several hundred when they work."""
WORKING_UTILIZATION = 50.0
"""Percent: a sample at or above this utilization counts toward the typical draw."""
STATE_KEY = "#ncclHang"
"""The rule's entry in ``alert_state`` (no ``--alert`` rule's text starts with ``#``)."""
TITLE = "job hung: NCCL-hang signature"
"""The title of the rule's alert."""


@dataclass(frozen=True)
class NcclHangRule:
    """The signature's thresholds: ``after`` seconds (> 0) of utilization at or above
    ``utilization`` % (0 to 100) with power below ``power`` % (over 0, at most 100)
    of the typical draw.

    Raises
    ------
    ValueError
        A threshold out of its range; the message names the rule.
    """

    after: float
    utilization: float = DEFAULT_UTILIZATION
    power: float = DEFAULT_POWER

    def __post_init__(self) -> None:
        if not self.after > 0:
            raise ValueError(f"the NCCL-hang duration must be over 0 s, got {self.after!r}")
        if not 0 <= self.utilization <= 100:
            raise ValueError(
                f"the NCCL-hang utilization must be 0 to 100 %, got {self.utilization!r}"
            )
        if not 0 < self.power <= 100:
            raise ValueError(
                f"the NCCL-hang power must be over 0 and at most 100 %, got {self.power!r}"
            )


def check(
    rule: NcclHangRule,
    job: JobRow,
    state: Mapping[str, Any],
    sample: Mapping[str, Any],
    source: str,
    now: float,
    *,
    alive: bool,
) -> tuple[dict[str, Any], JobChanges, list[Alert]]:
    """Advance the signature on one sample of ``job``.

    Parameters
    ----------
    rule:
        The thresholds.
    job:
        The row as this update leaves it so far (its ``hung`` mark included).
    state:
        The job's ``alert_state`` (the other entries are kept as they are).
    sample:
        The flat sample by wire name (``gpuUtilization`` %, ``powerUsage`` W).
    source:
        Which reporter sent it: the rank of a distributed job, else ``""``.
    now:
        Server time (s since the epoch).
    alive:
        Whether this update moved progress or brought a new call from the training code.

    Returns
    -------
    (alert_state, row changes, alerts)
        The new state; ``hung``/``hung_at`` (and the hang's time and cost,
        :func:`~jobwatch.server.core.alerts.hangs.end_hang`) when the mark is set or
        cleared; the alert that says so, if any.
    """
    utilization, watts = sample.get("gpuUtilization"), sample.get("powerUsage")
    if utilization is None or watts is None:
        return dict(state), {}, []
    entry = dict(state.get(STATE_KEY) or {"typical": {}, "since": {}, "fired": None})
    typical: dict[str, float] = dict(entry["typical"])
    since: dict[str, float] = dict(entry["since"])
    fired: str | None = entry["fired"]
    usual = typical.get(source)
    holds = (
        not alive
        and usual is not None
        and utilization >= rule.utilization
        and watts < rule.power / 100.0 * usual
    )
    changes: JobChanges = {}
    alerts: list[Alert] = []
    if fired is not None and not job["hung"]:
        fired = None  # the training code spoke and ended the hang
    if not holds:
        since.pop(source, None)
        if utilization >= WORKING_UTILIZATION:
            typical[source] = (
                watts
                if usual is None
                else INTERVAL_SMOOTHING * watts + (1 - INTERVAL_SMOOTHING) * usual
            )
        if fired == source:
            alerts.append(hangs.moving_alert(job, now))
            changes.update(hangs.end_hang(job, now))
            fired = None
    else:
        began = since.setdefault(source, now)
        marked = _mark(rule, job, began, now, utilization, watts, usual)
        if marked is not None:
            changes, alert = marked
            alerts.append(alert)
            fired = source
    new_state = {**state, STATE_KEY: {"typical": typical, "since": since, "fired": fired}}
    return new_state, changes, alerts


def _mark(
    rule: NcclHangRule,
    job: JobRow,
    began: float,
    now: float,
    utilization: float,
    watts: float,
    usual: float | None,
) -> tuple[JobChanges, Alert] | None:
    """The mark and alert of a job whose signature has held long enough, or ``None``
    (not yet, already hung, stalled or not running)."""
    held = now - began
    if held < rule.after or job["hung"] or job["stalled"] or job["status"] != "running":
        return None
    alert = Alert(
        "warning",
        TITLE,
        f"GPU utilization {utilization:g} % at {watts:g} W for {hangs.duration_text(held)}, "
        f"the job's typical draw {usual or 0:.0f} W; {hangs.spent_text(job, held)} "
        f"(utilization >= {rule.utilization:g} % and power below {rule.power:g} % of the "
        f"typical draw for {rule.after:g} s: a collective may wait forever for a rank "
        "that never joined it)",
        "hung",
    )
    return {"hung": 1, "hung_at": began}, alert
