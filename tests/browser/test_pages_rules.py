"""The pages' JavaScript follows the same rules as the Python the notebook and the
terminal use: terminal text (jobwatch/server/web/static/ansi.js against jobwatch.view.ansi)
and text for people (jobwatch/server/web/static/format.js against jobwatch.view.formatting), run in Chromium on the
same inputs, listed and generated."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobwatch.server import EmbeddedServer
from jobwatch.view import formatting
from jobwatch.view.ansi import spans, spans_to_wire
from tests.browser.conftest import PAGE_TIMEOUT_MS

pytestmark = pytest.mark.browser

ESC = "\x1b"
IMPORT = """async () => {
    window.ansi = await import("/assets/ansi.js");
    window.format = await import("/assets/format.js");
}"""
DRAW = """(texts) => texts.map((text) => {
    const runs = window.ansi.spans(text);
    return [runs.map((run) => run.text).join(""), window.ansi.spansToWire(runs)];
})"""


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    """A page of a real server with the pages' two rule modules imported."""
    with EmbeddedServer(config={"STALL_CHECK_INTERVAL": 0}) as server:
        context = browser.new_context()
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        page.goto(server.url + "/assets/fleet.html")  # any page of the server's origin
        page.evaluate(IMPORT)
        yield page
        context.close()


def python_drawn(text: str) -> list[Any]:
    runs = spans(text)
    return ["".join(run.text for run in runs), spans_to_wire(runs)]


LISTED = [
    f"{ESC}[1;31mERROR{ESC}[0m loss {ESC}[32mok{ESC}[39m done",
    f"{ESC}[91mx",
    f"{ESC}[104mx",
    f"{ESC}[38;5;208mx{ESC}[38;5;244my{ESC}[38;5;3mz",
    f"{ESC}[38;2;10;20;30mx{ESC}[48:2::10:20:30my{ESC}[38:5:200mz",
    f"{ESC}[2;3;4;7mx{ESC}[4:0my{ESC}[mz{ESC}[?25mw",
    f"{ESC}[1;3;4;7;31;42ma{ESC}[22;23;24;27;39;49mb",
    f"{ESC}[7ma{ESC}[31;7mb{ESC}[27;44;7mc",
    " 10%|#   | 1/10\r 20%|##  | 2/10\r 30%|### | 3/10",
    "epoch 1\r",
    "a\r\nb",
    "one\rtwo\nthree\rfour",
    "abc\r\r",
    f"{ESC}[33m10%\r20%",
    f"a{ESC}[2Jb{ESC}[1A{ESC}[2Kc",
    f"a{ESC}]0;window title\x07b{ESC}]8;;https://x.org{ESC}\\c",
    f"a{ESC}Pdevice control{ESC}\\b{ESC}(Bc{ESC}cd",
    "a\x07\x08\x00\x7fb\x9b",
    "a\tb\nc",
    f"{ESC}[38;5m{ESC}[38;2;1mx{ESC}[48;5;999my{ESC}[38;2;300;-1;20mz",
    f"{ESC}[1;{ESC}[;1mbold{ESC}[21mu",
    "emoji 😀 and accents é\r",
    "",
]


def test_listed_terminal_texts_draw_as_in_python(page: Any) -> None:
    assert page.evaluate(DRAW, LISTED) == [python_drawn(text) for text in LISTED]


PIECES = [
    "a", "b", " ", "\n", "\r", "\t", ESC, "[", "]", "P", "(", ";", ":", "0", "1", "2", "3",
    "4", "5", "7", "8", "9", "38", "48", "m", "?", "J", "\x07", "\\", "\x9b", "\x9c", "\x90",
    "\x85", "\x00", "\x7f", "é", "😀",
]  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.lists(st.sampled_from(PIECES), max_size=40).map("".join), min_size=1, max_size=20)
)
def test_any_terminal_text_draws_as_in_python(page: Any, texts: list[str]) -> None:
    assert page.evaluate(DRAW, texts) == [python_drawn(text) for text in texts]


DURATIONS = [None, -5.0, 0.0, 0.4, 0.5, 44.6, 59.5, 60.0, 192.0, 3599.4, 3600.0, 3720.0, 86399.0, 86400.0, 183600.0, math.inf]  # fmt: skip
COSTS = [None, 0.0, 1e-10, 4e-9, 0.000694444, 0.0100, 0.42, 0.999, 1.0, 12.345, 1234.5, 1234567.891, -0.5]  # fmt: skip
PERCENTS = [-3.0, 0.0, 29.3, 45.0, 99.96, 99.99, 100.0, 120.0, math.nan]
NUMBERS = [
    None,
    0.0,
    -0.0,
    0.23128,
    98.5,
    1.2e-05,
    12345.6,
    -0.5,
    1e20,
    3.0,
    0.0001,
    9999.4,
    9999.6,
]
MEMORY = [(None, None), (18000.0, 24000.0), (300.0, 800.0), (None, 8192.0), (2048.0, None), (128.0, 512.0), (2560.0, 8192.0)]  # fmt: skip
METRICS = [None, 87.4, 2.5, 3.5, 72.5, -0.4, 99.99]  # exact ties round to even, as Python


def test_text_for_people_reads_as_in_python(page: Any) -> None:
    js = page.evaluate(
        """([durations, costs, percents, numbers, memory, metrics]) => ({
            durations: durations.map((s) => format.formatDuration(s)),
            costs: costs.map((c) => format.formatCost(c, "QUBIC")),
            bare: costs.map((c) => format.formatCost(c, "")),
            percents: percents.map((p) => format.formatPercent(p)),
            numbers: numbers.map((n) => format.formatNumber(n)),
            memory: memory.map(([used, total]) => format.formatMemory(used, total)),
            metrics: metrics.map((m) => format.formatMetric(m, "°C")),
        })""",
        [
            [None if d is None or math.isinf(d) else d for d in DURATIONS],
            COSTS,
            [None if math.isnan(p) else p for p in PERCENTS],
            NUMBERS,
            MEMORY,
            METRICS,
        ],
    )
    assert js == {
        "durations": [formatting.format_duration(d) for d in DURATIONS],
        "costs": [formatting.format_cost(c, "QUBIC") for c in COSTS],
        "bare": [formatting.format_cost(c, "") for c in COSTS],
        "percents": [formatting.format_percent(p) for p in PERCENTS],
        "numbers": [formatting.format_number(n) for n in NUMBERS],
        "memory": [formatting.format_memory(u, t) for u, t in MEMORY],
        "metrics": [formatting.format_metric(m, "°C") for m in METRICS],
    }


RATES = [None, 0.0, 512.0, 1023.4, 1023.6, 1024.0, 1536.0, 1048576.0 * 12.35, 1e12, 1024.0**5 * 3]
SIZES = [None, 0.0, 460.8, 1023.0, 1024.0, 2355.2, 1e9]
SYSTEM = [
    {},
    {"cpuUtilization": 63.2, "memoryUsed": 12000, "memoryTotal": 32000, "processMemory": 2300,
     "diskUsed": 120000, "diskTotal": 500000, "diskRead": 1572864, "diskWrite": 0,
     "networkIn": 2048, "networkOut": 512},
]  # fmt: skip


def test_system_figures_read_as_in_python(page: Any) -> None:
    js = page.evaluate(
        """([rates, sizes, system]) => ({
            rates: rates.map((r) => format.formatRate(r)),
            sizes: sizes.map((s) => format.formatSize(s)),
            system: system.map((m) => format.formatSystem(m)),
        })""",
        [RATES, SIZES, SYSTEM],
    )
    assert js == {
        "rates": [formatting.format_rate(r) for r in RATES],
        "sizes": [formatting.format_size(s) for s in SIZES],
        "system": [formatting.format_system(m) for m in SYSTEM],
    }


FORMAT_ALL = """(values) => values.map((v) => [
    format.formatDuration(v), format.formatCost(v, "Q"), format.formatMetric(v, "%"),
    format.formatNumber(v), format.formatMemory(v, v * 4), format.formatRate(Math.abs(v)),
    format.formatSize(Math.abs(v)),
])"""
NUMBER = st.one_of(
    st.floats(min_value=-1e7, max_value=1e9, allow_nan=False),
    st.integers(-100, 10_000).map(lambda n: n / 8),  # exact binary ties: x.5, x.25, x.125
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(NUMBER, min_size=1, max_size=30))
def test_any_number_reads_as_in_python(page: Any, values: list[float]) -> None:
    assert page.evaluate(FORMAT_ALL, values) == [
        [
            formatting.format_duration(v),
            formatting.format_cost(v, "Q"),
            formatting.format_metric(v, "%"),
            formatting.format_number(v),
            formatting.format_memory(v, v * 4),
            formatting.format_rate(abs(v)),
            formatting.format_size(abs(v)),
        ]
        for v in values
    ]
