"""The metrics table (jobwatch/contract/metrics.py) and everything that reads it agree;
adding a metric, GPU or system, is one entry in the table."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from jobwatch.contract import metrics as table
from jobwatch.contract.metrics import (
    GPU_FIELDS,
    GPU_METRICS,
    METRIC_FIELDS,
    METRICS,
    SYSTEM_FIELDS,
    SYSTEM_METRICS,
    Metric,
    NvmlQuery,
    PsutilQuery,
    combine,
    metric,
    wire_fields,
)
from jobwatch.contract.requests import GpuSample, Metrics
from jobwatch.notebook import compare
from jobwatch.report import gpu, system
from jobwatch.report import samples as _samples
from jobwatch.server.core import serialize as wire
from jobwatch.server.core.alerts import alert_rules
from jobwatch.server.storage import schema
from jobwatch.server.web import answers, prometheus
from jobwatch.server.web.pages import STATIC, job_fields_module, metrics_module
from jobwatch.view import state
from tests.contract.helpers import run_with_table_entry
from tests.notebook.test_logview import node_or_skip


def test_names_are_unique_and_spelled_as_the_field_spells_them() -> None:
    assert len(set(METRIC_FIELDS)) == len(METRICS)
    assert len({m.column for m in METRICS}) == len(METRICS)
    assert len({m.prometheus for m in METRICS}) == len(METRICS)
    for m in METRICS:
        assert m.wire[0].islower() and "_" not in m.wire
        assert m.column == "".join(f"_{c.lower()}" if c.isupper() else c for c in m.wire)
        assert m.prometheus.startswith("jobwatch_gpu_" if m.scope == "gpu" else "jobwatch_")
        assert m.minimum < m.maximum
        assert m.at_most is None or metric(m.at_most).unit == m.unit
    assert METRICS == GPU_METRICS + SYSTEM_METRICS  # GPU fields first, as the seed lists them
    assert METRIC_FIELDS[: len(GPU_METRICS)] == GPU_FIELDS
    assert METRIC_FIELDS[len(GPU_METRICS) :] == SYSTEM_FIELDS


def test_a_metric_says_where_its_scope_reads_it() -> None:
    for m in GPU_METRICS:
        assert m.aggregate and m.smi and m.nvml and m.psutil is None and m.chart is None
    for m in SYSTEM_METRICS:
        assert m.psutil is not None and (m.aggregate, m.smi, m.nvml) == (None, None, None)
    with pytest.raises(ValueError, match="GPU metric gpuX"):
        Metric("gpuX", "gpu_x", "%", 0, 100, "x", "jobwatch_gpu_x", psutil=PsutilQuery("f"))
    with pytest.raises(ValueError, match="system metric x"):
        Metric("x", "x", "%", 0, 100, "x", "jobwatch_x", scope="system", nvml=NvmlQuery("f"))
    with pytest.raises(ValueError, match="system metric x"):
        Metric("x", "x", "%", 0, 100, "x", "jobwatch_x", scope="system")


def test_the_metrics_of_one_chart_share_a_unit() -> None:
    units: dict[str, set[str]] = {}
    for m in SYSTEM_METRICS:
        if m.chart is not None:
            units.setdefault(m.chart, set()).add(m.unit)
    assert set(units) == {"cpu", "memory", "io"}
    assert all(len(unit) == 1 for unit in units.values()), units


def test_the_validation_models_have_the_tables_fields_and_ranges() -> None:
    for model, entries in ((Metrics, METRICS), (GpuSample, GPU_METRICS)):
        names = {m.wire for m in entries}
        aliases = [f.alias for f in model.model_fields.values() if f.alias in METRIC_FIELDS]
        assert sorted(aliases) == sorted(names)
        properties = model.model_json_schema()["properties"]
        for m in entries:
            number, null = properties[m.wire]["anyOf"]
            assert null == {"type": "null"}
            low = "exclusiveMinimum" if m.exclusive_minimum else "minimum"
            assert (number[low], number["maximum"]) == (m.minimum, m.maximum)
    assert tuple(Metrics.model_validate({}).flat()) == METRIC_FIELDS


@pytest.mark.parametrize("m", METRICS, ids=lambda m: m.wire)
def test_each_bound_is_refused_just_outside_and_cleaned_to_none(m: table.Metric) -> None:
    above = m.maximum + 1
    below = m.minimum if m.exclusive_minimum else m.minimum - 1
    for bad in (above, below):
        with pytest.raises(ValueError, match=m.wire):
            Metrics.model_validate({m.wire: bad})
        assert _samples.clean_flat({m.wire: bad}) == {m.wire: None}
    assert _samples.clean_flat({m.wire: m.maximum}) == {m.wire: m.maximum}


def test_a_metric_bounded_by_another_is_checked_against_it() -> None:
    bounded = [m for m in METRICS if m.at_most is not None]
    assert {m.wire for m in bounded} == {"gpuMemoryUsed", "memoryUsed", "diskUsed"}
    for m in bounded:
        with pytest.raises(ValueError, match=f"must not exceed {m.at_most}"):
            Metrics.model_validate({m.wire: 20, m.at_most: 10})
        assert _samples.clean_flat({m.wire: 20, m.at_most: 10})[m.wire] is None
        if m.scope == "gpu":
            assert _samples.clean_gpu({m.wire: 20, m.at_most: 10})[m.wire] is None


def test_a_gpu_entry_takes_no_system_metric() -> None:
    """System metrics are the node's: a per-GPU entry drops them (they are not its fields)."""
    assert "cpuUtilization" not in _samples.clean_gpu({"cpuUtilization": 50, "gpuUtilization": 5})
    assert "cpuUtilization" not in GpuSample.model_fields
    flat = Metrics.model_validate({"gpus": [{"gpuUtilization": 5}], "cpuUtilization": 50}).flat()
    assert (flat["gpuUtilization"], flat["cpuUtilization"]) == (5, 50)


def test_the_wire_shows_system_fields_only_in_a_sample_that_has_them() -> None:
    gpu_only = wire_fields({"gpuUtilization": 5})
    assert list(gpu_only) == list(GPU_FIELDS)
    both = wire_fields({"cpuUtilization": 0.0})
    assert list(both) == list(METRIC_FIELDS)
    assert both["cpuUtilization"] == 0.0 and both["memoryUsed"] is None
    for values in ({"gpuUtilization": 5.0}, {"cpuUtilization": 0.0}, {}):  # the store's fast path
        row = {"ts": 0.0, "gpus": None, **{m.column: values.get(m.wire) for m in METRICS}}
        assert wire.sample_to_wire(row) == {
            "timestamp": "1970-01-01T00:00:00.000Z",
            **wire_fields(values),
        }


def test_gpus_combine_as_the_table_says() -> None:
    values = [10.0, 30.0, 20.0]
    expected = {"mean": 20.0, "sum": 60.0, "max": 30.0}
    for m in GPU_METRICS:
        assert combine(m, values) == expected[m.aggregate]
        assert combine(m, []) is None
    per_gpu = [dict.fromkeys(GPU_FIELDS, v) for v in (10, 30, 20)]
    for bounded in GPU_METRICS:  # keep every bound pair valid: all equal within a GPU
        assert bounded.at_most is None or per_gpu[0][bounded.at_most] == per_gpu[0][bounded.wire]
    flat = Metrics.model_validate({"gpus": per_gpu}).flat()
    assert flat == {
        **{m.wire: combine(m, [10, 30, 20]) for m in GPU_METRICS},
        **dict.fromkeys(SYSTEM_FIELDS),
    }
    aggregated = gpu.aggregate(per_gpu)
    assert aggregated is not None
    assert {k: aggregated[k] for k in GPU_FIELDS} == {k: flat[k] for k in GPU_FIELDS}


def test_schema_store_and_wire_use_the_tables_columns() -> None:
    columns = [c.name for c in schema.samples.columns]
    assert columns == ["id", "job_id", "ts", *(m.column for m in METRICS), "gpus"]
    assert list(schema.SAMPLE_FIELDS) == list(METRIC_FIELDS)
    assert [c.name for c in schema.SAMPLE_FIELDS.values()] == [m.column for m in METRICS]
    rollup = {c.name for c in schema.metadata.tables["sample_rollups"].columns}
    assert {f"{end}_{m.column}" for m in METRICS for end in ("min", "max")} <= rollup
    row = {"ts": 0.0, **{m.column: float(i) for i, m in enumerate(METRICS)}, "gpus": None}
    assert wire.sample_to_wire(row) == {
        "timestamp": "1970-01-01T00:00:00.000Z",
        **{m.wire: float(i) for i, m in enumerate(METRICS)},
    }
    sample_aliases = [f.alias for f in answers.Sample.model_fields.values()]
    assert sample_aliases == [None, *METRIC_FIELDS, None]
    required = [f.alias for f in answers.Sample.model_fields.values() if f.is_required()]
    assert required == [None, *GPU_FIELDS]


def test_the_other_readers_take_their_lists_from_the_table() -> None:
    assert _samples.METRIC_FIELDS is METRIC_FIELDS
    assert state.METRIC_FIELDS is METRIC_FIELDS
    assert compare.SAMPLE_METRICS is METRIC_FIELDS
    assert tuple(m.wire for m in METRICS if m.alert) == alert_rules.METRIC_NAMES
    assert gpu._SMI_QUERY.split(",") == ["index", "uuid", "name", *(m.smi for m in GPU_METRICS)]
    assert [wire for wire, _ in gpu._NVML_QUERIES] == list(GPU_FIELDS)
    assert [wire for wire, _ in system._QUERIES] == list(SYSTEM_FIELDS)
    assert prometheus.GPU_METRICS is GPU_METRICS
    assert prometheus.SYSTEM_METRICS is SYSTEM_METRICS


def test_an_unknown_metric_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        metric("gpuFanSpeed")


NEW_METRIC = """
    Metric(
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
    from jobwatch.server.core.alerts import alert_rules
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
        tmp_path,
        "contract/metrics.py",
        '\n    Metric(\n        wire="cpuUtilization"',  # the last GPU metric's end
        NEW_METRIC,
        WITH_NEW_METRIC,
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


NEW_SYSTEM_METRIC = """
    Metric(
        wire="swapUsed",
        column="swap_used",
        unit="MB",
        minimum=0,
        maximum=MAX_HOST_MEMORY_MB,
        scope="system",
        label="swap in use",
        prometheus="jobwatch_swap_used_bytes",
        prometheus_factor=MIB,
        psutil=PsutilQuery("swap_memory", "used", divisor=MIB, digits=1),
        chart="memory",
    ),
"""

WITH_NEW_SYSTEM_METRIC = textwrap.dedent(
    """
    import json
    import psutil
    from jobwatch.report.system import SystemSampler
    from jobwatch.view import state
    from jobwatch.server.core.alerts import alert_rules
    from jobwatch.server.web.app import create_app

    sampled = SystemSampler()()
    app = create_app({"DB": ":memory:"})
    client = app.test_client()
    client.put("/api/jobs/j", json={"name": "new metric", "workerId": "w"})
    bad = client.post(
        "/api/jobs/j/progress",
        json={"workerId": "w", "progress": 1, "metrics": {"swapUsed": -1}},
    )
    ok = client.post("/api/jobs/j/progress", json={"workerId": "w", "progress": 2, "metrics": sampled})
    latest = client.get("/api/jobs/j/metrics").get_json()["metrics"][-1]
    exported = client.get("/api/prometheus").get_data(as_text=True)
    page = client.get("/assets/metrics.js").get_data(as_text=True)
    print(json.dumps({
        "sampled": sampled["swapUsed"],
        "swap": psutil.swap_memory().used / 1048576,
        "bad": [bad.status_code, bad.get_json()["error"]["details"][0]["field"]],
        "ok": ok.status_code,
        "stored": latest["swapUsed"],
        "state": state.Sample.from_wire(latest).flat["swapUsed"],
        "alert": alert_rules.parse_rule("swapUsed>1000 for 60s").metric,
        "exported": [line for line in exported.splitlines() if line.startswith("jobwatch_swap")],
        "page": "swapUsed" in page,
    }))
    """
)


def test_adding_a_system_metric_is_one_entry_in_the_table(tmp_path: Path) -> None:
    got = run_with_table_entry(
        tmp_path,
        "contract/metrics.py",
        '\n)\n"""Every metric',
        NEW_SYSTEM_METRIC,
        WITH_NEW_SYSTEM_METRIC,
    )
    assert got["sampled"] == pytest.approx(got["swap"], abs=64)  # MB; swap moves a little
    assert got["bad"] == [400, "metrics.swapUsed"]
    assert got["ok"] == 200
    assert got["stored"] == got["state"] == got["sampled"]
    assert got["alert"] == "swapUsed"
    job = 'job_id="j",job_name="new metric",worker="w"'
    [(key, value)] = [line.rsplit(" ", 1) for line in got["exported"]]
    assert key == f"jobwatch_swap_used_bytes{{{job}}}"
    assert float(value) == got["sampled"] * 1024 * 1024
    assert got["page"]


def test_the_page_model_reads_system_metrics_as_python_does(tmp_path: Path) -> None:
    """job_state.js (the job page's model, under node) and MonitorState take the same
    fields from the same samples, and agree on which kinds of chart they can draw."""
    node = node_or_skip()
    for name in ("job_state.js", "format.js", "gpu_labels.js"):
        shutil.copy(STATIC / name, tmp_path / name)
    (tmp_path / "job_fields.js").write_text(job_fields_module(), encoding="utf-8")
    (tmp_path / "metrics.js").write_text(metrics_module(), encoding="utf-8")
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    histories = [
        [{"timestamp": "2026-01-01T00:00:00.000Z", "cpuUtilization": 5, "memoryUsed": 10}],
        [{"timestamp": "2026-01-01T00:00:00.000Z", "gpuUtilization": 5, "gpus": [{"index": 0}]}],
        [{"timestamp": "2026-01-01T00:00:00.000Z", **dict.fromkeys(METRIC_FIELDS)}],
        [
            {"timestamp": "2026-01-01T00:00:00.000Z", "gpuUtilization": 1},
            {"timestamp": "2026-01-01T00:00:01.000Z", "networkIn": 2048, "gpuUtilization": 2},
        ],
    ]
    harness = tmp_path / "harness.js"
    harness.write_text(
        "import { JobState } from './job_state.js';\n"
        f"const histories = {json.dumps(histories)};\n"
        "console.log(JSON.stringify(histories.map((rows) => {\n"
        "  const state = new JobState();\n"
        "  state.replaceSamples(rows);\n"
        "  return [state.samples.map((s) => s.flat), state.hasGpu, state.hasSystem];\n"
        "})));\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    python = []
    for rows in histories:
        mine = state.MonitorState()
        mine.replace_samples(rows)
        python.append([[s.flat for s in mine.samples], mine.has_gpu, mine.has_system])
    assert json.loads(done.stdout) == python
    assert [kinds for _, *kinds in python] == [
        [False, True],
        [True, False],
        [False, False],
        [True, True],
    ]
