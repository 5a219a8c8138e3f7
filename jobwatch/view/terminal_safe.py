"""Text from a server or a job, made safe to print on a terminal.

Everything the ``jobwatch`` command prints that it did not write itself (job
names, ids, statuses, currencies, operations, results, errors, alert titles,
metric names, the server's error messages) goes through :func:`clean` first,
so a job cannot retitle the window (OSC 0), write to the clipboard (OSC 52),
clear the screen, move the cursor or recolour the terminal. Log messages go
through :func:`jobwatch.view.ansi.plain` or :func:`jobwatch.view.ansi.for_terminal`,
which read escapes the same way and keep colours on a colour terminal.

Both show the Unicode controls that reorder or hide text (:data:`FORMAT_CONTROLS`:
the bidirectional embeddings, overrides, isolates and marks, and the
zero-width characters) as visible ``\\uXXXX`` escapes (:func:`visible_controls`):
a job named ``spoof-<U+202E>1`` would otherwise show as ``spoof-1`` reversed,
``1-foops``, and carry the reversal into the text beside it. Right-to-left
text itself is left as it is.
"""

from __future__ import annotations

import re

from jobwatch.view import ansi

__all__ = ["FORMAT_CONTROLS", "clean", "visible_controls"]

_LINE_BREAKS = re.compile(r"[\t\n\u2028\u2029]")

FORMAT_CONTROLS = (
    "\u061c"  # ARABIC LETTER MARK
    "\u200b\u200c\u200d"  # ZERO WIDTH SPACE, NON-JOINER, JOINER
    "\u200e\u200f"  # LEFT-TO-RIGHT and RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, POP DIRECTIONAL FORMATTING, overrides
    "\u2060"  # WORD JOINER
    "\u2066\u2067\u2068\u2069"  # isolates and POP DIRECTIONAL ISOLATE
    "\ufeff"  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
)
"""Characters shown as ``\\uXXXX`` on a terminal: Unicode's explicit bidirectional
formatting characters (UAX #9, section 2: embeddings, overrides, isolates and the
implicit marks) and the zero-width characters that hide inside a name."""
_CONTROLS = re.compile(f"[{FORMAT_CONTROLS}]")


def visible_controls(text: str) -> str:
    """``text`` with each of :data:`FORMAT_CONTROLS` replaced by its visible escape
    (``\\u202e``), so it can neither reorder nor hide what a terminal shows."""
    return _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
        unterminated strings, which run to the end of the text); and each of
        :data:`FORMAT_CONTROLS` as its ``\\uXXXX`` escape (:func:`visible_controls`).
    """
    out = visible_controls(ansi.plain(str(text)))
    return _LINE_BREAKS.sub(" ", out) if single_line else out
