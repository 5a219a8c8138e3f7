"""Terminal text from a job, as a terminal would show it.

Log lines carry what training code printed: tqdm frames separated by ``\\r``,
colours from ``logging`` colour formatters, Lightning or Hugging Face (ANSI
SGR sequences, ECMA-48 section 8.3.117), and now and then another escape
sequence (cursor moves, window titles, hyperlinks). :func:`spans` turns such
text into styled runs for the notebook's log view; :func:`plain` and
:func:`for_terminal` give it back for ``jobwatch watch`` without colours or
with SGR colours only.

What a terminal does, and what is done here:

- SGR (``ESC [ ... m``) sets colours and bold/dim/italic/underline/inverse;
  16 palette colours, 256 indexed colours and 24-bit colours, with ``;`` or
  ``:`` between the parameters (ITU T.416 form).
- ``\\r`` returns to the start of the line: the text after the last ``\\r`` of
  a line replaces what was before it (tqdm's frames). A ``\\r`` with nothing
  after it on the line changes nothing.
- Every other escape sequence (CSI, OSC, DCS, two-character ESC sequences)
  and every other C0/C1 control character but tab and newline is removed.

Pure functions without third-party code: the libraries that parse SGR emit
HTML strings (ansi2html), which the log view must not parse, or bring a
rendering framework into the core install (rich), which ``jobwatch watch``
needs without extras.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Span", "Style", "for_terminal", "plain", "spans", "spans_to_wire"]

# One token: an escape sequence, a control character, or a run of plain text.
# CSI also in its 8-bit form (0x9b); OSC/DCS/SOS/PM/APC run to ST (ESC \ or
# 0x9c) or BEL, or to the end of the text when unterminated.
_TOKEN = re.compile(
    r"(?P<csi>(?:\x1b\[|\x9b)(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~])?)"
    r"|(?P<string>(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?)"
    r"|(?P<esc>\x1b[ -/]*[0-~]?)"
    r"|(?P<cr>\r)"
    r"|(?P<control>[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f])"
    r"|(?P<text>[^\x00-\x08\x0b-\x1f\x7f-\x9f]+)"
)

_CUBE = (0, 95, 135, 175, 215, 255)
"""The six levels of xterm's 6x6x6 colour cube (indexed colours 16-231)."""


@dataclass(frozen=True)
class Style:
    """How a run of text is drawn.

    ``fg`` and ``bg``: ``None`` (the default colour), a palette index 0-15
    (0-7 normal, 8-15 bright; the theme decides the shade) or ``"#rrggbb"``.
    """

    fg: int | str | None = None
    bg: int | str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False

    @property
    def plain(self) -> bool:
        """Whether it is the default style (nothing to draw differently)."""
        return self == _DEFAULT


_DEFAULT = Style()


@dataclass(frozen=True)
class Span:
    """A run of ``text`` in one :class:`Style`."""

    text: str
    style: Style


def spans(text: str) -> list[Span]:
    """``text`` as a terminal shows it, in styled runs (adjacent runs differ in style).

    Parameters
    ----------
    text:
        Text as a program wrote it to its terminal, escapes and all.

    Returns
    -------
    list of Span
        Newlines and tabs are kept inside the runs; every escape sequence and
        other control character is gone; each line holds only what followed
        its last ``\\r`` (see the module docstring). Empty for empty text.
    """
    runs: list[Span] = []
    line_start = 0  # index in runs where the current line starts
    style = _DEFAULT
    carriage = False  # a \r seen: the next text on this line replaces the line
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "cr":
            carriage = True
        elif kind == "csi" and match["final"] == "m" and not match["inter"]:
            style = _apply_sgr(style, match["params"])
        elif kind == "text":
            chunk = match["text"]
            while chunk:
                head, newline, chunk = chunk.partition("\n")
                if head and carriage:
                    del runs[line_start:]
                    carriage = False
                _add(runs, head + newline, style, merge=len(runs) > line_start)
                if newline:
                    line_start, carriage = len(runs), False
    return runs


def plain(text: str) -> str:
    """``text`` as a terminal shows it, without colours: :func:`spans` joined."""
    return "".join(span.text for span in spans(text))


def for_terminal(text: str) -> str:
    """``text`` as a terminal shows it, re-encoded with SGR sequences only.

    Safe to write to a terminal: nothing but colours and text attributes can
    change there. Ends in the default style when any style was used.
    """
    out: list[str] = []
    styled = False
    for span in spans(text):
        if span.style.plain:
            if styled:
                out.append("\x1b[0m")
                styled = False
        else:
            out.append(f"\x1b[{_sgr_parameters(span.style)}m")
            styled = True
        out.append(span.text)
    if styled:
        out.append("\x1b[0m")
    return "".join(out)


def spans_to_wire(runs: list[Span]) -> list[dict[str, Any]] | None:
    """Runs as JSON for the log view: ``[{"text", "fg"?, "bg"?, "bold"?, ...}]``.

    Only the attributes that are set appear. Colours are the ones to draw, as
    JupyterLab draws a cell's output (@jupyterlab/rendermime ``ansiSpan``):
    bold text in one of the first 8 colours takes its bright one (8-15), then
    inverse swaps fg and bg (a default colour swapped becomes ``"inverse"``,
    for the page to fill in from its theme). ``None`` when no run is styled,
    so that a plain line costs nothing more than its text.
    """
    if all(run.style.plain for run in runs):
        return None
    wire: list[dict[str, Any]] = []
    for run in runs:
        item: dict[str, Any] = {"text": run.text}
        style = run.style
        fg = style.fg
        if style.bold and isinstance(fg, int) and fg < 8:
            fg += 8
        fg, bg = (style.bg, fg) if style.inverse else (fg, style.bg)
        if style.inverse:
            fg = "inverse" if fg is None else fg
            bg = "inverse" if bg is None else bg
        if fg is not None:
            item["fg"] = fg
        if bg is not None:
            item["bg"] = bg
        for name in ("bold", "dim", "italic", "underline"):
            if getattr(style, name):
                item[name] = True
        wire.append(item)
    return wire


def _add(runs: list[Span], text: str, style: Style, *, merge: bool) -> None:
    """Append a run; ``merge`` into the last one when in the same style (never across a
    line start, which a later ``\r`` must find at its own index)."""
    if not text:
        return
    if merge and runs[-1].style == style:
        runs[-1] = Span(runs[-1].text + text, style)
    else:
        runs.append(Span(text, style))


def _apply_sgr(style: Style, params: str) -> Style:
    """``style`` after one SGR sequence with parameter string ``params``."""
    if params and not params[0].isdigit() and params[0] not in ";:":
        return style  # private parameters (<=>?): not SGR
    groups = [group.split(":") for group in params.split(";")] if params else [["0"]]
    codes = [_int(group[0]) for group in groups]
    i = 0
    while i < len(groups):
        code, group = codes[i], groups[i]
        if code in (38, 48):
            if len(group) > 1:  # 38:5:n or 38:2:[colourspace]:r:g:b, all in one group
                colour = _extended([_int(part) for part in group[1:]], colon=True)
            else:
                colour, used = _extended_semicolon(codes[i + 1 :])
                i += used
            if colour is not None:
                style = replace(style, fg=colour) if code == 38 else replace(style, bg=colour)
        else:
            style = _simple_sgr(style, code, group)
        i += 1
    return style


def _simple_sgr(style: Style, code: int, group: list[str]) -> Style:
    changes: dict[str, Any]
    if code == 0:
        return _DEFAULT
    if code == 4:
        changes = {"underline": len(group) < 2 or _int(group[1]) != 0}  # 4:0 is "not underlined"
    else:
        changes = _SIMPLE.get(code, {})
        if 30 <= code <= 37:
            changes = {"fg": code - 30}
        elif 40 <= code <= 47:
            changes = {"bg": code - 40}
        elif 90 <= code <= 97:
            changes = {"fg": code - 90 + 8}
        elif 100 <= code <= 107:
            changes = {"bg": code - 100 + 8}
    return replace(style, **changes) if changes else style


_SIMPLE: dict[int, dict[str, Any]] = {
    1: {"bold": True},
    2: {"dim": True},
    3: {"italic": True},
    7: {"inverse": True},
    21: {"underline": True},  # doubly underlined, drawn as underlined
    22: {"bold": False, "dim": False},
    23: {"italic": False},
    24: {"underline": False},
    27: {"inverse": False},
    39: {"fg": None},
    49: {"bg": None},
}


def _extended_semicolon(rest: list[int]) -> tuple[int | str | None, int]:
    """The colour after ``38;``/``48;`` and how many parameters it took."""
    if rest[:1] == [5]:
        return _extended(rest[:2], colon=False), min(2, len(rest))
    if rest[:1] == [2]:
        return _extended(rest[:4], colon=False), min(4, len(rest))
    return None, 0


def _extended(parts: list[int], *, colon: bool) -> int | str | None:
    """``[5, n]`` or ``[2, (colourspace,) r, g, b]`` as a palette index or ``"#rrggbb"``."""
    if parts[:1] == [5] and len(parts) >= 2:
        return _indexed(parts[1])
    if parts[:1] == [2]:
        rgb = parts[2:5] if colon and len(parts) >= 5 else parts[1:4]
        if len(rgb) == 3:
            return "#" + "".join(f"{min(max(c, 0), 255):02x}" for c in rgb)
    return None


def _indexed(n: int) -> int | str | None:
    """xterm's 256-colour index: 0-15 the palette, 16-231 the cube, 232-255 greys."""
    if not 0 <= n <= 255:
        return None
    if n < 16:
        return n
    if n < 232:
        n -= 16
        rgb = (_CUBE[n // 36], _CUBE[n // 6 % 6], _CUBE[n % 6])
    else:
        grey = 8 + 10 * (n - 232)
        rgb = (grey, grey, grey)
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _int(text: str) -> int:
    """An SGR parameter; empty (or garbage) counts as 0, as terminals do."""
    return int(text) if text.isdigit() else 0


def _sgr_parameters(style: Style) -> str:
    """The SGR parameters that draw ``style`` from the default (``0;...``)."""
    params = ["0"]
    for name, code in (("bold", "1"), ("dim", "2"), ("italic", "3"), ("underline", "4")):
        if getattr(style, name):
            params.append(code)
    if style.inverse:
        params.append("7")
    for colour, base, bright, extended in ((style.fg, 30, 90, 38), (style.bg, 40, 100, 48)):
        if isinstance(colour, int):
            params.append(str(base + colour if colour < 8 else bright + colour - 8))
        elif isinstance(colour, str):
            r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
            params.append(f"{extended};2;{r};{g};{b}")
    return ";".join(params)
