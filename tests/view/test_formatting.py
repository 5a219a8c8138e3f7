"""The people-facing formatting shared by every front-end: pure functions, no IO."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from jobwatch.view.formatting import (
    format_bar,
    format_cost,
    format_duration,
    format_log_line,
    format_metrics,
    format_percent,
    format_rate,
    format_size,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.001, "<1s"),  # the seed's floor for a first estimate: not "0s" before the end
        (0.999, "<1s"),
        (59, "59s"),
        (61, "1m 01s"),
        (192, "3m 12s"),
        (3600, "1h 00m"),
        (3725, "1h 02m"),
        (2 * 86400 + 3 * 3600 + 59, "2d 03h"),
        (-5, "0s"),
        (None, "-"),
        (float("inf"), "-"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        (0.42, "QUBIC", "0.420 QUBIC"),
        (0, "QUBIC", "0.00 QUBIC"),
        (0.0042, "USD", "0.00420 USD"),
        (0.00001, "QUBIC", "0.0000100 QUBIC"),
        (0.000694, "QUBIC", "0.000694 QUBIC"),  # 1 s at 2.5/h: moving from the start
        (0.0099996, "QUBIC", "0.0100 QUBIC"),  # rounds up, keeps its 3 digits
        (0.01, "QUBIC", "0.0100 QUBIC"),  # ... and so does the value it rounded to
        (1.0, "QUBIC", "1.00 QUBIC"),
        (1234.5, "QUBIC", "1,234.50 QUBIC"),
        (1e-9, "QUBIC", "<0.00000001 QUBIC"),
        (-0.5, None, "-0.500"),
        (None, "QUBIC", "-"),
        (float("nan"), "QUBIC", "-"),
    ],
)
def test_format_cost(value: float | None, currency: str | None, text: str) -> None:
    assert format_cost(value, currency) == text


@pytest.mark.parametrize(
    ("percent", "bar"),
    [
        (0, "[" + "-" * 20 + "]"),
        (45.5, "[" + "#" * 9 + "-" * 11 + "]"),
        (100, "[" + "#" * 20 + "]"),
        (150, "[" + "#" * 20 + "]"),
    ],
)
def test_format_bar(percent: float, bar: str) -> None:
    assert format_bar(percent, 20) == bar


def test_format_bar_needs_a_width() -> None:
    with pytest.raises(ValueError, match="width"):
        format_bar(50, 0)


def test_format_metrics_big_gpu_in_gib() -> None:
    metrics = {
        "gpuUtilization": 87,
        "gpuMemoryUsed": 18000,
        "gpuMemoryTotal": 24000,
        "gpuTemperature": 72,
        "powerUsage": 350.4,
    }
    assert format_metrics(metrics) == "GPU 87%  mem 17.6/23.4 GiB  temp 72°C  power 350 W"


def test_format_metrics_small_memory_in_gib_too() -> None:
    metrics = {"gpuUtilization": 5, "gpuMemoryUsed": 300, "gpuMemoryTotal": 800}
    assert format_metrics(metrics) == "GPU 5%  mem 0.29/0.78 GiB  temp -  power -"


def test_format_metrics_nulls_are_dashes() -> None:
    dashes = "GPU -  mem -  temp -  power -"
    assert format_metrics(None) == dashes
    assert (
        format_metrics(dict.fromkeys(["gpuUtilization", "gpuMemoryUsed", "powerUsage"])) == dashes
    )
    assert "mem -/80.0 GiB" in format_metrics({"gpuMemoryUsed": None, "gpuMemoryTotal": 81920})


def test_format_log_line_local_time_and_colour() -> None:
    stamp = "2026-11-29T10:31:02.123Z"
    local = datetime(2026, 11, 29, 10, 31, 2, tzinfo=timezone.utc).astimezone()
    line = {"level": "warning", "timestamp": stamp, "message": "loss is nan"}
    assert format_log_line(line) == f"{local:%H:%M:%S} warning loss is nan"
    assert "\x1b[33mwarning" in format_log_line(line, color=True)
    assert "\x1b[31merror" in format_log_line({**line, "level": "error"}, color=True)
    assert "\x1b" not in format_log_line({**line, "level": "info"}, color=True)


def test_format_log_line_defuses_terminal_escapes() -> None:
    text = format_log_line({"level": "info", "message": "a\x1b[2Jb\nc\x07", "timestamp": None})
    assert text == "--:--:-- info    ab\nc"


def test_format_log_line_shows_the_last_frame_and_colours_only_when_asked() -> None:
    line = {
        "level": "info",
        "message": "10%\r\x1b[32m20%\x1b[0m done\x1b]0;title\x07",
        "timestamp": None,
    }
    assert format_log_line(line) == "--:--:-- info    20% done"
    assert format_log_line(line, color=True) == "--:--:-- info    \x1b[0;32m20%\x1b[0m done"


@pytest.mark.parametrize(
    ("progress", "text"),
    [
        (99.96, "99.9%"),
        (99.999999, "99.9%"),
        (100.0, "100.0%"),
        (29.3, "29.3%"),
        (0.05, "0.0%"),
        (-3.0, "0.0%"),
        (float("nan"), "0.0%"),
        (250.0, "100.0%"),
    ],
)
def test_format_percent_cuts_so_a_running_job_never_reads_100(progress: float, text: str) -> None:
    assert format_percent(progress) == text


def test_format_percent_pads_to_a_width() -> None:
    assert format_percent(5.55, 5) == "  5.5%"


def test_rates_and_sizes_read_in_binary_units() -> None:
    assert [format_rate(v) for v in (None, 0, 512, 1536, 12.35 * 1024**2, 3 * 1024**5)] == [
        "-", "0 B/s", "512 B/s", "1.5 KiB/s", "12.3 MiB/s", "3072.0 TiB/s"
    ]  # fmt: skip
    assert [format_size(v) for v in (None, 460.8, 1024, 2355.2)] == [
        "-", "0.45 GiB", "1.0 GiB", "2.3 GiB"
    ]  # fmt: skip
