"""A real IPython kernel driven by jupyter_client, for tests of what a notebook gets.

The kernel runs this interpreter with the repository on its path; every
message it publishes on iopub is kept, so a test sees the widget messages
(``comm_open``, ``comm_msg``, ``comm_close``) the browser would receive, with
their size on the wire.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def wire_size(msg: dict[str, Any]) -> int:
    """Bytes of a message's JSON parts and binary buffers, as the browser receives them."""
    parts = (msg["header"], msg["parent_header"], msg["metadata"], msg["content"])
    size = sum(len(json.dumps(part, default=str)) for part in parts)
    return size + sum(len(memoryview(buffer).cast("B")) for buffer in msg.get("buffers") or [])


@dataclass
class Cell:
    """What running one cell published: every iopub message, and its result."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] == kind]

    def text(self) -> str:
        return "".join(m["content"].get("text", "") for m in self.of_type("stream"))

    def error(self) -> str | None:
        errors = self.of_type("error")
        return "\n".join(errors[0]["content"]["traceback"]) if errors else None


class Kernel:
    """One kernel for the tests of a module."""

    def __init__(self) -> None:
        from jupyter_client.manager import KernelManager

        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self.manager = KernelManager(
            kernel_cmd=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        )
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60.0) -> Cell:
        """Run ``code`` as a cell; return what it published until the kernel was idle again."""
        msg_id = self.client.execute(code)
        cell = Cell()
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"the cell did not finish in {timeout} s:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id and msg["msg_type"] != "comm_msg":
                continue
            cell.messages.append(msg)
            if (
                msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                break
        cell.reply = self.client.get_shell_msg(timeout=timeout)["content"]
        return cell

    def value(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the kernel."""
        cell = self.run(f"import json as _j; print(_j.dumps({expression}))")
        assert cell.error() is None, cell.error()
        return json.loads(cell.text().strip().splitlines()[-1])

    def restart(self) -> None:
        """Restart the kernel process (a person's "Restart kernel"): a new one, nothing kept."""
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=60)
        while True:  # what the old kernel published is no cell's
            try:
                self.client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                break

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@contextlib.contextmanager
def kernel_with_server(imports: str = "jobwatch") -> Iterator[Kernel]:
    """A kernel that ran ``import {imports}``, ``server = jobwatch.serve()`` and
    ``client = jobwatch.Client(server.url)``; stopped at the end (skipped without
    ipykernel)."""
    import pytest

    pytest.importorskip("ipykernel")
    k = Kernel()
    setup = k.run(
        f"import {imports}\nserver = jobwatch.serve()\nclient = jobwatch.Client(server.url)\n"
    )
    assert setup.error() is None, setup.error()
    try:
        yield k
    finally:
        k.stop()
