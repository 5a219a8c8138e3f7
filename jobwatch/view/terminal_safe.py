"""Text from a server or a job, made safe to print on a terminal.

Everything the ``jobwatch`` command prints that it did not write itself (job
names, ids, statuses, currencies, operations, results, errors, alert titles,
metric names, the server's error messages) goes through :func:`clean` first,
so a job cannot retitle the window (OSC 0), write to the clipboard (OSC 52),
clear the screen, move the cursor or recolour the terminal. Log messages go
through :func:`jobwatch.view.ansi.plain` or :func:`jobwatch.view.ansi.for_terminal`,
which read escapes the same way and keep colours on a colour terminal.
"""

from __future__ import annotations

import re

from jobwatch.view import ansi

__all__ = ["clean"]

_LINE_BREAKS = re.compile(r"[\t\n\u2028\u2029]")


def clean(text: object, *, single_line: bool = False) -> str:
    """``text`` as a terminal would show it, with nothing that could act on the terminal.

    Parameters
    ----------
    text:
        Anything that came from a server or a job (not a ``str``: its ``str()``).
    single_line:
        For a field shown on one line (a name, a status, an operation):
        newlines, tabs and the Unicode line and paragraph separators become
        spaces. Otherwise tabs and newlines stay.

    Returns
    -------
    str
        :func:`jobwatch.view.ansi.plain` of the text: every escape sequence (CSI,
        OSC, DCS, SOS, PM, APC and two-byte escapes, 7-bit and 8-bit forms)
        and every C0 control but tab and newline, DEL and every C1 control
        (U+0080-U+009F) removed; a line keeps only what follows its last
        carriage return, as a terminal shows it (ECMA-48; xterm's reading of
        unterminated strings, which run to the end of the text).
    """
    out = ansi.plain(str(text))
    return _LINE_BREAKS.sub(" ", out) if single_line else out
