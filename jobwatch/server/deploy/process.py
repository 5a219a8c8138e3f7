"""A jobwatch server in a child process: ``jobwatch serve`` as shipped.

Used by the tests, the benchmarks and the remote-worker notebook, which all
need the real gunicorn server and its real URL (``--port 0`` picks a free one).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

_URL = re.compile(r"serving on (http://\S+)")
TERM_RESEND = 1.0
"""Seconds between the SIGTERMs :meth:`ServerProcess.stop` sends until the server exits."""

__all__ = ["ServerProcess", "serve_command"]


class ServerProcess:
    """Start ``command`` (which prints ``serving on http://...``) in its own process group.

    Parameters
    ----------
    command:
        The argv to run; default: ``python -m jobwatch serve --port 0 --db :memory:``.
    env:
        Extra environment variables.
    startup_timeout:
        Seconds to wait for the URL line.

    Attributes
    ----------
    url, ws_url:
        Where the server listens.

    Raises
    ------
    RuntimeError
        The server exited or printed no URL in time; the message holds its output.
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.command = list(command or serve_command(":memory:"))
        handle, name = tempfile.mkstemp(prefix="jobwatch-serve-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.url = self._wait_for_url(startup_timeout)
        self.ws_url = "ws" + self.url[len("http") :] + "/ws"

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _URL.search(self.output())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{' '.join(self.command)} did not start:\n{self.output()}")

    @property
    def pid(self) -> int:
        """The process id of the server's master process."""
        return self.proc.pid

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and worker), no clean-up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful), then SIGKILL after ``timeout`` seconds.

        The server's child processes (gunicorn's workers) get SIGTERM again
        every :data:`TERM_RESEND` seconds until the server has exited: a worker
        still booting (between its fork and installing its own signal handlers,
        up to a second or two after the URL line) loses the signal, and its
        master would wait out gunicorn's graceful timeout (10 s) before killing
        it. The server's own process has its handlers before it prints the URL,
        so it is signalled once.
        """
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.proc.wait(max(0.0, min(TERM_RESEND, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        self.kill()
                        break
                with contextlib.suppress(psutil.Error):  # exited meanwhile
                    for child in psutil.Process(self.proc.pid).children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            child.send_signal(signal.SIGTERM)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_command(db: str | Path, *extra: str) -> list[str]:
    """argv of ``python -m jobwatch serve --port 0 --db DB [extra...]`` with this interpreter."""
    return [sys.executable, "-m", "jobwatch", "serve", "--port", "0", "--db", str(db), *extra]
