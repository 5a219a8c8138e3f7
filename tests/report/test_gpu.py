"""jobwatch.report.gpu against a fake NVML (tests/fake_nvml.py) and a fake nvidia-smi executable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobwatch.contract.requests import Metrics
from jobwatch.report import gpu
from tests.fake_nvml import GIB, FakeGpu, FakeNvml, NVMLError_LibraryNotFound, mig_slice
from tests.fake_nvml import NVMLError_NotSupported as NotSupported
from tests.paths import REPO, TESTS

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"
UUID_C = "GPU-cccccccc-1111-2222-3333-444444444444"
MIG_1 = "MIG-11111111-aaaa-bbbb-cccc-dddddddddddd"
MIG_2 = "MIG-22222222-aaaa-bbbb-cccc-dddddddddddd"
METRICS = ("gpuUtilization", "gpuMemoryUsed", "gpuMemoryTotal", "gpuTemperature", "powerUsage")
SMI_QUERY = "index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    gpu.reset()
    yield
    gpu.reset()


def install(monkeypatch: pytest.MonkeyPatch, *gpus: FakeGpu, **options: Any) -> FakeNvml:
    fake = FakeNvml(list(gpus), **options)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def three_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(UUID_A, "GPU zero", utilization=10),
        FakeGpu(UUID_B, "GPU one", utilization=20),
        FakeGpu(UUID_C, "GPU two", utilization=30),
    ]


def fake_smi(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stdout: str = "",
    *,
    exit_code: int = 0,
    sleep_s: float = 0.0,
) -> Path:
    """Put an executable ``nvidia-smi`` alone on PATH; returns the file its argv is written to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "argv.txt"
    script = bin_dir / "nvidia-smi"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import sys, time
            with open({str(argv_log)!r}, "w") as log:
                log.write("\\n".join(sys.argv[1:]))
            time.sleep({sleep_s!r})
            sys.stdout.write({stdout!r})
            sys.exit({exit_code!r})
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return argv_log


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def uuids(metrics: dict[str, Any] | None) -> list[str]:
    assert metrics is not None
    return [g["uuid"] for g in metrics["gpus"]]


# --- NVML ---------------------------------------------------------------------------------------


def test_several_gpus_units_and_aggregation(monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        FakeGpu(UUID_A, "NVIDIA H100", 30, 1 * GIB, 80 * GIB, 50, 150_000),
        FakeGpu(UUID_B, "NVIDIA H100", 70, 3 * GIB + 512 * 1024 * 1024, 80 * GIB, 65, 250_500),
    )
    metrics = gpu.sample()

    assert metrics is not None
    assert metrics["gpus"] == [
        {
            "index": 0,
            "uuid": UUID_A,
            "name": "NVIDIA H100",
            "gpuUtilization": 30,
            "gpuMemoryUsed": 1024.0,
            "gpuMemoryTotal": 81920.0,
            "gpuTemperature": 50,
            "powerUsage": 150.0,
        },
        {
            "index": 1,
            "uuid": UUID_B,
            "name": "NVIDIA H100",
            "gpuUtilization": 70,
            "gpuMemoryUsed": 3584.0,
            "gpuMemoryTotal": 81920.0,
            "gpuTemperature": 65,
            "powerUsage": 250.5,
        },
    ]
    flat = {key: metrics[key] for key in METRICS}
    assert flat == {
        "gpuUtilization": 50.0,
        "gpuMemoryUsed": 4608.0,
        "gpuMemoryTotal": 163840.0,
        "gpuTemperature": 65,
        "powerUsage": 400.5,
    }
    assert {k: v for k, v in Metrics.model_validate(metrics).flat().items() if k in flat} == flat


def test_bytes_strings_from_older_pynvml_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(UUID_A.encode(), b"Tesla V100-SXM2-16GB"))
    metrics = gpu.sample()
    assert metrics is not None
    assert (metrics["gpus"][0]["uuid"], metrics["gpus"][0]["name"]) == (
        UUID_A,
        "Tesla V100-SXM2-16GB",
    )


def test_devices_are_enumerated_once_and_read_every_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = install(monkeypatch, *three_gpus())
    results = [gpu.sample() for _ in range(4)]

    assert all(r is not None and len(r["gpus"]) == 3 for r in results)
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetCount"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 3
    assert fake.calls["nvmlDeviceGetUUID"] == 3
    assert fake.calls["nvmlDeviceGetName"] == 3
    assert fake.calls["nvmlDeviceGetMemoryInfo"] == 12


def test_new_values_show_in_the_next_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    card = FakeGpu(UUID_A, utilization=5)
    install(monkeypatch, card)
    assert gpu.sample()["gpuUtilization"] == 5  # type: ignore[index]
    card.utilization = 95
    assert gpu.sample()["gpuUtilization"] == 95  # type: ignore[index]


def test_mig_gpu_is_reported_as_its_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = FakeGpu(UUID_A, "NVIDIA A100", 40, 2 * GIB, 40 * GIB, 55, 200_000)
    parent = FakeGpu(
        UUID_B,
        "NVIDIA A100",
        mig_mode=[1, 1],
        mig=[
            mig_slice(MIG_1, "NVIDIA A100 MIG 3g.20gb", 4, 19.5),
            None,  # an empty slot: NVMLError_NotFound
            mig_slice(MIG_2, "NVIDIA A100 MIG 1g.5gb", 1, 4.75),
        ],
    )
    install(monkeypatch, plain, parent)
    metrics = gpu.sample()

    assert metrics is not None
    assert uuids(metrics) == [UUID_A, MIG_1, MIG_2]
    first, second = metrics["gpus"][1:]
    assert first == {
        "index": 1,
        "uuid": MIG_1,
        "name": "NVIDIA A100 MIG 3g.20gb",
        "gpuUtilization": None,
        "gpuMemoryUsed": 4096.0,
        "gpuMemoryTotal": 19968.0,
        "gpuTemperature": None,
        "powerUsage": None,
    }
    assert (second["index"], second["gpuMemoryUsed"], second["gpuMemoryTotal"]) == (
        1,
        1024.0,
        4864.0,
    )
    # utilization, temperature and power come from the one GPU that has them
    assert metrics["gpuUtilization"] == 40
    assert metrics["gpuTemperature"] == 55
    assert metrics["powerUsage"] == 200.0
    assert metrics["gpuMemoryUsed"] == 2048.0 + 4096.0 + 1024.0
    assert metrics["gpuMemoryTotal"] == 40960.0 + 19968.0 + 4864.0
    Metrics.model_validate(metrics)


def test_gpu_with_mig_pending_but_not_current_is_reported_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = FakeGpu(UUID_A, mig_mode=[0, 1], mig=[mig_slice(MIG_1, "slice", 1, 10)])
    install(monkeypatch, parent)
    assert uuids(gpu.sample()) == [UUID_A]


def test_mig_gpu_without_instances_keeps_its_own_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeGpu(UUID_A, mig_mode=[1, 1], mig=[None] * 7))
    assert uuids(gpu.sample()) == [UUID_A]


@pytest.mark.parametrize(
    ("function", "missing"),
    [
        ("nvmlDeviceGetUtilizationRates", {"gpuUtilization"}),
        ("nvmlDeviceGetMemoryInfo", {"gpuMemoryUsed", "gpuMemoryTotal"}),
        ("nvmlDeviceGetTemperature", {"gpuTemperature"}),
        ("nvmlDeviceGetPowerUsage", {"powerUsage"}),
        ("nvmlDeviceGetUUID", {"uuid"}),
        ("nvmlDeviceGetName", {"name"}),
    ],
)
def test_one_unsupported_field_leaves_the_others(
    monkeypatch: pytest.MonkeyPatch, function: str, missing: set[str]
) -> None:
    broken = FakeGpu(UUID_A, "broken", 60, 2 * GIB, 16 * GIB, 70, 90_000)
    broken.errors[function] = NotSupported()
    install(monkeypatch, broken)
    metrics = gpu.sample()

    assert metrics is not None
    sample = metrics["gpus"][0]
    expected = {
        "index": 0,
        "uuid": UUID_A,
        "name": "broken",
        "gpuUtilization": 60,
        "gpuMemoryUsed": 2048.0,
        "gpuMemoryTotal": 16384.0,
        "gpuTemperature": 70,
        "powerUsage": 90.0,
    }
    assert sample == {key: None if key in missing else value for key, value in expected.items()}
    assert all(metrics[key] is None for key in missing if key in METRICS)


def test_sentinel_values_become_none(monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        FakeGpu(
            UUID_A,
            utilization=0xFFFFFFFF,
            memory_used=2**64 - 1,
            memory_total=2**64 - 1,
            temperature=4294967295,
            power=0xFFFFFFFF,
        ),
        FakeGpu(UUID_B, utilization=101, temperature=200, power=6_000_000),
    )
    metrics = gpu.sample()

    assert metrics is not None
    first, second = metrics["gpus"]
    assert all(first[key] is None for key in METRICS)
    assert [second[key] for key in METRICS] == [None, 0.0, 81920.0, None, None]
    assert [metrics[key] for key in METRICS] == [None, 0.0, 81920.0, None, None]
    Metrics.model_validate(metrics)


def test_used_above_total_and_zero_total_become_none(monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        FakeGpu(UUID_A, memory_used=90 * GIB, memory_total=80 * GIB),
        FakeGpu(UUID_B, memory_used=0, memory_total=0),
    )
    metrics = gpu.sample()

    assert metrics is not None
    assert [(g["gpuMemoryUsed"], g["gpuMemoryTotal"]) for g in metrics["gpus"]] == [
        (None, 81920.0),
        (0.0, None),
    ]
    Metrics.model_validate(metrics)


def test_no_devices_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    assert gpu.sample() is None


def test_sample_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = FakeGpu(UUID_A)
    broken.errors["nvmlDeviceGetMemoryInfo"] = RuntimeError("not an NVML error")
    install(monkeypatch, broken)
    assert gpu.sample() is None


def test_init_happens_once_under_concurrent_first_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, *three_gpus(), init_delay=0.05)
    start = threading.Barrier(8)
    results: list[dict[str, Any] | None] = []

    def first_call() -> None:
        start.wait()
        results.append(gpu.sample())

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 8
    assert all(uuids(result) == [UUID_A, UUID_B, UUID_C] for result in results)
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetCount"] == 1


def test_reset_shuts_nvml_down(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeGpu(UUID_A))
    gpu.sample()
    assert fake.refcount == 1
    gpu.reset()
    assert (fake.calls["nvmlShutdown"], fake.refcount) == (1, 0)
    gpu.sample()
    assert (fake.calls["nvmlInit"], fake.refcount) == (2, 1)


def test_importing_the_module_does_not_import_pynvml() -> None:
    done = run_python(
        """
        import sys
        import jobwatch.report.gpu
        print(sorted(name for name in sys.modules if "nvml" in name))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_nvml_is_shut_down_at_exit() -> None:
    done = run_python(
        f"""
        import sys
        from fake_nvml import FakeGpu, FakeNvml

        fake = FakeNvml([FakeGpu({UUID_A!r})])
        def shutdown():
            FakeNvml.nvmlShutdown(fake)
            print("shutdown", fake.refcount, flush=True)
        fake.nvmlShutdown = shutdown
        sys.modules["pynvml"] = fake

        from jobwatch.report import gpu
        print("sampled", gpu.sample()["gpus"][0]["uuid"], flush=True)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [f"sampled {UUID_A}", "shutdown 0"]


# --- nvidia-smi fallback ----------------------------------------------------------------------

SMI_OUTPUT = (
    f"0, {UUID_A}, NVIDIA GeForce RTX 4090, 35, 1200, 24564, 61, 120.50\n"
    f"1, {UUID_B}, NVIDIA GeForce RTX 4090, [N/A], 300, 24564, 48, [N/A]\n"
)


def test_library_not_found_falls_back_to_nvidia_smi(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = install(monkeypatch, init_error=NVMLError_LibraryNotFound())
    argv_log = fake_smi(tmp_path, monkeypatch, SMI_OUTPUT)
    metrics = gpu.sample()

    assert argv_log.read_text().split("\n") == [
        f"--query-gpu={SMI_QUERY}",
        "--format=csv,noheader,nounits",
    ]
    assert fake.calls["nvmlInit"] == 1
    assert metrics is not None
    assert metrics["gpus"][0] == {
        "index": 0,
        "uuid": UUID_A,
        "name": "NVIDIA GeForce RTX 4090",
        "gpuUtilization": 35,
        "gpuMemoryUsed": 1200,
        "gpuMemoryTotal": 24564,
        "gpuTemperature": 61,
        "powerUsage": 120.5,
    }
    assert metrics["gpus"][1]["gpuUtilization"] is None
    assert metrics["gpus"][1]["powerUsage"] is None
    assert [metrics[key] for key in METRICS] == [35.0, 1500, 49128, 61, 120.5]
    Metrics.model_validate(metrics)


def test_pynvml_not_installed_falls_back_to_nvidia_smi(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    fake_smi(tmp_path, monkeypatch, SMI_OUTPUT)
    assert uuids(gpu.sample()) == [UUID_A, UUID_B]


def test_no_nvml_and_no_nvidia_smi_gives_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu.sample() is None


def test_failing_nvidia_smi_gives_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install(monkeypatch, init_error=NVMLError_LibraryNotFound())
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    fake_smi(tmp_path, monkeypatch, message, exit_code=9)
    assert gpu.sample() is None


def test_hung_nvidia_smi_is_cut_off_by_the_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install(monkeypatch, init_error=NVMLError_LibraryNotFound())
    fake_smi(tmp_path, monkeypatch, SMI_OUTPUT, sleep_s=30)
    monkeypatch.setattr(gpu, "_SMI_TIMEOUT_S", 0.5)
    started = time.monotonic()
    assert gpu.sample() is None
    assert time.monotonic() - started < 10


# --- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("0,2", [UUID_A, UUID_C]),
        (" 0 , 2 ", [UUID_A, UUID_C]),
        ("1", [UUID_B]),
        (UUID_B, [UUID_B]),
        (f"{UUID_C}, {UUID_A}", [UUID_C, UUID_A]),  # CUDA enumerates in the order given
        ("2,1", [UUID_C, UUID_B]),
        ("GPU-bbbb", [UUID_B]),  # a unique prefix, as CUDA accepts
        (UUID_B.upper(), [UUID_B]),
        ("0,0,2", [UUID_A, UUID_C]),
        # CUDA: an invalid entry hides itself and every entry after it
        ("0,-1,1", [UUID_A]),
        ("0,2,-1,1", [UUID_A, UUID_C]),
        ("0,foo,1", [UUID_A]),
        ("1,7,0", [UUID_B]),  # there is no GPU 7
        ("1,GPU-ffff,0", [UUID_B]),  # no GPU has that UUID
        ("1,GPU-,0", [UUID_B]),  # a prefix of every UUID names no one GPU
        ("1,,0", [UUID_B]),
    ],
)
def test_cuda_visible_devices_selects_gpus(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    install(monkeypatch, *three_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    metrics = gpu.sample()
    assert uuids(metrics) == expected
    util = {UUID_A: 10, UUID_B: 20, UUID_C: 30}
    assert metrics is not None
    assert metrics["gpuUtilization"] == sum(util[u] for u in expected) / len(expected)


@pytest.mark.parametrize("visible", ["", "  ", "-1", "NoDevFiles", "7,0", "bogus,0,1"])
def test_cuda_visible_devices_hiding_every_gpu_gives_none(
    monkeypatch: pytest.MonkeyPatch, visible: str
) -> None:
    install(monkeypatch, *three_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpu.sample() is None


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (MIG_2, [MIG_2]),
        ("MIG-1111", [MIG_1]),
        (UUID_B, [MIG_1, MIG_2]),  # the parent GPU's UUID selects all its slices
        ("1", [MIG_1, MIG_2]),
        ("0", [UUID_A]),
        (f"{MIG_2},{UUID_A}", [MIG_2, UUID_A]),
        ("MIG-,0", []),  # a prefix of both slices names neither
        # the format before driver R470: MIG-<GPU UUID>/<GPU instance ID>/<compute instance ID>
        (f"MIG-{UUID_B}/2/0", [MIG_2]),
        (f"MIG-{UUID_B[:12]}/1/0,0", [MIG_1, UUID_A]),
        (f"MIG-{UUID_B}/3/0,0", []),
    ],
)
def test_cuda_visible_devices_with_mig(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    parent = FakeGpu(
        UUID_B,
        mig_mode=[1, 1],
        mig=[
            mig_slice(MIG_1, "3g.20gb", 1, 20, instance_ids=(1, 0)),
            mig_slice(MIG_2, "1g.5gb", 1, 5, instance_ids=(2, 0)),
        ],
    )
    install(monkeypatch, FakeGpu(UUID_A), parent)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    metrics = gpu.sample()
    assert (uuids(metrics) if expected else metrics) == (expected or None)


def test_a_prefix_two_uuids_share_cuts_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    twin = "GPU-aaaaaaaa-9999-2222-3333-444444444444"  # shares "GPU-aaaaaaaa-" with UUID_A
    install(monkeypatch, FakeGpu(UUID_B), FakeGpu(UUID_A), FakeGpu(twin))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,GPU-aaaaaaaa,1")
    assert uuids(gpu.sample()) == [UUID_B]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,GPU-aaaaaaaa-9,1")
    assert uuids(gpu.sample()) == [UUID_B, twin, UUID_A]


def pci_gpus() -> list[FakeGpu]:
    """NVML enumerates these in another order than their PCI bus IDs."""
    return [
        FakeGpu(UUID_A, "NVIDIA A100-SXM4-80GB", pci_bus=(0, 0x41, 0)),
        FakeGpu(UUID_B, "NVIDIA A100-SXM4-80GB", pci_bus=(0, 0x07, 0)),
        FakeGpu(UUID_C, "NVIDIA A100-SXM4-80GB", pci_bus=(1, 0x03, 0)),
    ]


@pytest.mark.parametrize("order", ["PCI_BUS_ID", None, "FASTEST_FIRST"])
def test_indices_count_gpus_in_pci_bus_order(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, order: str | None
) -> None:
    """With one model, CUDA's fastest-first order is PCI bus order too: nothing to warn."""
    install(monkeypatch, *pci_gpus())
    if order is not None:
        monkeypatch.setenv("CUDA_DEVICE_ORDER", order)
    else:
        monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert uuids(gpu.sample()) == [UUID_B, UUID_C]
    assert not [r for r in caplog.records if r.name == "jobwatch.report.gpu"]


def mixed_models() -> list[FakeGpu]:
    return [
        FakeGpu(UUID_A, "Tesla T4", pci_bus=(0, 0x01, 0)),
        FakeGpu(UUID_B, "NVIDIA A100-SXM4-80GB", pci_bus=(0, 0x02, 0)),
    ]


@pytest.mark.parametrize("order", [None, "FASTEST_FIRST"])
def test_indices_on_mixed_models_in_fastest_first_order_warn_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, order: str | None
) -> None:
    install(monkeypatch, *mixed_models())
    if order is not None:
        monkeypatch.setenv("CUDA_DEVICE_ORDER", order)
    else:
        monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    for _ in range(3):
        assert uuids(gpu.sample()) == [UUID_A]  # nvidia-smi's GPU 0, as the warning says
    warnings = [
        r for r in caplog.records if r.name == "jobwatch.report.gpu" and r.levelname == "WARNING"
    ]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in text and "Tesla T4" in text


@pytest.mark.parametrize(
    ("order", "visible"), [("PCI_BUS_ID", "1"), (None, UUID_B), ("FASTEST_FIRST", None)]
)
def test_mixed_models_without_ambiguity_do_not_warn(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    order: str | None,
    visible: str | None,
) -> None:
    install(monkeypatch, *mixed_models())
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    if order is not None:
        monkeypatch.setenv("CUDA_DEVICE_ORDER", order)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    expected = [UUID_B] if visible else [UUID_A, UUID_B]
    assert uuids(gpu.sample()) == expected
    assert not [r for r in caplog.records if r.name == "jobwatch.report.gpu"]


def test_cuda_visible_devices_filters_nvidia_smi_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install(monkeypatch, init_error=NVMLError_LibraryNotFound())
    fake_smi(tmp_path, monkeypatch, SMI_OUTPUT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert uuids(gpu.sample()) == [UUID_B]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUID_A[:12])
    assert uuids(gpu.sample()) == [UUID_A]


# --- parse_nvidia_smi_csv ---------------------------------------------------------------------

ROW = f"3, {UUID_A}, NVIDIA H100 80GB HBM3, 87, 40000, 81559, 71, 612.35"
PARSED_ROW = {
    "index": 3,
    "uuid": UUID_A,
    "name": "NVIDIA H100 80GB HBM3",
    "gpuUtilization": 87,
    "gpuMemoryUsed": 40000,
    "gpuMemoryTotal": 81559,
    "gpuTemperature": 71,
    "powerUsage": 612.35,
}


def with_cell(column: int, value: str) -> str:
    cells = ROW.split(", ")
    cells[column] = value
    return ", ".join(cells)


def test_parse_a_full_row() -> None:
    assert gpu.parse_nvidia_smi_csv(ROW + "\n") == [PARSED_ROW]


@pytest.mark.parametrize(
    "missing", ["[N/A]", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]", "N/A"]
)
@pytest.mark.parametrize("column", range(8))
def test_parse_missing_values_become_none_and_keep_the_row(column: int, missing: str) -> None:
    field = list(PARSED_ROW)[column]
    assert gpu.parse_nvidia_smi_csv(with_cell(column, missing)) == [{**PARSED_ROW, field: None}]


@pytest.mark.parametrize(
    ("column", "cell"),
    [(3, ""), (4, "abc"), (7, "12W"), (0, "x"), (0, "1.5"), (0, "-1"), (3, "nan"), (7, "inf")],
)
def test_parse_empty_unparsable_and_non_finite_cells(column: int, cell: str) -> None:
    field = list(PARSED_ROW)[column]
    assert gpu.parse_nvidia_smi_csv(with_cell(column, cell)) == [{**PARSED_ROW, field: None}]


def test_parse_out_of_range_values_become_none() -> None:
    row = f"0, {UUID_A}, card, 150, 90000, 81559, 4294967295, 70000"
    assert gpu.parse_nvidia_smi_csv(row) == [
        {
            "index": 0,
            "uuid": UUID_A,
            "name": "card",
            "gpuUtilization": None,
            "gpuMemoryUsed": None,  # more than the total
            "gpuMemoryTotal": 81559,
            "gpuTemperature": None,
            "powerUsage": None,
        }
    ]


def test_parse_skips_rows_with_the_wrong_column_count() -> None:
    text = "\n".join(
        [
            ROW,
            "0, GPU-short, card, 1, 2, 3, 4",
            ROW + ", 9",
            "",
            "No devices were found",
            ROW.replace("3,", "4,", 1),
        ]
    )
    assert [g["index"] for g in gpu.parse_nvidia_smi_csv(text)] == [3, 4]


def test_parse_tolerates_extra_whitespace_and_crlf() -> None:
    text = f"  3 ,   {UUID_A} ,  NVIDIA H100 80GB HBM3  ,87 ,  40000,81559 , 71,   612.35  \r\n"
    assert gpu.parse_nvidia_smi_csv(text) == [PARSED_ROW]


def test_parse_empty_text() -> None:
    assert gpu.parse_nvidia_smi_csv("") == []


# --- aggregate --------------------------------------------------------------------------------


def test_aggregate_of_nothing_is_none() -> None:
    assert gpu.aggregate([]) is None


def test_aggregate_uses_only_known_values_and_keeps_unknowns_null() -> None:
    gpus = [
        {"index": 0, "gpuUtilization": 20, "gpuMemoryUsed": None, "gpuTemperature": 40},
        {"index": 1, "gpuUtilization": None, "gpuMemoryUsed": 100, "gpuTemperature": 75},
        {"index": 2, "gpuUtilization": 60},
    ]
    metrics = gpu.aggregate(gpus)
    assert metrics is not None
    assert [metrics[key] for key in METRICS] == [40.0, 100, None, 75, None]
    assert metrics["gpus"][2] == {"index": 2, **dict.fromkeys(METRICS), "gpuUtilization": 60}


def test_aggregate_cleans_bad_input() -> None:
    bad = {
        "gpuUtilization": float("nan"),
        "gpuMemoryUsed": True,
        "gpuMemoryTotal": "80",
        "gpuTemperature": float("inf"),
        "powerUsage": -3,
    }
    metrics = gpu.aggregate([bad])
    assert metrics is not None
    assert all(metrics[key] is None for key in METRICS)
    assert all(metrics["gpus"][0][key] is None for key in METRICS)


def test_aggregate_total_outside_the_contract_becomes_none() -> None:
    # eight 1 kW boards draw more than the contract's 5000 W for the flat field
    gpus = [{"index": i, "powerUsage": 1000.0} for i in range(8)]
    metrics = gpu.aggregate(gpus)
    assert metrics is not None
    assert metrics["powerUsage"] is None
    assert [g["powerUsage"] for g in metrics["gpus"]] == [1000.0] * 8
