"""``jobwatch top``: the app driven headless by Textual's Pilot against a real server,
the command's bad input, and the real command in a tmux terminal."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobwatch import Client
from jobwatch.cli.commands import main
from jobwatch.terminal.top import BUDGET_COLUMN, COST_COLUMN, TopApp


def fleet(client: Client, clock: Any) -> None:
    """Five jobs, each change a second after the one before (the server's fake clock)."""
    for job_id, name, progress in (
        ("r-old", "resnet old", 30),
        ("bert", "bert base", 90),
        ("r-new", "resnet new", 60),
    ):
        client.create_job(job_id=job_id, name=name, price_per_hour=3.6)
        client.report_progress(job_id, "w", progress)
        clock.advance(1)
    client.create_job(job_id="waits", name="queued")
    client.create_job(job_id="done", name="finished")
    client.report_progress("done", "w", 50)
    client.complete_job("done", "w")
    clock.advance(1)


async def until(pilot: Any, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def shown(app: TopApp) -> list[str]:
    return [str(row.key.value) for row in app.table.ordered_rows]


def test_top_shows_the_fleet_and_its_keys_sort_filter_and_open_watch(
    client: Client, clock: Any
) -> None:
    fleet(client, clock)
    watched: list[str] = []
    app = TopApp(client, refresh=0.05, open_watch=lambda c, job_id: watched.append(job_id))

    async def drive() -> None:
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: len(shown(app)) == 5)
            # running first, newest update first; then pending, then finished
            assert shown(app) == ["r-new", "bert", "r-old", "waits", "done"]
            assert app.totals_line.startswith("5 jobs: 3 running, 1 pending")
            await pilot.press("s")  # next column: name
            await until(pilot, lambda: shown(app)[0] == "bert")
            assert app.sort == "name"
            await pilot.press("r")
            await until(pilot, lambda: shown(app)[0] == "r-old")  # "resnet old" last by name
            await pilot.press("f", "f")  # all -> pending -> running
            await until(pilot, lambda: set(shown(app)) == {"r-new", "bert", "r-old"})
            await pilot.press("slash", *"RESNET", "enter")
            await until(pilot, lambda: set(shown(app)) == {"r-new", "r-old"})
            await pilot.press("escape")  # clears the filters, not the order
            await until(pilot, lambda: len(shown(app)) == 5)
            await pilot.press("r", *"s" * 8)  # name, then 7 more sort keys, then status again
            await until(pilot, lambda: shown(app)[0] == "r-new")
            assert (app.sort, app.descending) == ("status", False)
            client.report_progress("waits", "w", 5)  # starts running: moves up live
            # The table, not the state (app.rows()): it is redrawn on the next tick, and a
            # redraw keeps the cursor on its job, so a cursor moved before it lands elsewhere.
            await until(pilot, lambda: shown(app) == ["waits", "r-new", "bert", "r-old", "done"])
            app.table.move_cursor(row=1)
            await pilot.pause()
            assert app.selected_job() == "r-new"
            await pilot.press("enter")
            await until(pilot, lambda: bool(watched))
            await pilot.press("q")

    # In a thread of its own: Playwright's sync API (the browser tests' session
    # fixture, when this module shares a worker with them) keeps an event loop
    # running in this thread, and asyncio.run refuses to nest in it.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(drive())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    assert watched == ["r-new"] and app.return_code == 0


def test_top_shows_budget_and_projected_spend_coloured_when_over(
    client: Client, clock: Any
) -> None:
    """ "over" (1 a second) spent 60 of its 50; "heading" (0.01 a second) has spent 0.60
    of its 1, but at 1 % in its first second, then none for 59 s, projects about 59;
    "fine" projects that under its 500."""
    for job_id, price, budget in (
        ("over", 3600.0, 50.0),
        ("heading", 36.0, 1.0),
        ("fine", 36.0, 500.0),
    ):
        client.ensure_job(job_id, worker_id="w", price_per_hour=price, budget=budget)
        client.report_progress(job_id, "w", 0)
    clock.advance(1)
    for job_id in ("heading", "fine"):
        client.report_progress(job_id, "w", 1)
    clock.advance(59)
    client.report_progress("over", "w", 50)
    app = TopApp(client, refresh=0.05, open_watch=lambda c, job_id: None)
    seen: dict[str, list[Any]] = {}

    async def drive() -> None:
        async with app.run_test(size=(200, 30)) as pilot:
            await until(pilot, lambda: len(shown(app)) == 3)
            for job_id in ("over", "heading", "fine"):
                seen[job_id] = list(app.table.get_row(job_id))
            await pilot.press("q")

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(drive())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    cost, budget = COST_COLUMN, BUDGET_COLUMN

    def styles(cell: Any) -> set[str]:
        return {str(span.style) for span in cell.spans}

    assert str(seen["over"][budget]).endswith("/ budget 50.00 QUBIC")
    assert styles(seen["over"][cost]) == {"bold red"} == styles(seen["over"][budget])
    assert str(seen["heading"][budget]).endswith(" / budget 1.00 QUBIC")
    assert styles(seen["heading"][budget]) == {"bold yellow"} and not styles(seen["heading"][cost])
    assert not styles(seen["fine"][budget]) and not styles(seen["fine"][cost])


def test_top_refuses_bad_input_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["top", "--status", "done"])
    assert exc.value.code == 2 and "invalid choice: 'done'" in capsys.readouterr().err
    assert main(["top", "--url", "ftp://nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "url must start with http://" in err
    assert main(["top", "--url", "http://127.0.0.1:9"]) == 3
    assert capsys.readouterr().err.startswith("jobwatch: cannot reach the server")


def test_top_needs_a_terminal(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top", "--url", server.url]) == 2  # pytest's stdin is not a terminal
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a terminal" in err


# -- the real command in a terminal -------------------------------------------------------------


def tmux_or_skip() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is required in CI for the terminal test of jobwatch top")
        pytest.skip("tmux is not installed")
    return tmux


class Pane:
    """One detached tmux session running a command, read with capture-pane."""

    def __init__(self, tmux: str, command: list[str]) -> None:
        self.tmux = tmux
        self.name = f"jobwatch-top-{uuid.uuid4().hex[:8]}"
        # The command's exit code goes to a file: tmux may mark the pane dead before it
        # has reaped the process, and then shows no #{pane_dead_status} (seen under load).
        self.status_file = Path(tempfile.mkdtemp(prefix="jobwatch-top-")) / "status"
        wrapped = ["sh", "-c", f'"$@"; echo $? > {self.status_file}', "sh", *command]
        subprocess.run(
            [tmux, "new-session", "-d", "-s", self.name, "-x", "160", "-y", "40", *wrapped],
            check=True,
            timeout=10,
        )
        subprocess.run(
            [tmux, "set-option", "-t", self.name, "remain-on-exit", "on"], check=True, timeout=10
        )

    def text(self) -> str:
        result = subprocess.run(
            [self.tmux, "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return result.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([self.tmux, "send-keys", "-t", self.name, *keys], check=True, timeout=10)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed it; it shows:\n{text}")
            time.sleep(0.1)

    def exit_status(self) -> int | None:
        """The command's exit code once it has ended, else ``None``."""
        text = self.status_file.read_text() if self.status_file.exists() else ""
        return int(text) if text.strip() else None

    def kill(self) -> None:
        subprocess.run(
            [self.tmux, "kill-session", "-t", self.name],
            timeout=10,
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.status_file.parent, ignore_errors=True)


@pytest.mark.slow
def test_jobwatch_top_in_a_real_terminal(client: Client, server: Any, clock: Any) -> None:
    tmux = tmux_or_skip()
    fleet(client, clock)
    env = ["env", f"PYTHONPATH={os.getcwd()}", "TERM=xterm-256color", "JOBWATCH_TOKEN="]
    pane = Pane(tmux, [*env, sys.executable, "-m", "jobwatch", "top", "--url", server.url])
    try:
        screen = pane.wait_for(lambda text: "resnet new (r-new)" in text and "finished" in text)
        assert "5 jobs: 3 running, 1 pending" in screen
        lines = screen.splitlines()
        order = [
            job
            for line in lines
            for job in ("r-new", "bert", "r-old", "waits", "done")
            if f"({job})" in line
        ]
        assert order == ["r-new", "bert", "r-old", "waits", "done"]
        # Enter on the finished job hands the terminal to `jobwatch watch`, which
        # prints its end; Enter again comes back to the table.
        pane.keys("Down", "Down", "Down", "Down", "Enter")
        pane.wait_for(
            lambda text: "job finished (done) completed" in text and "press Enter" in text
        )
        pane.keys("Enter")  # back to the table, not the watch's last screen
        pane.wait_for(lambda text: "resnet new (r-new)" in text and "press Enter" not in text)
        pane.keys("q")
        pane.wait_for(lambda _text: pane.exit_status() is not None)
        assert pane.exit_status() == 0
    finally:
        pane.kill()
