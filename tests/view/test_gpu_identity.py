"""A GPU is its identity (its UUID, a MIG slice's MIG UUID), not its index: the
monitor's series, the chart columns, the job page's model and Prometheus keep two
GPUs apart even when they report the same index."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobwatch.contract.requests import format_ts
from jobwatch.notebook.charts.columns import GpuColumns
from jobwatch.notebook.charts.gpu import METRICS
from jobwatch.report import gpu
from jobwatch.server.web.pages import job_fields_module, metrics_module
from jobwatch.view.state import MonitorState
from tests.fake_nvml import FakeGpu, FakeNvml, mig_slice
from tests.notebook.test_logview import node_or_skip
from tests.paths import REPO

T0 = 1_800_000_000.0
UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"
MIG_1 = "MIG-11111111-aaaa-bbbb-cccc-dddddddddddd"
MIG_2 = "MIG-22222222-aaaa-bbbb-cccc-dddddddddddd"
STATIC = REPO / "jobwatch" / "server" / "web" / "static"


def row(t: float, gpus: list[dict[str, Any]]) -> dict[str, Any]:
    return {"timestamp": format_ts(T0 + t), "gpus": gpus}


def state_of(rows: list[dict[str, Any]]) -> MonitorState:
    state = MonitorState(clock=lambda: T0 + len(rows))
    state.replace_samples(rows)
    return state


def mig_sample(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One real sample of gpu.sample() over a fake NVML: GPU 0 in MIG mode with two slices."""
    parent = FakeGpu(
        UUID_A,
        "NVIDIA A100",
        mig_mode=[1, 1],
        mig=[
            mig_slice(MIG_1, "NVIDIA A100 MIG 3g.20gb", 4, 19.5),
            mig_slice(MIG_2, "NVIDIA A100 MIG 1g.5gb", 1, 4.75),
        ],
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([parent]))
    gpu.reset()
    try:
        metrics = gpu.sample()
    finally:
        gpu.reset()
    assert metrics is not None
    return metrics


def test_two_mig_slices_of_gpu_0_are_two_series_with_two_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = mig_sample(monkeypatch)
    assert [(g["index"], g["uuid"]) for g in metrics["gpus"]] == [(0, MIG_1), (0, MIG_2)]
    rows = [row(t, metrics["gpus"]) for t in range(3)]
    state = state_of(rows)
    used = state.series("gpuMemoryUsed", None)
    assert list(used.lines) == ["GPU 0 (MIG 3g.20gb)", "GPU 0 (MIG 1g.5gb)"]
    assert used.lines["GPU 0 (MIG 3g.20gb)"] == [4096.0] * 3
    assert used.lines["GPU 0 (MIG 1g.5gb)"] == [1024.0] * 3
    _, labels, values = GpuColumns(METRICS).table(state, None)
    assert labels == list(used.lines)
    assert values[METRICS.index("gpuMemoryUsed")].tolist() == [[4096.0] * 3, [1024.0] * 3]


def test_two_gpus_with_the_same_index_are_not_merged() -> None:
    a = {"index": 0, "uuid": UUID_A, "gpuUtilization": 10.0}
    b = {"index": 0, "uuid": UUID_B, "gpuUtilization": 90.0}
    state = state_of([row(0, [a, b]), row(1, [b, a])])
    util = state.series("gpuUtilization", None)
    assert list(util.lines) == ["GPU 0 (GPU-aaaaaaaa)", "GPU 0 (GPU-bbbbbbbb)"]
    # keyed by UUID: the order of the list within a sample does not swap the lines
    assert util.lines["GPU 0 (GPU-aaaaaaaa)"] == [10.0, 10.0]
    assert util.lines["GPU 0 (GPU-bbbbbbbb)"] == [90.0, 90.0]
    _, labels, values = GpuColumns(METRICS).table(state, None)
    assert labels == list(util.lines)
    assert values[METRICS.index("gpuUtilization")].tolist() == [[10.0, 10.0], [90.0, 90.0]]


def test_a_gpu_keeps_its_line_when_its_index_changes() -> None:
    # CUDA_VISIBLE_DEVICES or a restart renumbers GPUs; the UUID stays
    first = [{"index": 0, "uuid": UUID_A, "gpuUtilization": 1.0}]
    then = [{"index": 1, "uuid": UUID_A, "gpuUtilization": 2.0}]
    util = state_of([row(0, first), row(1, then)]).series("gpuUtilization", None)
    assert len(util.lines) == 1
    assert list(util.lines.values()) == [[1.0, 2.0]]


def test_without_uuids_the_index_keys_and_duplicates_stay_apart() -> None:
    gpus = [{"index": 0, "gpuUtilization": 1.0}, {"index": 0, "gpuUtilization": 2.0}]
    util = state_of([row(0, gpus)]).series("gpuUtilization", None)
    assert list(util.lines) == ["GPU 0 (#1)", "GPU 0 (#2)"]
    assert [v[0] for v in util.lines.values()] == [1.0, 2.0]
    # the seed's shape (index only, one GPU each) keeps its plain labels and order
    seed = [{"index": i, "gpuUtilization": float(i)} for i in (10, 2, 0)]
    assert list(state_of([row(0, seed)]).series("gpuUtilization", None).lines) == [
        "GPU 0",
        "GPU 2",
        "GPU 10",
    ]


def test_labels_are_unique_and_plain_when_the_index_is() -> None:
    from jobwatch.contract.gpu_identity import gpu_ids, gpu_labels

    ids = gpu_ids(
        [
            {"index": 0, "uuid": MIG_1, "name": "NVIDIA A100 MIG 1g.5gb"},
            {"index": 0, "uuid": MIG_2, "name": "NVIDIA A100 MIG 1g.5gb"},
            {"index": 1, "uuid": UUID_B, "name": "NVIDIA A100"},
            {"uuid": UUID_A},
        ]
    )
    labels = gpu_labels(ids)
    assert [labels[i.key] for i in ids] == [
        "GPU 0 (MIG 1g.5gb, MIG-11111111)",
        "GPU 0 (MIG 1g.5gb, MIG-22222222)",
        "GPU 1",
        "GPU 3",  # no index: its position in the sample
    ]
    # the same UUID twice in one sample (a bad report) is still two keys
    twice = gpu_ids([{"index": 0, "uuid": UUID_A}, {"index": 0, "uuid": UUID_A}])
    assert len({i.key for i in twice}) == 2
    assert len(set(gpu_labels(twice).values())) == 2


def test_the_job_page_model_keys_gpus_as_python_does(tmp_path: Path) -> None:
    node = node_or_skip()
    rows = [
        row(
            0,
            [
                {"index": 0, "uuid": MIG_1, "name": "A100 MIG 3g.20gb", "gpuUtilization": 1.0},
                {"index": 0, "uuid": MIG_2, "name": "A100 MIG 1g.5gb", "gpuUtilization": 2.0},
            ],
        ),
        row(
            1,
            [
                {"index": 0, "uuid": UUID_A, "gpuUtilization": 3.0},
                {"index": 0, "uuid": UUID_B, "gpuUtilization": 4.0},
                {"index": 0, "gpuUtilization": 5.0},
                {"index": 0, "gpuUtilization": 6.0},
                {"index": 2, "gpuUtilization": 7.0},
                {"uuid": UUID_A, "gpuUtilization": 8.0},
            ],
        ),
    ]
    for name in ("job_state.js", "format.js", "gpu_labels.js"):
        shutil.copy(STATIC / name, tmp_path / name)
    (tmp_path / "job_fields.js").write_text(job_fields_module(), encoding="utf-8")
    (tmp_path / "metrics.js").write_text(metrics_module(), encoding="utf-8")
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    harness = tmp_path / "harness.js"
    harness.write_text(
        "import { JobState } from './job_state.js';\n"
        "import { gpuLines } from './gpu_labels.js';\n"
        "const state = new JobState();\n"
        f"state.replaceSamples({json.dumps(rows)});\n"
        "const out = [];\n"
        "for (const s of state.samples) {\n"
        "  const lines = gpuLines([s]);\n"
        "  out.push(lines.map(({ key, label }) => [label, s.gpus[key].gpuUtilization]));\n"
        "}\n"
        "console.log(JSON.stringify(out));\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [node, str(harness)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    python = []
    for raw in rows:
        series = state_of([raw]).series("gpuUtilization", None)
        python.append([[label, values[0]] for label, values in series.lines.items()])
    assert json.loads(result.stdout) == python
    assert len({label for label, _ in python[1]}) == 6


def test_nan_for_a_slice_missing_from_a_sample() -> None:
    a = {"index": 0, "uuid": MIG_1, "gpuMemoryUsed": 1.0}
    b = {"index": 0, "uuid": MIG_2, "gpuMemoryUsed": 2.0}
    used = state_of([row(0, [a, b]), row(1, [a])]).series("gpuMemoryUsed", None)
    second = list(used.lines.values())[1]
    assert second[0] == 2.0 and math.isnan(second[1])
