"""SIGTERM ends the job: what a reporter's process does when it is told to stop.

``torchrun`` sends SIGTERM to the surviving ranks when one rank dies; SLURM's
``scancel``, Kubernetes and a spot reclaim stop a worker the same way. Python's
default action for SIGTERM ends the process without running ``atexit``, so a
reporter would never end its job: it would stay ``running``, then ``stalled``,
its cost still climbing. The first :class:`~jobwatch.report.reporter.Reporter`
of a process installs :func:`_on_sigterm` (one handler for all reporters), which
gives them :data:`SIGTERM_TIMEOUT` seconds in all to deliver what they hold and
mark their jobs failed, then puts the default action back and sends the signal
again, so that the process ends as it would have (status -15, or 143 in a shell).

A library must not take a signal from its user: the handler is installed only
from the main thread (the only one Python lets set handlers) and only while
SIGTERM has its default action. A program with a SIGTERM handler of its own
keeps it and calls ``reporter.fail("terminated by SIGTERM")`` there
(docs/python.md, "Stopped by a signal").
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["SIGTERM_TIMEOUT", "TERMINATED", "install"]

SIGTERM_TIMEOUT = 2.0
"""Seconds all reporters get in all to deliver at SIGTERM. The launchers that send
it wait longer before SIGKILL (``docker stop`` 10 s; SLURM's ``KillWait``,
Kubernetes' ``terminationGracePeriodSeconds`` and torchrun 30 s by default), and
training code's own cleanup should have the rest."""

TERMINATED = "terminated by SIGTERM"
"""The error a job gets when its process is stopped by SIGTERM."""

_fail_all: Callable[[float], None] | None = None


def install(fail_all: Callable[[float], None]) -> None:
    """Install the SIGTERM handler, if this is the main thread and SIGTERM has its
    default action; otherwise do nothing (never raises).

    Parameters
    ----------
    fail_all:
        Called at SIGTERM, on a thread of its own, with a deadline (monotonic
        seconds): fails every open reporter's job and waits for delivery until then.
    """
    global _fail_all
    _fail_all = fail_all
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):  # no SIGTERM here
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Fail the reporters' jobs within :data:`SIGTERM_TIMEOUT`, then die by ``signum``.

    The work runs on a thread of its own: this handler interrupts the main
    thread anywhere, maybe holding a lock the delivery needs, and the join's
    timeout bounds the wait whatever happens there.
    """
    deadline = time.monotonic() + SIGTERM_TIMEOUT
    fail_all = _fail_all
    if fail_all is not None:
        worker = threading.Thread(
            target=fail_all, args=(deadline,), name="jobwatch-sigterm", daemon=True
        )
        with contextlib.suppress(RuntimeError):  # no thread can start: die at once
            worker.start()
            worker.join(max(0.0, deadline - time.monotonic()) + 0.5)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader or multiprocessing worker, which its parent
    stops with SIGTERM) must not fail its parent's job: it gets the default back."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
