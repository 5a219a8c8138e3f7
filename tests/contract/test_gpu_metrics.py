"""The GPU metrics table (jobwatch/contract/gpu_metrics.py) and everything that reads it agree;
adding a metric is one entry in the table."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from jobwatch.contract import gpu_metrics
from jobwatch.contract.gpu_metrics import GPU_METRICS, METRIC_FIELDS, combine, metric
from jobwatch.contract.requests import GpuSample, Metrics
from jobwatch.notebook import compare
from jobwatch.report import gpu
from jobwatch.report import samples as _samples
from jobwatch.server.core import alert_rules
from jobwatch.server.core import serialize as wire
from jobwatch.server.storage import schema
from jobwatch.server.web import answers, prometheus
from jobwatch.view import state
from tests.contract.helpers import run_with_table_entry


def test_names_are_unique_and_spelled_as_the_field_spells_them() -> None:
    assert len(set(METRIC_FIELDS)) == len(GPU_METRICS)
    assert len({m.column for m in GPU_METRICS}) == len(GPU_METRICS)
    for m in GPU_METRICS:
        assert m.wire[0].islower() and "_" not in m.wire
        assert m.column == "".join(f"_{c.lower()}" if c.isupper() else c for c in m.wire)
        assert m.prometheus.startswith("jobwatch_gpu_")
        assert m.minimum < m.maximum
        assert m.at_most is None or metric(m.at_most).unit == m.unit


def test_the_validation_models_have_the_tables_fields_and_ranges() -> None:
    for model in (Metrics, GpuSample):
        aliases = [f.alias for f in model.model_fields.values() if f.alias in METRIC_FIELDS]
        assert sorted(aliases) == sorted(METRIC_FIELDS)
        properties = model.model_json_schema()["properties"]
        for m in GPU_METRICS:
            number, null = properties[m.wire]["anyOf"]
            assert null == {"type": "null"}
            low = "exclusiveMinimum" if m.exclusive_minimum else "minimum"
            assert (number[low], number["maximum"]) == (m.minimum, m.maximum)
    assert tuple(Metrics.model_validate({}).flat()) == METRIC_FIELDS


@pytest.mark.parametrize("m", GPU_METRICS, ids=lambda m: m.wire)
def test_each_bound_is_refused_just_outside_and_cleaned_to_none(m: gpu_metrics.GpuMetric) -> None:
    above = m.maximum + 1
    below = m.minimum if m.exclusive_minimum else m.minimum - 1
    for bad in (above, below):
        with pytest.raises(ValueError, match=m.wire):
            Metrics.model_validate({m.wire: bad})
        assert _samples.clean_flat({m.wire: bad}) == {m.wire: None}
    assert _samples.clean_flat({m.wire: m.maximum}) == {m.wire: m.maximum}


def test_a_metric_bounded_by_another_is_checked_against_it() -> None:
    for m in GPU_METRICS:
        if m.at_most is None:
            continue
        with pytest.raises(ValueError, match=f"must not exceed {m.at_most}"):
            Metrics.model_validate({m.wire: 20, m.at_most: 10})
        assert _samples.clean_gpu({m.wire: 20, m.at_most: 10})[m.wire] is None


def test_gpus_combine_as_the_table_says() -> None:
    values = [10.0, 30.0, 20.0]
    expected = {"mean": 20.0, "sum": 60.0, "max": 30.0}
    for m in GPU_METRICS:
        assert combine(m, values) == expected[m.aggregate]
        assert combine(m, []) is None
    per_gpu = [dict.fromkeys(METRIC_FIELDS, v) for v in (10, 30, 20)]
    for bounded in GPU_METRICS:  # keep every bound pair valid: all equal within a GPU
        assert bounded.at_most is None or per_gpu[0][bounded.at_most] == per_gpu[0][bounded.wire]
    flat = Metrics.model_validate({"gpus": per_gpu}).flat()
    assert flat == {m.wire: combine(m, [10, 30, 20]) for m in GPU_METRICS}
    aggregated = gpu.aggregate(per_gpu)
    assert aggregated is not None
    assert {k: aggregated[k] for k in METRIC_FIELDS} == flat


def test_schema_store_and_wire_use_the_tables_columns() -> None:
    columns = [c.name for c in schema.samples.columns]
    assert columns == ["id", "job_id", "ts", *(m.column for m in GPU_METRICS), "gpus"]
    assert list(schema.SAMPLE_FIELDS) == list(METRIC_FIELDS)
    assert [c.name for c in schema.SAMPLE_FIELDS.values()] == [m.column for m in GPU_METRICS]
    row = {"ts": 0.0, **{m.column: float(i) for i, m in enumerate(GPU_METRICS)}, "gpus": None}
    assert wire.sample_to_wire(row) == {
        "timestamp": "1970-01-01T00:00:00.000Z",
        **{m.wire: float(i) for i, m in enumerate(GPU_METRICS)},
    }
    sample_aliases = [f.alias for f in answers.Sample.model_fields.values()]
    assert sample_aliases == [None, *METRIC_FIELDS, None]


def test_the_other_readers_take_their_lists_from_the_table() -> None:
    assert _samples.METRIC_FIELDS is METRIC_FIELDS
    assert state.METRIC_FIELDS is METRIC_FIELDS
    assert compare.GPU_METRICS is METRIC_FIELDS
    assert tuple(m.wire for m in GPU_METRICS if m.alert) == alert_rules.METRIC_NAMES
    assert gpu._SMI_QUERY.split(",") == ["index", "uuid", "name", *(m.smi for m in GPU_METRICS)]
    assert prometheus.GPU_METRICS is GPU_METRICS


def test_an_unknown_metric_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        metric("gpuFanSpeed")


NEW_METRIC = """
    GpuMetric(
        wire="gpuMemoryFree",
        column="gpu_memory_free",
        unit="MB",
        minimum=0,
        maximum=MAX_MEMORY_MB,
        aggregate="sum",
        label="GPU memory free",
        prometheus="jobwatch_gpu_memory_free_bytes",
        prometheus_factor=MIB,
        smi="memory.free",
        nvml=NvmlQuery("nvmlDeviceGetMemoryInfo", "free", divisor=MIB, digits=1),
    ),
"""

WITH_NEW_METRIC = textwrap.dedent(
    """
    import json, sys
    from jobwatch.report import gpu
    from jobwatch.view import state
    from jobwatch.server.core import alert_rules
    from jobwatch.server.web.app import create_app
    from tests.fake_nvml import GIB, FakeGpu, FakeNvml

    sys.modules["pynvml"] = FakeNvml(
        [FakeGpu("GPU-a", memory_used=1 * GIB), FakeGpu("GPU-b", memory_used=3 * GIB)]
    )
    sampled = gpu.sample()
    app = create_app({"DB": ":memory:"})
    client = app.test_client()
    client.put("/api/jobs/j", json={"name": "new metric", "workerId": "w"})
    bad = client.post(
        "/api/jobs/j/progress",
        json={"workerId": "w", "progress": 1, "metrics": {"gpuMemoryFree": -1}},
    )
    ok = client.post("/api/jobs/j/progress", json={"workerId": "w", "progress": 2, "metrics": sampled})
    latest = client.get("/api/jobs/j/metrics").get_json()["metrics"][-1]
    exported = client.get("/api/prometheus").get_data(as_text=True)
    print(json.dumps({
        "sampled": sampled["gpuMemoryFree"],
        "per_gpu": [g["gpuMemoryFree"] for g in sampled["gpus"]],
        "bad": [bad.status_code, bad.get_json()["error"]["details"][0]["field"]],
        "ok": ok.status_code,
        "stored": latest["gpuMemoryFree"],
        "state": state.Sample.from_wire(latest).flat["gpuMemoryFree"],
        "alert": alert_rules.parse_rule("gpuMemoryFree<1000 for 60s").metric,
        "exported": [line for line in exported.splitlines() if line.startswith("jobwatch_gpu_memory_free")],
    }))
    """
)


def test_adding_a_metric_is_one_entry_in_the_table(tmp_path: Path) -> None:
    got = run_with_table_entry(
        tmp_path, "contract/gpu_metrics.py", '\n)\n"""Every GPU metric', NEW_METRIC, WITH_NEW_METRIC
    )
    free_a, free_b = 79 * 1024.0, 77 * 1024.0  # MB: 80 GiB cards with 1 and 3 GiB in use
    assert got["per_gpu"] == [free_a, free_b]
    assert got["sampled"] == free_a + free_b
    assert got["bad"] == [400, "metrics.gpuMemoryFree"]
    assert got["ok"] == 200
    assert got["stored"] == got["state"] == free_a + free_b
    assert got["alert"] == "gpuMemoryFree"
    job, mib = 'job_id="j",job_name="new metric"', 1024 * 1024
    exported = dict(line.rsplit(" ", 1) for line in got["exported"])
    assert {key: float(value) for key, value in exported.items()} == {
        f'jobwatch_gpu_memory_free_bytes{{gpu="0",{job},uuid="GPU-a",worker="w"}}': free_a * mib,
        f'jobwatch_gpu_memory_free_bytes{{gpu="1",{job},uuid="GPU-b",worker="w"}}': free_b * mib,
    }
