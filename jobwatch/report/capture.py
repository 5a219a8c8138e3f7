"""What a run prints becomes its log: ``sys.stdout`` and ``sys.stderr`` teed into a Reporter.

:class:`OutputCapture` puts a :class:`_Tee` in place of each stream: every
write goes to the stream it was meant for first (the terminal, the notebook
cell, a pipe), unchanged, and each complete line is then queued as a log line
(stdout ``info``, stderr ``warning``). This is W&B's ``console="wrap"`` mode
(Python-level; what C code writes to the file descriptors directly is not
seen), chosen over redirecting the descriptors because it costs no thread and
no pipe, keeps the streams' own buffering and survives a Jupyter kernel.

W&B's console capture has had lines doubled (a wrapper wrapped twice, or both
a wrapper and a redirect) and lost (a partial line at exit, a fork). Here:

- installing on a stream already teed to the same Reporter does nothing, and
  each line is queued once, by the tee that saw it first;
- a partial line is kept until its newline, and queued on :meth:`OutputCapture.stop`;
  each thread's partial line is its own, so two threads printing at once never
  splice their halves into one line (and no lock is taken on a write);
- ``\\r`` progress frames (tqdm) stay in the line, as the log view renders them
  (the text after the last ``\\r``); the kept partial line holds only the newest
  frame, so a bar that never ends its line costs no memory;
- nothing jobwatch writes itself feeds back: writes by a reporter's sender
  thread, by a thread inside a jobwatch request, or inside
  :func:`jobwatch.client.own_io.own_output` (the text view of ``track()``) are
  printed but not queued;
- after ``fork()`` the child's tees go on into the child's reporter (whose
  outbox and sender are renewed by the reporter's own fork hook), with no
  partial line of the parent's.

What a write costs (``python -m benchmarks --only capture``): a ``print()``
is two writes, the text and ``"\\n"``; the first keeps the text as the
thread's partial line, the second queues it with the time. Both are a few
dict operations; the stream's own write comes first, unchanged.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TextIO

from jobwatch.client.own_io import OWN_THREADS
from jobwatch.contract.basics import MAX_MESSAGE_BYTES

__all__ = ["OutputCapture"]

_get_ident = threading.get_ident
_now = time.time

Forward = Callable[[str, str, float], None]
"""``forward(level, message, created)``: queue one log line."""


class _Tee:
    """A text stream that writes through to ``inner`` and queues complete lines.

    Each thread's partial line is its own (``_partials``, keyed by thread
    ident), so that no lock is needed: a thread's entry is touched only by that
    thread (and by :meth:`stop` and the fork hook), and single dict operations
    are atomic. Two threads printing at once therefore never splice their
    halves into one line.
    """

    def __init__(self, inner: TextIO, level: str, forward: Forward, owner: object) -> None:
        self._inner = inner
        self._level = level
        self._forward = forward
        self._owner = owner
        self._partials: dict[int, str] = {}
        self.active = True
        _tees.add(self)

    def write(self, text: str) -> int:
        written = self._inner.write(text)
        if not self.active or not text:
            return written
        ident = _get_ident()
        if ident in OWN_THREADS:  # jobwatch's own output (is_own_thread, without the call)
            return written
        partials = self._partials
        if text == "\n":  # print()'s second write: the line is what this thread kept
            line = partials.pop(ident, "")
            if line:
                self._forward(self._level, line, _now())
            return written
        if "\n" not in text:
            partial = partials.get(ident, "") + text
            if "\r" in text:
                partial = _newest_frame(partial)
            if len(partial) <= MAX_MESSAGE_BYTES:
                partials[ident] = partial
                return written
            partials.pop(ident, None)
            lines = [partial]
        else:
            *lines, rest = (partials.pop(ident, "") + text).split("\n")
            if rest:
                partials[ident] = rest
        now = _now()
        for line in lines:
            if line:
                self._forward(self._level, line, now)
        return written

    def flush(self) -> None:
        self._inner.flush()

    def stop(self) -> None:
        """Queue the partial lines, if any, and stop queueing (writes still go through)."""
        self.active = False
        partials, self._partials = self._partials, {}
        now = _now()
        for partial in list(partials.values()):
            if partial.strip("\r"):
                self._forward(self._level, partial, now)

    def _after_fork(self) -> None:
        self._partials = {}

    def __getattr__(self, name: str) -> Any:
        # encoding, errors, fileno, isatty, buffer, ... are the stream's own
        return getattr(self._inner, name)


def _newest_frame(text: str) -> str:
    """``text`` cut to what the log view shows of it: ``\\r`` and the last non-empty frame."""
    frames = [frame for frame in text.split("\r") if frame]
    return "\r" + frames[-1] if frames else ""


class OutputCapture:
    """Tee ``sys.stdout`` (as ``info``) and ``sys.stderr`` (as ``warning``) into ``forward``.

    Parameters
    ----------
    forward:
        Called with ``(level, line, created)`` for each complete line, from the
        thread that printed it; must return at once (a Reporter's queue).
    owner:
        What the lines go to (a Reporter): a stream already teed for the same
        owner is left as it is, so no line is queued twice.
    """

    def __init__(self, forward: Forward, owner: object) -> None:
        self._tees: list[tuple[str, _Tee]] = []
        for name, level in (("stdout", "info"), ("stderr", "warning")):
            stream = getattr(sys, name)
            if stream is None or (isinstance(stream, _Tee) and stream._owner is owner):
                continue
            tee = _Tee(stream, level, forward, owner)
            setattr(sys, name, tee)
            self._tees.append((name, tee))

    def stop(self) -> None:
        """Queue partial lines, and put the streams back where this capture's tees
        are still in place (a tee wrapped by someone since stays, passing writes through)."""
        for name, tee in self._tees:
            tee.stop()
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._inner)
        self._tees = []


_tees: weakref.WeakSet[_Tee] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tee in list(_tees):
        tee._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
