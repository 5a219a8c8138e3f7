"""Text from a server or a job, made safe to print on a terminal.

Everything the ``jobwatch`` command prints that it did not write itself (job
names, ids, statuses, currencies, operations, results, errors, log messages,
the server's error messages) goes through :func:`clean` first, so a job
cannot retitle the window (OSC 0), write to the clipboard (OSC 52), clear the
screen, move the cursor or recolour the terminal.
"""

from __future__ import annotations

import re

__all__ = ["clean"]

# ECMA-48 (5th edition, 1991) sections 5.4-5.6, with their C1 forms (0x80-0x9F)
# as xterm reads them: a control string (OSC, DCS, SOS, PM, APC) runs to ST
# (ESC \ or 0x9C) or, for OSC, BEL; one left open runs to the end of the text,
# since the terminal would swallow the rest as well. A CSI sequence is
# parameter bytes (0x30-0x3F), intermediate bytes (0x20-0x2F) and one final
# byte (0x40-0x7E); any other escape is ESC, intermediates and a final byte.
_ESCAPE = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)"
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# What is left of C0 (but tab and newline), DEL and C1 after the sequences go.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\t\n\u2028\u2029]")


def clean(text: object, *, single_line: bool = False) -> str:
    """``text`` as a terminal may show it: escape sequences removed, controls replaced.

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
        The text with every escape sequence (CSI, OSC, DCS, SOS, PM, APC and
        two-byte escapes, in their 7-bit and 8-bit forms) removed and every
        other C0 control but tab and newline, DEL and every C1 control
        (U+0080-U+009F) replaced by ``"?"``.
    """
    out = _CONTROL.sub("?", _ESCAPE.sub("", str(text)))
    return _LINE_BREAKS.sub(" ", out) if single_line else out
