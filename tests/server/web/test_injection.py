"""Nothing a job sends runs in the viewer's page or terminal.

Every remote string (name, id, status, currency, operation, result, error,
log level and message, the server's error messages) is escaped where it
reaches HTML and cleaned where it reaches a terminal, in every front-end.
Rows already stored with hostile text (written before the server checked
currencies) are planted straight into the database.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

import jobwatch.cli.commands as cli
from jobwatch import Client
from jobwatch.notebook import view as view_module
from jobwatch.notebook.monitor import JobMonitor, MonitorView
from jobwatch.server import EmbeddedServer
from jobwatch.server.storage.schema import jobs
from jobwatch.terminal.watch import PipedView, Watcher, render_final, render_status
from jobwatch.view.state import MonitorState
from jobwatch.view.terminal_safe import FORMAT_CONTROLS, clean

MARKUP = '<base href=//x><img src=x onerror="alert(1)">'
TERMINAL = "\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b31m\x9d0;t\x9c\x07\rshown"
HOSTILE = MARKUP + TERMINAL

# What must never reach a terminal: ESC, other C0 controls but tab and newline, DEL, C1.
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# -- the cleaning function ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;title\x07ok", "ok"),  # OSC 0: window title
        ("\x1b]52;c;ZXZpbA==\x1b\\ok", "ok"),  # OSC 52: clipboard, ST-terminated
        ("\x1b[2J\x1b[Hok", "ok"),  # clear screen, cursor home
        ("\x1b[38;5;196mred\x1b[0m", "red"),  # SGR colours are escape sequences too
        ("\x9b31mred", "red"),  # 8-bit CSI
        ("\x9d0;title\x9cok", "ok"),  # 8-bit OSC and ST
        ("\x90qdcs\x1b\\ok", "ok"),  # DCS
        ("a\x1bcb", "ab"),  # RIS: a two-byte escape
        ("a\x85b\x07c\x7fd", "abcd"),  # NEL, BEL, DEL
        ("spoof\rreal", "real"),  # what a terminal shows after a carriage return
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("unterminated \x1b]0;title", "unterminated "),
        ("ümlaut 中文 🙂", "ümlaut 中文 🙂"),
    ],
)
def test_clean_removes_escapes_and_replaces_controls(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_clean_single_line_joins_lines() -> None:
    assert clean("a\nb\tc\u2028d", single_line=True) == "a b c d"
    assert clean(42) == "42"


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_clean_leaves_no_control_and_no_line_break_in_a_single_line(text: str) -> None:
    out = clean(text, single_line=True)
    assert not UNSAFE.search(out)
    assert "\n" not in out and "\t" not in out
    assert clean(out, single_line=True) == out  # idempotent


@given(
    st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_categories=["Cc"], exclude_characters=FORMAT_CONTROLS
        )
    )
)
def test_clean_keeps_printable_text(text: str) -> None:
    assert clean(text) == text


# -- hostile rows in a real server ---------------------------------------------


@pytest.fixture
def hostile(server: EmbeddedServer) -> dict[str, Any]:
    """A finished job whose every text field is hostile, planted in the store."""
    with Client(server.url) as client:
        client.create_job(job_id="evil", price_per_hour=3.6)
        client.report_progress(
            "evil",
            "w",
            40,
            HOSTILE,
            logs=[{"level": "error", "message": HOSTILE}],
        )
        client.complete_job("evil", "w", "completed", {"note": HOSTILE})
    with server.services.store.engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == "evil").values(name=HOSTILE, currency=HOSTILE[:16])
        )
    with Client(server.url) as client:
        return client.monitor("evil")


def _state(snapshot: dict[str, Any]) -> MonitorState:
    state = MonitorState()
    state.load_snapshot(snapshot)
    state.job["error"] = HOSTILE
    return state


def test_jobs_list_cleans_every_field(hostile, server, capsys) -> None:
    assert cli.main(["jobs", "list", "--url", server.url]) == 0
    out = capsys.readouterr().out
    assert not UNSAFE.search(out)
    assert "pwned" not in out  # the title text went with its escape sequence


def test_watch_cleans_status_result_and_error(hostile) -> None:
    state = _state(hostile)
    state.job["status"] = "failed"
    for text in (
        render_status(state),
        render_status(state, one_line=True),
        render_final(state),
    ):
        assert not UNSAFE.search(text.replace("\n", "")), text
    state.job["status"] = "completed"
    assert not UNSAFE.search(render_final(state).replace("\n", ""))


def test_watch_run_prints_nothing_unsafe(hostile, server) -> None:
    out = io.StringIO()
    with Client(server.url) as client:
        Watcher(client, "evil", out=out, tty=False).run()
    assert not UNSAFE.search(out.getvalue().replace("\n", ""))
    assert "error" in out.getvalue()  # the log line is there, cleaned


def test_piped_view_cleans_log_levels() -> None:
    state = MonitorState()
    state.add_logs([{"id": 1, "level": "\x1b[2Jinfo", "message": "m", "timestamp": None}])
    out = io.StringIO()
    PipedView(out).render(state)
    assert not UNSAFE.search(out.getvalue().replace("\n", ""))


@pytest.fixture
def lying_server() -> Any:
    """A real HTTP server answering every request with a hostile error message."""
    import threading

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    def app(environ: Any, start_response: Any) -> Any:
        body = {"error": {"code": "nope", "message": HOSTILE, "details": []}}
        return Response(json.dumps(body), 409, mimetype="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "list"],
        ["jobs", "create"],
        ["report", "j", "--progress", "1"],
        ["watch", "j"],
    ],
)
def test_cli_cleans_the_servers_error_messages(lying_server, capsys, command) -> None:
    assert cli.main([*command, "--url", lying_server]) == cli.EXIT_API_ERROR
    err = capsys.readouterr().err
    assert "pwned" not in err and not UNSAFE.search(err.replace("\n", ""))
    assert "shown" in err  # the message is shown, cleaned, as a terminal would


def _html_values(view: MonitorView) -> dict[str, str]:
    import ipywidgets

    return {
        name: part.value
        for name, part in vars(view).items()
        if isinstance(part, ipywidgets.HTML) and isinstance(part.value, str)
    }


def test_monitor_widgets_escape_every_remote_string(hostile, server) -> None:
    state = _state(hostile)
    state.alerts.append({"title": MARKUP, "text": MARKUP, "level": HOSTILE, "seq": 99})
    for status in ("completed", "failed", HOSTILE):
        state.job["status"] = status
        with JobMonitor("evil", server.url, widgets=True) as mon:
            mon.view.render(state, "live")
            values = _html_values(mon.view)
            assert values, "no HTML widgets found"
            for name, value in values.items():
                assert "<base" not in value and "<img" not in value, (name, value)
            # the reproduced case: the currency in the cost, shown in the live line
            assert "&lt;base href=//x&gt;" in mon.view.cost.value
            assert mon.view.cost.value in values["live"]
            assert "&lt;base" in values["title"]
            assert "&lt;img" in values["banner"]
            assert "&lt;base href=//x&gt;" in mon.view.operation.value
            assert mon.view.operation.value in values["live"]


def test_widget_result_is_escaped(hostile) -> None:
    html = view_module._final({"status": "completed", "result": {"x": MARKUP}})
    assert "<img" not in html and "&lt;img" in html
