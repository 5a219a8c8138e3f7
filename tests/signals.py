"""Children that a test interrupts (SIGINT, as Ctrl-C) must be able to get it.

A shell starts a background job (``pytest ... &``) with SIGINT ignored, and an
ignored signal stays ignored across ``fork`` and ``exec``; Python then leaves
it so (it installs its KeyboardInterrupt handler only where SIGINT was not
ignored at startup), and the child never sees the test's Ctrl-C. Such a child
is started with SIGINT at its default, as a terminal's foreground job is.
"""

from __future__ import annotations

import signal


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # in the child, before exec


INTERRUPTIBLE = {"preexec_fn": _default_sigint}
"""``subprocess.Popen(..., **INTERRUPTIBLE)``: the child gets SIGINT as a foreground job."""
