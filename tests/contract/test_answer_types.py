"""The client's typed answers (``jobwatch.contract.answers``) and the server's
answer models (``jobwatch.server.web.answers``) name the same keys.

The server's models are checked against live answers by the OpenAPI tests, so
a key the server adds, drops or makes optional fails here until the typed dict
the client returns follows.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import jobwatch.contract.answers as typed
import jobwatch.server.web.answers as models
from jobwatch.contract.requests import GpuSample

PAIRS: list[tuple[Any, type[BaseModel]]] = [
    (typed.Job, models.Job),
    (typed.JobList, models.JobList),
    (typed.ProgressReply, models.ProgressAnswer),
    (typed.Health, models.Health),
    (typed.Ready, models.Ready),
    (typed.GpuReading, GpuSample),
    (typed.Sample, models.Sample),
    (typed.LogLine, models.LogLine),
    (typed.ScalarValue, models.ScalarValue),
    (typed.Alert, models.Alert),
    (typed.AlertsPage, models.AlertsAnswer),
    (typed.MonitorMetrics, models.MonitorMetrics),
    (typed.Monitor, models.MonitorAnswer),
    (typed.MetricsPage, models.MetricsAnswer),
    (typed.ScalarsPage, models.ScalarsAnswer),
    (typed.LogsPage, models.LogsAnswer),
    (typed.ScalarStep, models.ScalarStep),
    (typed.ProgressData, models.ProgressData),
    (typed.LogsData, models.LogsData),
    (typed.CompletedData, models.CompletedData),
    (typed.Receipt, models.ReceiptAnswer),
    (typed.CostReport, models.CostsAnswer),
    (typed.CostTotal, models.CostTotal),
    (typed.CostGroup, models.CostGroup),
    (typed.Unpriced, models.Unpriced),
    (typed.ReceiptMetric, models.ReceiptMetric),
    (typed.StalledData, models.StalledData),
    (typed.ResumedData, models.ResumedData),
    (typed.AlertData, models.AlertData),
    (typed.ProgressEvent, models.ProgressEvent),
    (typed.LogsEvent, models.LogsEvent),
    (typed.CompletedEvent, models.CompletedEvent),
    (typed.StalledEvent, models.StalledEvent),
    (typed.ResumedEvent, models.ResumedEvent),
    (typed.AlertEvent, models.AlertEvent),
    (typed.JobSummary, models.JobSummary),
    (typed.JobsChangedData, models.JobsChangedData),
    (typed.JobsChanged, models.JobsChanged),
]


def _wire_keys(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """The model's (required, optional) keys as on the wire."""
    required, optional = set(), set()
    for name, info in model.model_fields.items():
        (required if info.is_required() else optional).add(info.alias or name)
    return required, optional


@pytest.mark.parametrize(("answer", "model"), PAIRS, ids=lambda x: getattr(x, "__name__", x))
def test_typed_answer_has_the_model_keys(answer: Any, model: type[BaseModel]) -> None:
    required, optional = _wire_keys(model)
    assert set(answer.__required_keys__) == required
    assert set(answer.__optional_keys__) == optional


def test_every_typed_answer_is_compared() -> None:
    compared = {answer.__name__ for answer, _ in PAIRS}
    exported = {
        name for name in typed.__all__ if hasattr(getattr(typed, name), "__required_keys__")
    }
    assert exported == compared


def test_a_job_event_is_one_of_the_six_events() -> None:
    events = {typed.ProgressEvent, typed.LogsEvent, typed.CompletedEvent}
    events |= {typed.StalledEvent, typed.ResumedEvent, typed.AlertEvent}
    assert set(typed.JobEvent.__args__) == events
