"""Bidi controls and invisible characters in job text reach a terminal as visible escapes."""

from __future__ import annotations

import pytest

import jobwatch.cli.commands as cli
from jobwatch import Client
from jobwatch.server import EmbeddedServer
from jobwatch.view.formatting import format_log_line
from jobwatch.view.terminal_safe import FORMAT_CONTROLS, clean


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("spoof-\u202e1", "spoof-\\u202e1"),  # right-to-left override: would show 1-foops
        ("a\u2066b\u2069c", "a\\u2066b\\u2069c"),  # isolates
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # marks
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),  # invisible
        ("ümlaut 中文 عربي", "ümlaut 中文 عربي"),  # right-to-left text itself stays
    ],
)
def test_bidi_controls_and_invisible_characters_are_shown_escaped(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert clean(raw, single_line=True) == shown


def test_every_listed_control_is_escaped() -> None:
    for char in FORMAT_CONTROLS:
        assert clean(f"x{char}y") == f"x\\u{ord(char):04x}y"


def test_a_log_line_shows_them_escaped_too() -> None:
    for color in (True, False):
        line = format_log_line({"level": "info", "message": "spoof-\u202e1"}, color=color)
        assert "\u202e" not in line and "spoof-\\u202e1" in line


def test_jobs_list_shows_a_spoofed_name_escaped(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(server.url) as client:
        client.create_job(job_id="spoof", name="spoof-\u202e1")
    assert cli.main(["jobs", "list", "--url", server.url]) == 0
    out = capsys.readouterr().out
    assert "\u202e" not in out and "spoof-\\u202e1" in out
